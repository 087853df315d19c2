"""Gradients: the vanilla gradient (Simonyan et al.), gradient x input and SmoothGrad (captum)."""
from __future__ import annotations

from .registry import _reduce, _seeded, register


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
    with _seeded(seed):
        a = NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=n_samples, nt_samples_batch_size=n_samples,
            stdevs=float(noise), target=t, abs=True)
    return _reduce(a, reduce)
