"""Impact Score and Impact Coverage (Lin, Shafiee et al., 2019): the critical region of a map,
its removal, the three scores, and the matched random maps that are their control.

The paper writes the input without its critical factors as ``x' = x - c`` (eq. 3) with
``c = M(x, N)`` (eq. 2) and counts an explanation as impactful when the network's decision
changes or its confidence in that decision falls to at most ``tau`` times its value (eq. 5,
``tau = 0.5``); the strict score keeps decision changes only (eq. 6); Impact Coverage is the
intersection over union of the critical region and the adversarial patch (eq. 7). The paper
does not say how a saliency map becomes the critical factors ``c``, nor what ``x - c`` means
for pixels, so both are parameters here:

``selection`` (how ``c`` is chosen from a map; only pixels of positive saliency, i.e. evidence
*for* the decision, can be critical)

- ``"pixels"``: the ``fraction`` of the image's pixels with the highest saliency (ties broken by
  a fixed random order of the pixels, :mod:`xailib.metrics.order`), the default;
- ``"segments"``: whole superpixels (SLIC, as LIME and KernelSHAP use them) ranked by their mean
  saliency (equal means in a fixed random order), taken in that order while the covered area gets nearer to ``fraction`` of the image;
- ``"threshold"``: every pixel whose saliency is at least ``threshold`` times the map's maximum.

``removal`` (what the pixels of ``c`` become)

- ``"zero"``: 0, the literal reading of ``x - c`` (``c`` being the part of ``x`` inside the
  region, subtracting it leaves zeros), the default;
- ``"mean"``: the image's own mean colour;
- ``"blur"``: a Gaussian-blurred copy of the image (sigma ``blur_sigma``, default the book's one
  blur, :data:`xailib.metrics.removal.BLUR_SIGMA`);
- ``"dataset_mean"``, ``"road"``: the data set's mean colour and ROAD's noisy linear imputation;
- a number: that constant grey value.

These are the book's shared removal operators (:mod:`xailib.metrics.removal`), the blur
included (until the 2026-12 edition the Impact Score blurred with sigma side / 16 and a
+-2 sigma kernel, 17 x 17 at 64 px; one blur now serves every chapter).

All forward passes run in batches on the model's device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import inference
from ..errors import ParameterError, check_choice, check_fraction, check_positive_int, check_values
from . import removal as removal_op
from .order import saliency_order
from .registry import register
from .removal import check_removal

# The methods Lin et al. compare, by the names their tables give them
PAPER_METHODS = {"lime": "LIME", "kernel_shap": "SHAP", "expected_gradients": "Expected Gradients"}
# The matched random controls (:func:`random_maps`), by label: random maps cut into pixels or superpixels
RANDOM_CONTROLS = {"(random pixels)": "pixels", "(random superpixels)": "segments"}
SELECTIONS = ("pixels", "segments", "threshold")
REMOVALS = ("zero", "mean", "blur")
TAU = 0.5  # the paper's choice: the network lost half of its confidence
# Methods whose features are superpixels: their own critical factors are whole segments.
SEGMENT_METHODS = ("lime", "kernel_shap")


def selection_for(method: str, selection: str = "auto") -> str:
    """``"auto"``: superpixels for LIME and KernelSHAP (their features), pixels otherwise."""
    if selection == "auto":
        return "segments" if method in SEGMENT_METHODS else "pixels"
    check_choice("selection", selection, SELECTIONS)
    return selection


def _check_maps(maps: torch.Tensor) -> torch.Tensor:
    maps = torch.as_tensor(maps)
    if maps.ndim != 3:
        raise ParameterError(f"maps must be (batch, H, W), got {tuple(maps.shape)}")
    if not torch.isfinite(maps).all():
        raise ParameterError("maps contain NaN or infinite values")
    return maps


def segment_labels(images: torch.Tensor, n_segments: int = 50) -> torch.Tensor:
    """SLIC superpixels of each image, (B, H, W) int64, as LIME and KernelSHAP compute them."""
    from ..methods.surrogates import superpixels
    check_positive_int("n_segments", n_segments, minimum=2)
    return torch.stack([torch.from_numpy(superpixels(img, n_segments)).long() for img in images])


def critical_region(maps: torch.Tensor, selection: str = "pixels", fraction: float = 0.1,
                    threshold: float = 0.5, segments: torch.Tensor | None = None) -> torch.Tensor:
    """The critical factors ``c`` of each map as a boolean mask (B, H, W) on the maps' device.

    ``fraction`` is the share of the image's pixels the region should cover (``pixels``,
    ``segments``); ``threshold`` the share of the map's maximum a pixel must reach
    (``threshold``); ``segments`` the superpixel labels (B, H, W) for ``segments``. Pixels with
    saliency <= 0 are never critical, so a region can be smaller than ``fraction`` (empty for a
    map with nothing positive).
    """
    maps = _check_maps(maps)
    check_choice("selection", selection, SELECTIONS)
    check_fraction("fraction", fraction)
    B, H, W = maps.shape
    s = maps.detach().double()
    positive = s > 0
    if selection == "threshold":
        check_fraction("threshold", threshold)
        peak = s.flatten(1).amax(1).clamp(min=0).view(B, 1, 1)
        return positive & (s >= threshold * peak)
    budget = fraction * H * W
    if selection == "pixels":
        k = int(round(budget))
        order = saliency_order(s.flatten(1))
        top = torch.zeros(B, H * W, dtype=torch.bool, device=s.device)
        top.scatter_(1, order[:, :k], True)
        return top.view(B, H, W) & positive
    if segments is None:
        raise ParameterError("selection='segments' needs segments= the superpixel labels "
                             "(B, H, W); xailib.metrics.impact.segment_labels(images) computes them")
    seg = torch.as_tensor(segments).to(s.device).long()
    if seg.shape != maps.shape:
        raise ParameterError(f"segments must match maps {tuple(maps.shape)}, got {tuple(seg.shape)}")
    out = torch.zeros(B, H, W, dtype=torch.bool, device=s.device)
    for b in range(B):
        flat = seg[b].flatten() - seg[b].min()
        k = int(flat.max()) + 1
        size = torch.bincount(flat, minlength=k).double()
        mean = torch.zeros(k, dtype=torch.float64, device=s.device).index_add_(
            0, flat, s[b].flatten()) / size.clamp(min=1)
        order = saliency_order(mean[None])[0].tolist()         # equal means: a fixed random order
        chosen, area = [], 0.0
        for j in order:
            if size[j] == 0 or mean[j] <= 0:
                break
            # take the next segment while that brings the area nearer to the budget
            if chosen and abs(area + size[j].item() - budget) >= abs(area - budget):
                break
            chosen.append(j)
            area += size[j].item()
        if chosen:
            keep = torch.zeros(k, dtype=torch.bool, device=s.device)
            keep[chosen] = True
            out[b] = (keep[flat] & positive[b].flatten()).view(H, W)
    return out


def blur_setting(height: int, width: int, sigma: float | None) -> tuple[int, float]:
    """(kernel, sigma) of the Impact Score's blur: the book's one blur
    (:data:`xailib.metrics.removal.BLUR_SIGMA`, kernel +-3 sigma) unless ``sigma`` is given."""
    sigma = removal_op.BLUR_SIGMA if sigma is None else sigma
    if check_values("blur_sigma", sigma, ndim=0) <= 0:
        raise ParameterError(f"blur_sigma={sigma!r} must be positive")
    return removal_op.blur_kernel(min(height, width), None, float(sigma))


def remove(images: torch.Tensor, regions: torch.Tensor, removal="zero",
           blur_sigma: float | None = None, model: nn.Module | None = None) -> torch.Tensor:
    """``x - c``: the images with the pixels of ``regions`` (B, H, W) replaced per ``removal``,
    the shared operator of :mod:`xailib.metrics.removal` (``model`` for ``"dataset_mean"``)."""
    check_removal(removal)
    kernel, sigma = blur_setting(*images.shape[-2:], blur_sigma) if removal == "blur" else (None, None)
    return removal_op.remove(images, regions, removal, model=model, blur_sigma=sigma, blur_kernel=kernel)


@dataclass
class ImpactOutcome:
    """Per image: the decision before and after removal and the two impact conditions."""

    decision: torch.Tensor        # y, (B,) long
    confidence: torch.Tensor      # z = p(y | x)
    new_decision: torch.Tensor    # y' = argmax N(x')
    new_confidence: torch.Tensor  # z' = p(y | x'), the confidence in the original decision
    probs: torch.Tensor           # p(. | x), (B, classes)
    new_probs: torch.Tensor       # p(. | x'), (B, classes)
    tau: float

    @property
    def decision_changed(self) -> torch.Tensor:        # eq. 6's condition
        return self.new_decision != self.decision

    @property
    def confidence_halved(self) -> torch.Tensor:       # eq. 5's second condition
        return self.new_confidence <= self.tau * self.confidence

    @property
    def impact(self) -> torch.Tensor:                  # eq. 5's condition
        return self.decision_changed | self.confidence_halved


def _probs(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax in float64 of the logits, ``batch_size`` images built at a time."""
    return torch.cat([torch.softmax(inference.forward(model, x[i:i + batch_size]).double(), 1)
                      for i in range(0, len(x), batch_size)])


