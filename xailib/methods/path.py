"""Path integrals: integrated gradients from a constant baseline and expected gradients from
reference images (captum's IntegratedGradients and GradientShap)."""
from __future__ import annotations

import torch

from ..errors import ParameterError
from .registry import _by_images, _reduce, _seeded, register, rows_per_pass


@register("integrated_gradients", family="gradient", library="captum", reference="sundararajan2017",
          batch_invariant=True, n_steps=32, baseline=0.0, internal_batch_size=512, reduce="sum")
def _integrated_gradients(model, x, t, n_steps, baseline, internal_batch_size, reduce):
    """Integrated gradients from a constant baseline image (0 = black)."""
    from captum.attr import IntegratedGradients
    cap = rows_per_pass(x)      # at large sizes, fewer path points per pass
    a = IntegratedGradients(model).attribute(x, baselines=float(baseline), target=t, n_steps=n_steps,
                                             internal_batch_size=min(internal_batch_size, cap or internal_batch_size))
    return _reduce(a, reduce)


@register("expected_gradients", family="gradient", library="captum", reference="erion2021",
          required=("background",), background=None, n_samples=32, seed=0, reduce="sum")
def _expected_gradients(model, x, t, background, n_samples, seed, reduce):
    """Expected gradients (captum's GradientShap): IG averaged over baselines drawn from
    ``background`` (reference images, (K, 3, H, W)) and random path positions."""
    from captum.attr import GradientShap
    bg = torch.as_tensor(background).to(x.device, torch.float32)
    if bg.ndim != 4 or bg.shape[1:] != x.shape[1:]:
        raise ParameterError(f"background must be reference images shaped (K, {', '.join(map(str, x.shape[1:]))}), "
                             f"got {tuple(bg.shape)}")
    shap = GradientShap(model)
    with _seeded(seed):       # at large sizes, a few images per pass (captum's own chunking would
        # draw one set of baselines and reuse it in every chunk)
        a = _by_images(lambda xs, ts: shap.attribute(xs, baselines=bg, target=ts, n_samples=n_samples,
                                                     stdevs=0.0), x, t, n_samples)
    return _reduce(a, reduce)
