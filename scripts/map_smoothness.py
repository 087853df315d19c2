"""How smooth each method's maps are: the lag (in pixels) at which a map's spatial
autocorrelation falls to one half, median over 16 test images, per network and method, and the
Gaussian sigma that gives filtered white noise the same lag (lag / 1.665, from exp(-d^2 / 4 s^2)).
The smooth random null (xailib.methods.controls, sigma = side / 8) is set from this table.

    python scripts/map_smoothness.py
"""
import numpy as np

from xailib import data, models
from xailib.methods import explain

METHODS = ["gradient", "smoothgrad", "integrated_gradients", "gradcam", "occlusion", "lime", "kernel_shap",
           "rise", "guided_backprop", "lrp_epsilon", "deeplift", "edge"]


def half_lag(maps: np.ndarray) -> float:
    """Median over maps of the lag where the mean of the row and column autocorrelations crosses 1/2."""
    out = []
    for a in maps - maps.mean(axis=(1, 2), keepdims=True):
        ac = np.fft.ifft2(np.abs(np.fft.fft2(a, s=(2 * a.shape[0], 2 * a.shape[1]))) ** 2).real
        prof = (ac[0, : a.shape[1] // 2] + ac[: a.shape[0] // 2, 0]) / (2 * ac[0, 0])
        i = int(np.argmax(prof < 0.5))
        if i > 0:                                    # linear interpolation between the two lags
            out.append(i - 1 + (prof[i - 1] - 0.5) / (prof[i - 1] - prof[i]))
    return float(np.median(out)) if out else float("nan")


def main():
    pool = data.load_dataset("shapes", "test", size=64, seed=0)
    x, t = pool.images[:16], pool.labels[:16]
    print("network      method                half-lag (px)  sigma (px)")
    for name in ("vgg_mini", "resnet_mini"):
        net = models.load_model(name)
        for m in METHODS:
            lag = half_lag(explain(net, x, t, m).float().cpu().numpy())
            print(f"{name:12s} {m:21s} {lag:13.2f} {lag / 1.665:11.2f}")


if __name__ == "__main__":
    main()
