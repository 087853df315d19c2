"""RISE: randomized input sampling for explanation (Petsiuk, Das and Saenko, 2018).

Written here because none of the book's libraries implements it (captum, lime and shap have no
RISE). Section 3 of the paper, as implemented:

1. ``N`` binary grids of ``cells x cells`` are drawn with P(1) = ``p``;
2. each is upsampled bilinearly to ``(cells + 1) * C`` pixels a side, ``C = ceil(H / cells)``
   (the paper writes the cell size as ``|H/h|``; it must be the ceiling for step 3 to fit
   when ``cells`` does not divide the image side, e.g. 64 px and 7 cells);
3. an ``H x W`` window is cropped at a uniformly random offset in ``[0, C)`` on each axis.

With one cell per pixel (``cells`` at least the image side, so ``C = 1``) steps 2 and 3 would only
blur the grid (64 cells upsampled to 65 px average neighbouring cells); the grid itself is the
mask then, binary and independent per pixel, as the paper's per-pixel baseline sets it.

The saliency of class ``c`` is ``sum_i f_c(I * M_i) M_i / (N * E[M])`` (eq. 6), with ``f_c`` the
softmax probability and ``E[M] = p``. Masks multiply the model's *normalised* input, as in the
authors' code: a masked pixel becomes 0 in the space the network sees, i.e. the data set's mean
colour (``fill="mean"``; ``fill=0.0`` blackens pixels instead).

The grids and offsets come from one seeded CPU generator, so a seed gives the same masks on any
device and with any batch size. Masks are built chunk by chunk on the model's device, shared by
all images of a batch; every forward pass returns all classes, so :func:`rise_maps` can return
the map of every class from the same passes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import inference
from ..errors import ParameterError, check_fraction, check_positive_int
from .registry import register


def input_fill(model: nn.Module, fill, device) -> torch.Tensor:
    """(1, 3, 1, 1) pixel value that is 0 in the model's input space (``"mean"``: the mean of the
    model's input normalisation, wherever it sits in the model; 0 with a warning when it has none)
    or a constant in [0, 1]."""
    if fill == "mean":
        from ..metrics.removal import dataset_mean
        return dataset_mean(model, device, asked="fill='mean'")
    if isinstance(fill, (int, float)) and not isinstance(fill, bool):
        return torch.full((1, 3, 1, 1), float(fill), device=device)
    raise ParameterError(f"fill={fill!r} must be 'mean' or a number (a pixel value in [0, 1])")


class MaskSampler:
    """The seeded stream of RISE masks for one image size; ``masks(i, j)`` are masks i..j-1."""

    def __init__(self, n_masks: int, size: tuple[int, int], cells: int = 7, p: float = 0.5,
                 seed: int = 0):
        check_positive_int("n_masks", n_masks)
        check_positive_int("cells", cells)
        check_fraction("p", p)
        if not 0 < p <= 1:
            raise ParameterError(f"p={p!r} must be in (0, 1]")
        self.n, self.size, self.cells, self.p = n_masks, tuple(size), cells, float(p)
        H, W = self.size
        self.cell = (math.ceil(H / cells), math.ceil(W / cells))
        g = torch.Generator().manual_seed(seed)
        self.grids = (torch.rand(n_masks, 1, cells, cells, generator=g) < p).float()
        self.dy = torch.randint(0, self.cell[0], (n_masks,), generator=g)
        self.dx = torch.randint(0, self.cell[1], (n_masks,), generator=g)

    def masks(self, start: int, stop: int, device) -> torch.Tensor:
        """Masks ``start..stop-1`` as a (k, H, W) float tensor on ``device``."""
        H, W = self.size
        if self.cell == (1, 1):           # one cell per pixel: the binary grid is the mask
            return self.grids[start:stop, 0, :H, :W].to(device)
        up = ((self.cells + 1) * self.cell[0], (self.cells + 1) * self.cell[1])
        big = F.interpolate(self.grids[start:stop].to(device), size=up, mode="bilinear",
                            align_corners=False)[:, 0]
        rows = self.dy[start:stop, None].to(device) + torch.arange(H, device=device)
        cols = self.dx[start:stop, None].to(device) + torch.arange(W, device=device)
        k = torch.arange(stop - start, device=device)[:, None, None]
        return big[k, rows[:, :, None], cols[:, None, :]]


@torch.no_grad()
def rise_maps(model: nn.Module, images: torch.Tensor, targets: torch.Tensor | None = None,
              n_masks: int = 4000, cells: int = 7, p: float = 0.5, seed: int = 0,
              fill="mean", model_batch_size: int = 256) -> torch.Tensor:
    """RISE saliency of ``images`` (B, 3, H, W): (B, H, W) for ``targets`` (one class per image),
    or (B, classes, H, W) for every class when ``targets`` is None."""
    check_positive_int("model_batch_size", model_batch_size)
    dev = inference.model_device(model, fallback=images.device)
    x = images.to(dev, torch.float32)
    base = input_fill(model, fill, dev)
    sampler = MaskSampler(n_masks, x.shape[-2:], cells, p, seed)
    B, HW = len(x), x.shape[-2] * x.shape[-1]
    sal = None
    for start in range(0, n_masks, model_batch_size):     # masks drawn model_batch_size at a time
        stop = min(start + model_batch_size, n_masks)
        m = sampler.masks(start, stop, dev)                     # (k, H, W), shared by the batch
        m4 = m[:, None]
        for i in range(B):                                      # one large forward per image
            masked = torch.addcmul(base, x[i:i + 1] - base, m4)   # base + (x - base) * m
            probs = inference.probabilities(model, masked)       # (k, classes)
            if sal is None:
                classes = probs.shape[1]
                sal = torch.zeros(B, classes if targets is None else 1, HW, device=dev)
            w = probs if targets is None else probs[:, int(targets[i])][:, None]
            sal[i] += w.T @ m.reshape(len(m), HW)
    sal = sal / (n_masks * p)
    out = sal.view(B, -1, *x.shape[-2:])
    return out if targets is None else out[:, 0]


@register("rise", family="perturbation", library="xailib", reference="petsiuk2018", batch_size=8,
          batch_invariant=True,
          n_masks=4000, cells=7, p=0.5, seed=0, fill="mean", model_batch_size=256)
def _rise(model, x, t, n_masks, cells, p, seed, fill, model_batch_size):
    """RISE (eq. 6 of Petsiuk et al.): the probability-weighted average of N random masks."""
    return rise_maps(model, x, t, n_masks=n_masks, cells=cells, p=p, seed=seed, fill=fill,
                     model_batch_size=model_batch_size)