@torch.no_grad()
def impact_outcome(model: nn.Module, images: torch.Tensor, regions: torch.Tensor, targets=None,
                   removal="zero", tau: float = TAU, blur_sigma: float | None = None,
                   batch_size: int = 256, probs: torch.Tensor | None = None) -> ImpactOutcome:
    """Run the network on ``x`` and on ``x - c`` (``regions`` = c) and compare (eq. 1-6).

    The decision ``y`` is the network's own (argmax on ``x``); ``targets``, when given, must be
    that decision for every image (the class the explanation was made for), else it is an error.
    ``probs`` may pass in the probabilities on ``x`` when they are already known (a grid of
    choices on the same images), saving one forward pass per image.
    """
    check_fraction("tau", tau)
    check_positive_int("batch_size", batch_size)
    dev = inference.model_device(model, fallback=images.device)
    x = images.to(dev, torch.float32)
    p = _probs(model, x, batch_size) if probs is None else torch.as_tensor(probs).to(dev, torch.float64)
    y = p.argmax(1)
    if targets is not None:
        t = torch.as_tensor(targets, dtype=torch.long, device=dev).expand(len(x))
        if (t != y).any():
            bad = (t != y).nonzero()[:, 0].tolist()
            raise ParameterError(f"the Impact Score scores the network's own decision, but targets "
                                 f"differ from the predicted class for image(s) {bad[:5]}; explain "
                                 "and score the predicted class")
    x2 = remove(x, regions.to(dev), removal, blur_sigma, model)
    p2 = _probs(model, x2, batch_size)
    ar = torch.arange(len(x), device=dev)
    return ImpactOutcome(y.cpu(), p[ar, y].cpu(), p2.argmax(1).cpu(), p2[ar, y].cpu(), p.cpu(),
                         p2.cpu(), float(tau))


