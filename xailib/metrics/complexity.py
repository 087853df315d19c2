"""How rough and how concentrated a map is.

Roughness, the "noisier maps" of the thesis (its section 2.5.1, after Ancona et al.):

``roughness``: the mean absolute 4-neighbour Laplacian of each map after min-max scaling to
[0, 1] per image (so the scale of a method's values does not count), over the interior pixels.
A smooth map (Grad-CAM's upsampled grid) scores near 0; pixel noise scores high. Chapter 05's
smoothness comparison and chapter 07's "noisier on deeper networks" use it. A flat map scores 0.

Concentration, the complexity family of Quantus (Hedstrom et al. 2023) and LATEC: ``sparseness``
(the Gini index, Chalasani et al. 2020), ``complexity`` (the entropy of the fractional
contributions, Bhatt et al. 2020) and ``effective_complexity`` (the pixels above a small share of
the largest, Nguyen and Martinez 2020). A few lines each: the formulas are the papers', and
Quantus is GPL, so it is a measurement here, not a dependency (``scripts/quantus_compare.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ParameterError
from .registry import register

_LAPLACIAN = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])[None, None]


@register("roughness", higher_is_better=False, reference="ancona2018")
def _roughness(model, images, targets, maps):
    """Mean absolute Laplacian of the min-max scaled map (lower is smoother)."""
    s = maps.detach().double().cpu()
    lo, hi = s.flatten(1).min(1).values, s.flatten(1).max(1).values
    z = (s - lo[:, None, None]) / (hi - lo).clamp(min=1e-12)[:, None, None]
    return F.conv2d(z[:, None], _LAPLACIAN.double()).abs().flatten(1).mean(1)


# --------------------------------------------------------------------------------------------
# How concentrated a map is (Quantus's "complexity" family). All three read the map's absolute
# values, as their papers do: a strongly negative pixel is as much part of the explanation as a
# strongly positive one. A map with no non-zero value is treated as flat (every pixel alike).
# --------------------------------------------------------------------------------------------

def _absolute(maps: torch.Tensor) -> torch.Tensor:
    return maps.detach().double().cpu().flatten(1).abs()


@register("sparseness", higher_is_better=True, reference="chalasani2020")
def _sparseness(model, images, targets, maps):
    """Chalasani et al.'s sparseness: the Gini index of the map's absolute values,
    ``G = sum_i (2 i - d - 1) a_(i) / (d sum_i a_i)`` over the d pixels sorted ascending (i from
    1). 0 for a flat map (every pixel alike, or all zero), (d - 1) / d for one non-zero pixel."""
    a = _absolute(maps).sort(1).values
    d = a.shape[1]
    rank = torch.arange(1, d + 1, dtype=torch.float64)
    total = a.sum(1)
    gini = ((2 * rank - d - 1) * a).sum(1) / (d * total.clamp(min=1e-300))
    return torch.where(total > 0, gini, torch.zeros_like(total))


@register("complexity", higher_is_better=False, reference="bhatt2020")
def _complexity(model, images, targets, maps):
    """Bhatt et al.'s complexity: the entropy (natural log) of the map's fractional contributions
    ``p_i = |a_i| / sum_j |a_j|``, ``-sum_i p_i ln p_i`` (0 ln 0 = 0). ln d for a flat map (the
    most complex: every pixel counts alike; an all-zero map too), 0 for one non-zero pixel."""
    a = _absolute(maps)
    total = a.sum(1, keepdim=True)
    p = torch.where(total > 0, a / total.clamp(min=1e-300), torch.full_like(a, 1.0 / a.shape[1]))
    return -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(1)


@register("effective_complexity", higher_is_better=False, reference="nguyen2020", eps=1e-5)
def _effective_complexity(model, images, targets, maps, eps):
    """Nguyen and Martinez's effective complexity: the number of pixels whose absolute value,
    divided by the map's largest, exceeds ``eps`` (their threshold on attributions scaled to a
    common range; Quantus's default 1e-5). 0 for an all-zero map, every pixel for a flat one."""
    if not 0 <= float(eps) < 1:
        raise ParameterError(f"eps={eps!r} must be in [0, 1)")
    a = _absolute(maps)
    top = a.max(1, keepdim=True).values
    scaled = torch.where(top > 0, a / top.clamp(min=1e-300), torch.zeros_like(a))
    return (scaled > float(eps)).sum(1).double()
