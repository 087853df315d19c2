"""The removal operator: what the pixels a perturbation metric removes become.

Every perturbation metric of the book (deletion and insertion, Impact Score and Impact Coverage,
infidelity's square perturbation, sensitivity-n) takes one parameter ``removal`` from this list,
and this module is the only place that removes pixels:

- ``"zero"``: 0 in [0, 1] pixel space (black), the literal reading of Lin et al.'s ``x - c``;
- ``"mean"``: the image's own mean colour;
- ``"dataset_mean"``: the data set's mean colour, i.e. the mean of the model's input
  normalisation (0 in the normalised input: RISE's authors' code, Hooker et al.'s ROAR);
- ``"blur"``: the same pixels of a Gaussian-blurred copy (``blur_sigma`` / ``blur_kernel``;
  default: Petsiuk et al.'s 11 x 11 kernel with sigma 5 at 224 px, scaled to the image side);
- ``"road"``: noisy linear imputation (Rong et al. 2022, ROAD): each removed pixel becomes the
  weighted mean of its 8 neighbours (1/6 for the four edge neighbours, 1/12 for the corners),
  solved jointly for all removed pixels as one sparse linear system, plus Gaussian noise of
  standard deviation ``road_noise`` (0.01, theirs). The system is the `grad-cam` package's
  (``pytorch_grad_cam.metrics.road.NoisyLinearImputer``, the authors' code); the noise is drawn
  here from a generator seeded by ``seed``, so the same call gives the same image (the package
  draws from torch's global generator);
- a number in [0, 1]: that constant grey.

Zero, mean and blur create images the model never saw; ROAD's point is that its imputation
carries little information about *which* pixels were removed, so a low score there says more
about the explanation than about the shift (and ROAR retrains the model instead, see
``scripts/roar.py``).
"""
from __future__ import annotations

import math
import numbers

import torch

from ..errors import ParameterError, check_positive_int, check_values
from ..methods.registry import check_images

OPERATORS = ("zero", "mean", "dataset_mean", "blur", "road")


def check_removal(removal) -> None:
    """One clear message for an operator that is not one of :data:`OPERATORS` or a grey value."""
    if isinstance(removal, bool) or not (removal in OPERATORS or isinstance(removal, (int, float))):
        raise ParameterError(f"removal={removal!r} is not accepted; choose one of "
                             f"{', '.join(map(repr, OPERATORS))} or a number (a grey value in [0, 1])")
    if isinstance(removal, (int, float)) and not 0 <= removal <= 1:
        raise ParameterError(f"removal={removal!r}: a grey value must be in [0, 1]")


# The book's one blur, the same in every chapter that blurs (02's insertion canvas, 03's and 04's
# removed region, 05, 09 and 10): sigma 3 px with a +-3 sigma kernel (19 x 19 at 64 px). Chosen
# by chapter 10's calibration table (xailib.calibration): fully blurred, 10-18 % of the test images
# stay correctly classified on the benchmark networks (chance 11.5 %), where the registry's default
# (the RISE authors' 11 x 11, sigma 5 at 224 px, scaled: 3 x 3, sigma 1.43 at 64 px) leaves 95-97 %.
# In pixels, not scaled with the side: a user at 224 px sets the chapters' blur parameter and reads
# the calibration table, which declares a blur that removes nothing degenerate.
BLUR_SIGMA = 3.0


