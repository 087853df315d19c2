"""How rough a map is: the "noisier maps" of the thesis (its section 2.5.1, after Ancona et al.).

``roughness``: the mean absolute 4-neighbour Laplacian of each map after min-max scaling to
[0, 1] per image (so the scale of a method's values does not count), over the interior pixels.
A smooth map (Grad-CAM's upsampled grid) scores near 0; pixel noise scores high. Chapter 05's
smoothness comparison and chapter 07's "noisier on deeper networks" use it. A flat map scores 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import register

_LAPLACIAN = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])[None, None]


@register("roughness", higher_is_better=False, reference="ancona2018")
def _roughness(model, images, targets, maps):
    """Mean absolute Laplacian of the min-max scaled map (lower is smoother)."""
    s = maps.detach().double().cpu()
    lo, hi = s.flatten(1).min(1).values, s.flatten(1).max(1).values
    z = (s - lo[:, None, None]) / (hi - lo).clamp(min=1e-12)[:, None, None]
    return F.conv2d(z[:, None], _LAPLACIAN.double()).abs().flatten(1).mean(1)
