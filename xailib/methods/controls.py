"""Control "methods": maps made without looking at the model.

``edge``: the Sobel edge magnitude of the input image (scikit-image's ``sobel`` on each colour
channel, the largest of the three per pixel). Adebayo et al. (2018) show that several saliency
maps look like an edge detector's output, which needs neither a model nor data; registered as a
method so that every test and table of the book can put it beside the real ones. It ignores the
model and the target by construction, so it must fail the model- and data-randomisation tests
(a test checks that it does).

``random``: uniform noise in [0, 1), drawn per image from a generator seeded by ``seed`` and the
image's own bytes (the same map for the same image in any batch; another map for any other
image, a perturbed copy included). ``smooth_random``: the same noise blurred by a Gaussian of
``sigma`` (default the image side / 8) and rescaled to [0, 1]: random blobs as smooth as the
smoothest methods' maps (Grad-CAM, occlusion and RISE, whose autocorrelation falls to one half at
12-14 px of 64 on both networks, as a Gaussian-filtered noise of sigma 7-8.5 px does;
``scripts/map_smoothness.py`` measures it), so that a smooth map cannot beat the random null by
its smoothness alone. ``constant``: 1 everywhere (metrics break its ties at random,
:mod:`xailib.metrics.order`). The floor of every score: a
metric that ranks a method no better than these measures something other than the explanation.
A constant map ignores its input, so it is the best possible case for max-sensitivity.

All are registered with ``control=True``: a chapter's ``"all"`` leaves them out.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from skimage.filters import sobel

from .registry import register

# The nulls every claim that a method "beats chance" is judged against: maps that know nothing of
# the network (the edge detector sees the image alone). A claim names the strongest of them that
# was scored, not the easiest (i.i.d. noise is easy to beat for any smooth map).
NULLS = ("random", "smooth_random", "constant", "edge")


def strongest_null(means: dict, higher_is_better: bool) -> str | None:
    """The null (a key of ``means``, {map name: mean score}) with the best mean in the score's
    direction; nulls absent from ``means`` or with a NaN mean are left out; None when none is."""
    means = {k: float(v) for k, v in means.items() if k in NULLS and np.isfinite(v)}
    if not means:
        return None
    return (max if higher_is_better else min)(means, key=means.get)


@register("edge", family="control", library="scikit-image", reference="adebayo2018", control=True,
          batch_invariant=True)
def _edge(model, x, t):
    """Sobel edge magnitude of the image, the largest over colour channels (the model is not used)."""
    img = x.detach().cpu().double().numpy()
    out = np.stack([np.max([sobel(ch) for ch in im], axis=0) for im in img])
    return torch.from_numpy(out).to(x.device, torch.float32)


@register("random", family="control", library="torch", reference="adebayo2018", control=True,
          batch_invariant=True, seed=0)
def _random(model, x, t, seed):
    """Uniform noise, seeded by ``seed`` and each image's bytes (the model is not used)."""
    out = []
    for img in x.detach().cpu().float():
        key = int.from_bytes(hashlib.sha256(img.numpy().tobytes()).digest()[:7], "little")
        out.append(torch.rand(img.shape[-2:], generator=torch.Generator().manual_seed(key + seed)))
    return torch.stack(out).to(x.device)


@register("smooth_random", family="control", library="scipy", reference="adebayo2018", control=True,
          batch_invariant=True, seed=0, sigma=None)
def _smooth_random(model, x, t, seed, sigma):
    """The ``random`` map blurred by a Gaussian of ``sigma`` px (default: side / 8), in [0, 1]."""
    sigma = x.shape[-1] / 8 if sigma is None else float(sigma)
    out = []
    for m in _random(model, x, t, seed).cpu().double().numpy():
        b = gaussian_filter(m, sigma, mode="reflect")
        out.append((b - b.min()) / max(b.max() - b.min(), 1e-12))
    return torch.from_numpy(np.stack(out)).to(x.device, torch.float32)


@register("constant", family="control", library="torch", reference="adebayo2018", control=True,
          batch_invariant=True)
def _constant(model, x, t):
    """1 everywhere (the model and the image are not used)."""
    return torch.ones(x.shape[0], *x.shape[-2:], device=x.device)
