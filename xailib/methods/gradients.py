"""Gradients: the vanilla gradient (Simonyan et al.), gradient x input and SmoothGrad (captum)."""
from __future__ import annotations

from .registry import _by_images, _reduce, _seeded, register, rows_per_pass


@register("gradient", family="gradient", library="captum", reference="simonyan2014", reduce="max_abs")
def _gradient(model, x, t, reduce):
    """Vanilla gradient of the target logit (Simonyan et al. 2014)."""
    from captum.attr import Saliency
    return _reduce(Saliency(model).attribute(x, target=t, abs=False), reduce)


@register("gradient_x_input", family="gradient", library="captum", reference="shrikumar2017",
          reduce="sum")
def _gradient_x_input(model, x, t, reduce):
    """Gradient times input."""
    from captum.attr import InputXGradient
    return _reduce(InputXGradient(model).attribute(x, target=t), reduce)


@register("smoothgrad", family="gradient", library="captum", reference="smilkov2017",
          n_samples=25, noise=0.15, seed=0, reduce="max_abs")
def _smoothgrad(model, x, t, n_samples, noise, seed, reduce):
    """SmoothGrad: absolute gradients averaged over ``n_samples`` noisy copies (sigma = noise)."""
    from captum.attr import NoiseTunnel, Saliency
    cap = rows_per_pass(x)
    per_pass = n_samples if cap is None else min(n_samples, cap)   # at large sizes, fewer copies per pass
    tunnel = NoiseTunnel(Saliency(model))
    with _seeded(seed):
        a = _by_images(lambda xs, ts: tunnel.attribute(xs, nt_type="smoothgrad", nt_samples=n_samples,
                                                       nt_samples_batch_size=per_pass, stdevs=float(noise),
                                                       target=ts, abs=True), x, t, n_samples)
    return _reduce(a, reduce)
