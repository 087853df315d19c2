"""How alike two saliency maps are: the four measures of Adebayo et al.'s sanity checks.

``similarity(a, b, measure)`` compares maps (B, H, W) image by image and returns one value per
image (float64, numpy). The measures, as Adebayo et al. (2018) state them:

- ``spearman_abs``: Spearman's rank correlation of the absolute values (their main measure: a
  map's sign is often not meaningful, and many methods are shown in absolute value);
- ``spearman``: the same on the signed maps;
- ``ssim``: the structural similarity index (Wang et al. 2004) of the two maps, each first scaled
  to [0, 1] (absolute value, divided by its maximum) so that scale does not count;
- ``hog``: the correlation of the maps' histograms of oriented gradients (Dalal and Triggs), of the
  same scaled maps. The paper says Pearson correlation; the authors' public code ranks the HOG
  features first (a Spearman correlation). ``hog`` is the paper's Pearson reading and
  ``hog_spearman`` the code's, so a reader can see whether the choice matters. HOG's zero is not
  "unrelated": any two noise images share the pixel grid's orientation profile (about 0.09 here).

Ranks come from scipy (``rankdata``, ties averaged: a ReLU'd Grad-CAM map has many exact zeros),
SSIM and HOG from scikit-image; only the row-wise correlation of ranks is written here. A map
that is constant has no rank order: its correlation is undefined and is returned as 0 (no
evidence of similarity), never as NaN that would silently drop the image from an average.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata
from skimage.feature import hog as _hog
from skimage.metrics import structural_similarity

from ..errors import ParameterError, check_choice, check_values

# The sanity checks' line between "changed" and "unchanged": a map that keeps more than half of its
# rank order (Spearman correlation of absolute values above 0.5, Adebayo et al.'s main measure) has
# not changed substantially.
THRESHOLD = 0.5

MEASURES = ("spearman_abs", "spearman", "ssim", "hog", "hog_spearman")
LABELS = {"spearman_abs": "Spearman (abs)", "spearman": "Spearman (signed)", "ssim": "SSIM",
          "hog": "HOG (Pearson)", "hog_spearman": "HOG (Spearman)"}
# HOG at the maps' scale: 8 x 8-pixel cells and 2 x 2-cell blocks at 64 px (skimage's defaults
# are for 128-px pedestrians), 9 orientations as Dalal and Triggs; cells grow with the map.
HOG_ORIENTATIONS = 9


def _as_numpy(maps) -> np.ndarray:
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().double().numpy()
    a = np.asarray(maps, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ParameterError(f"maps must be (batch, H, W), got shape {a.shape}")
    return a


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's correlation of each row of ``x`` with the same row of ``y`` (0 where one is constant)."""
    x = x - x.mean(1, keepdims=True)
    y = y - y.mean(1, keepdims=True)
    den = np.sqrt((x * x).sum(1) * (y * y).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y).sum(1) / den
    return np.where(den > 0, np.clip(r, -1.0, 1.0), 0.0)


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _row_pearson(rankdata(x, axis=1), rankdata(y, axis=1))


def scaled(maps) -> np.ndarray:
    """Each map's absolute value divided by its maximum: [0, 1], all-zero maps stay 0."""
    check_values("maps", maps, ndim=(2, 3))
    a = np.abs(_as_numpy(maps))
    top = a.reshape(len(a), -1).max(1)
    return a / np.where(top > 0, top, 1.0)[:, None, None]


def hog_features(maps) -> np.ndarray:
    """HOG descriptors (B, features) of the scaled maps (:func:`scaled`), via scikit-image: cells
    of side / 8 pixels (8 at 64 px, 28 at 224; at least 2), 2 x 2 cells per block,
    ``HOG_ORIENTATIONS`` (9) unsigned orientations and scikit-image's L2-Hys block norm. Adebayo et
    al.'s paper gives no HOG settings, so these are the book's (Dalal and Triggs's 9 orientations
    and 2 x 2 blocks, with a cell scaled to the image); chapter 06 shows the measure beside the
    three others."""
    a = scaled(maps)
    cell = max(2, a.shape[-1] // 8)
    return np.stack([_hog(m, orientations=HOG_ORIENTATIONS, pixels_per_cell=(cell, cell),
                          cells_per_block=(2, 2), feature_vector=True) for m in a])


def _checked(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Both sets of maps as float64 arrays, the same shape and finite (else one clear error)."""
    check_values("a", a, ndim=(2, 3))
    check_values("b", b, ndim=(2, 3))
    x, y = _as_numpy(a), _as_numpy(b)
    if x.shape != y.shape:
        raise ParameterError(f"the two sets of maps differ in shape: {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ParameterError("the maps contain NaN or infinite values")
    return x, y


def similarity(a, b, measure: str = "spearman_abs") -> np.ndarray:
    """One value per image: how alike map ``a[i]`` and map ``b[i]`` are (1: alike)."""
    check_choice("measure", measure, MEASURES)
    x, y = _checked(a, b)
    n = len(x)
    if measure == "spearman_abs":
        return _spearman(np.abs(x).reshape(n, -1), np.abs(y).reshape(n, -1))
    if measure == "spearman":
        return _spearman(x.reshape(n, -1), y.reshape(n, -1))
    if measure == "ssim":
        sx, sy = scaled(x), scaled(y)
        win = 7 if min(x.shape[-2:]) >= 7 else 3        # skimage's 7 x 7 window; tiny maps: 3 x 3
        return np.array([structural_similarity(p, q, data_range=1.0, win_size=win) for p, q in zip(sx, sy)])
    hx, hy = hog_features(x), hog_features(y)
    return _row_pearson(hx, hy) if measure == "hog" else _spearman(hx, hy)


def similarities(a, b, measures=MEASURES) -> dict:
    """``{measure: one value per image}`` for several measures at once (HOG features computed once)."""
    for m in measures:
        check_choice("measure", m, MEASURES)
    out = {m: similarity(a, b, m) for m in measures if not m.startswith("hog")}
    if any(m.startswith("hog") for m in measures):
        x, y = _checked(a, b)
        hx, hy = hog_features(x), hog_features(y)
        out.update({m: (_row_pearson(hx, hy) if m == "hog" else _spearman(hx, hy)) for m in measures
                    if m.startswith("hog")})
    return {m: out[m] for m in measures}