def blur_kernel(side: int, kernel: int | None = None, sigma: float | None = None) -> tuple[int, float]:
    """(kernel, sigma) that :func:`blur` uses at this image side (see there)."""
    check_positive_int("side", side)
    if sigma is None:
        sigma = 5.0 * side / 224
        kernel = kernel or max(3, 2 * round((11 * side / 224 - 1) / 2) + 1)   # the odd size nearest 11 * side / 224
    if check_values("blur_sigma", sigma, ndim=0) <= 0:
        raise ParameterError(f"blur_sigma={sigma!r} must be > 0")
    kernel = kernel or min(2 * math.ceil(3 * sigma) + 1, 2 * ((side - 1) // 2) + 1)
    if isinstance(kernel, bool) or not isinstance(kernel, numbers.Integral) or kernel % 2 == 0 or kernel < 1:
        raise ParameterError(f"blur_kernel={kernel} must be an odd positive integer")
    return int(kernel), float(sigma)


def blur(x: torch.Tensor, kernel: int | None = None, sigma: float | None = None) -> torch.Tensor:
    """Gaussian blur (torchvision). With neither argument: the authors' 11 x 11 kernel with
    sigma 5 at 224 px, scaled to the image side (``blur_kernel`` says what that makes); with
    ``sigma`` only: a kernel of +-3 sigma."""
    from torchvision.transforms.functional import gaussian_blur
    check_images(x)
    kernel, sigma = blur_kernel(x.shape[-1], kernel, sigma)
    return gaussian_blur(x, [kernel, kernel], [sigma, sigma])


def dataset_mean(model, device, asked: str = "removal='dataset_mean'") -> torch.Tensor:
    """(1, 3, 1, 1): the mean of the model's input normalisation, wherever it sits in the model
    (0 with a warning naming what was ``asked`` when it has none)."""
    from ..models import find_normalization
    norm = find_normalization(model) if model is not None else None
    if norm is None:
        import warnings
        param = asked.split("=")[0]
        warnings.warn(f"{asked}: the model has no input normalisation (a submodule with per-channel mean "
                      f"and std tensors), so removed pixels become 0 (black); pass {param}= a grey value "
                      "in [0, 1] to choose another", stacklevel=4)
        return torch.zeros(1, 3, 1, 1, device=device)
    return norm.mean.detach().to(device, torch.float32).reshape(1, -1, 1, 1).expand(1, 3, 1, 1)


def road_impute(image: torch.Tensor, removed: torch.Tensor, noise: float = 0.01, seed: int = 0) -> torch.Tensor:
    """ROAD's noisy linear imputation of one image (C, H, W) at the ``removed`` pixels (H, W)."""
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    check_images(image[None])
    check_values("noise", noise, low=0, ndim=0)
    if removed.shape != image.shape[-2:]:
        raise ParameterError(f"removed must be (H, W) matching image {tuple(image.shape)}, "
                             f"got {tuple(removed.shape)}")
    removed = removed.bool().cpu()
    if not removed.any():
        return image.clone()
    img = image.detach().float().cpu()
    if removed.all():   # nothing left to interpolate from: the system's solution is 0
        filled = torch.zeros_like(img)
    else:
        filled = NoisyLinearImputer(noise=0.0)(img, (~removed).float())
    if noise:
        g = torch.Generator().manual_seed(int(seed))
        filled = filled + removed * (noise * torch.randn(img.shape, generator=g))
    return filled.to(image.device, image.dtype)


def fill_image(images: torch.Tensor, removal, *, model=None, blur_sigma=None, blur_kernel=None) -> torch.Tensor:
    """The fully removed image of every operator that does not depend on the region (all but ROAD)."""
    check_removal(removal)
    check_images(images)
    if removal == "road":
        raise ParameterError("removal='road' depends on the removed region; use remove()")
    if removal == "zero":
        return torch.zeros_like(images)
    if removal == "mean":
        return images.mean((2, 3), keepdim=True).expand_as(images)
    if removal == "dataset_mean":
        return dataset_mean(model, images.device).to(images.dtype).expand_as(images)
    if removal == "blur":
        return blur(images, blur_kernel, blur_sigma)
    return torch.full_like(images, float(removal))


def remove(images: torch.Tensor, regions: torch.Tensor, removal="zero", *, model=None,
           blur_sigma: float | None = None, blur_kernel: int | None = None,
           road_noise: float = 0.01, seed: int = 0) -> torch.Tensor:
    """``images`` (B, C, H, W) with the pixels of ``regions`` (B, H, W, True = removed) replaced
    per ``removal``; every other pixel is returned unchanged. ``model`` is needed for
    ``"dataset_mean"`` only."""
    check_removal(removal)
    check_images(images)
    regions = torch.as_tensor(regions)
    if regions.shape != (images.shape[0], *images.shape[-2:]):
        raise ParameterError(f"regions must be (batch, H, W) matching images "
                             f"{tuple(images.shape)}, got {tuple(regions.shape)}")
    m = regions.to(images.device).bool()
    if removal == "road":
        if not check_values("road_noise", road_noise, ndim=0) >= 0:
            raise ParameterError(f"road_noise={road_noise!r} must be >= 0")
        out = torch.stack([road_impute(x, r, road_noise, seed) for x, r in zip(images, m)])
        return torch.where(m[:, None], out, images)
    fill = fill_image(images, removal, model=model, blur_sigma=blur_sigma, blur_kernel=blur_kernel)
    return torch.where(m[:, None], fill, images)

