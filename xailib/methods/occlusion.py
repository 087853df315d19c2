"""Occlusion: a sliding grey window (Zeiler and Fergus; captum)."""
from __future__ import annotations

from .. import inference
from .registry import _reduce, register


@register("occlusion", family="perturbation", library="captum", reference="zeiler2014",
          window=None, stride=None, baseline=0.5, windows_per_pass=256, reduce="mean", batch_size=8)
def _occlusion(model, x, t, window, stride, baseline, windows_per_pass, reduce):
    """Sliding-window occlusion with a grey (0.5) square. Default window and stride keep RISE's
    ImageNet setting (64 and 8 px at 224 px) in proportion to the image size."""
    from captum.attr import Occlusion
    side = x.shape[-1]
    w = window or max(2, round(side * 64 / 224))
    s = stride or max(1, round(side * 8 / 224))
    forward = lambda z: inference.forward(model, z)  # noqa: E731 - the fast path, batched by it
    a = Occlusion(forward).attribute(x, target=t, sliding_window_shapes=(3, w, w), strides=(3, s, s),
                                   baselines=float(baseline),
                                   perturbations_per_eval=max(1, windows_per_pass // len(x)))
    return _reduce(a, reduce)