def coverage(regions: torch.Tensor, patch_masks: torch.Tensor) -> torch.Tensor:
    """Impact Coverage per image (eq. 7): |a ∩ c| / |a ∪ c| of critical region c and patch a."""
    c = torch.as_tensor(regions).bool()
    a = torch.as_tensor(patch_masks).bool().to(c.device)
    if a.shape != c.shape or a.ndim != 3:
        raise ParameterError(f"patch_masks must be (batch, H, W) matching the regions "
                             f"{tuple(c.shape)}, got {tuple(a.shape)}")
    if not a.flatten(1).any(1).all():
        raise ParameterError("every patch mask must cover at least one pixel")
    inter = (a & c).flatten(1).sum(1).double()
    union = (a | c).flatten(1).sum(1).double()
    return (inter / union).cpu()


# --------------------------------------------------------------------------------------------
# The three scores in the registry: score(model, images, targets, maps, "impact", ...)
# --------------------------------------------------------------------------------------------

_SELECT = dict(selection="pixels", fraction=0.1, threshold=0.5, segments=None, n_segments=50,
               regions=None)


def _regions(images, maps, selection, fraction, threshold, segments, n_segments, regions):
    if regions is not None:
        regions = torch.as_tensor(regions).bool()
        if regions.shape != maps.shape:
            raise ParameterError(f"regions must match maps {tuple(maps.shape)}, got "
                                 f"{tuple(regions.shape)}")
        return regions
    if selection == "segments" and segments is None:
        segments = segment_labels(images, n_segments)
    return critical_region(maps, selection, fraction, threshold, segments)


def _outcome(model, images, targets, maps, tau, removal, blur_sigma, batch_size, **select):
    if model is None:
        raise ParameterError("the Impact Score needs the model (it runs the network on x - c)")
    c = _regions(images, maps, **select)
    return impact_outcome(model, images, c, targets, removal, tau, blur_sigma, batch_size)


@register("impact", higher_is_better=True, reference="lin2019", tau=TAU, removal="zero",
          blur_sigma=None, batch_size=256, **_SELECT)
def _impact(model, images, targets, maps, **params):
    """Eq. 5 per image: 1 if removing the critical region changes the decision or at least
    halves the confidence in it (tau = 0.5), else 0. The mean over images is I."""
    return _outcome(model, images, targets, maps, **params).impact.double()


@register("impact_strict", higher_is_better=True, reference="lin2019", tau=TAU, removal="zero",
          blur_sigma=None, batch_size=256, **_SELECT)
def _impact_strict(model, images, targets, maps, **params):
    """Eq. 6 per image: 1 if removing the critical region changes the decision. The mean is
    I_strict (``tau`` is accepted for symmetry with ``impact`` and has no effect)."""
    return _outcome(model, images, targets, maps, **params).decision_changed.double()


@register("impact_coverage", higher_is_better=True, reference="lin2019", required=("patch_masks",),
          patch_masks=None, **_SELECT)
def _impact_coverage(model, images, targets, maps, patch_masks, **select):
    """Eq. 7 per image: intersection over union of the critical region and the patch's pixels
    ``patch_masks`` (B, H, W) bool. The mean over images is I_coverage."""
    return coverage(_regions(images, maps, **select), patch_masks)


def random_maps(n: int, size: tuple[int, int], k: int, seed: int = 0) -> torch.Tensor:
    """``k`` seeded uniform random maps per image, (k, n, H, W); a control that knows nothing of
    the network. Cut into pixels they are random pixels, cut into superpixels random superpixels."""
    check_positive_int("k", k)
    g = torch.Generator().manual_seed(seed)
    return torch.rand(k, n, *size, generator=g)
