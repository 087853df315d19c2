import torch, numpy as np
from xailib import data, models, explain
pool = data.load_dataset("shapes", "test", size=64, seed=0) if True else None
x, t = pool.images[:16], pool.labels[:16]
def half_lag(m):
    m = m - m.mean(dim=(1,2), keepdim=True)
    out=[]
    for a in m.numpy():
        f=np.fft.fft2(a, s=(128,128)); ac=np.fft.ifft2(np.abs(f)**2).real; ac/=ac[0,0]
        r=ac[0,:32]; c=ac[:32,0]; prof=(r+c)/2
        idx=np.argmax(prof<0.5); 
        if idx==0: out.append(np.nan); continue
        # interpolate
        out.append(idx-1+(prof[idx-1]-0.5)/(prof[idx-1]-prof[idx]))
    return np.nanmedian(out)
for mn in ["vgg_mini","resnet_mini"]:
    net=models.load_model(mn)
    for meth in ["gradient","smoothgrad","integrated_gradients","gradcam","occlusion","lime","kernel_shap","rise","guided_backprop","lrp_epsilon","deeplift","edge"]:
        try:
            s=explain.explain(net,x,t,meth)
        except Exception as e:
            print(meth,e); continue
        L=half_lag(s.float().cpu())
        print(mn, meth, round(L,2), "sigma~", round(L/1.665,2))
