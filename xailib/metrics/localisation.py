"""Localisation scores: does the map, thresholded, find what is known to matter?

Weakly supervised object localisation (WSOL), as the thesis reviews it (its section 2.5):

- **Boxes.** Each map is made comparable first: its positive part, scaled min-max per image to
  [0, 1] (:func:`normalise`). The pixels *above* a threshold (strictly, as Choe et al.'s code and
  CAM's "above 20 % of the max value"; CAM's 20 % of the maximum by default) are boxed: around
  their **largest connected component** (Zhou et al.'s CAM protocol; 8-connectivity, scipy's
  ``ndimage.label``; Choe et al. take the contour of largest area, here the component of most
  pixels), around **all** of them (Dabkowski and Gal's variant, which does not punish a map for
  being perforated), or around **each** component, keeping the best-matching box (Choe et al.'s
  ``multi_contour_eval``, their MaxBoxAccV2; their contour tree also boxes holes, which are not
  boxed here). A box is scored by its intersection over union (IoU) with the best-matching
  ground-truth box (:func:`box_ious`). ``box_accuracy`` is CAM's score, IoU >= 0.5 at one
  threshold. :func:`max_box_acc` is Choe et al.'s (2020) MaxBoxAcc: the box accuracy at the best
  threshold of their grid on the images scored (MaxBoxAccV2: every component, the mean over IoU
  0.3, 0.5 and 0.7). :func:`heldout_box_acc` is the book's own variant: the threshold chosen on a
  *held-out* split and applied to the scored one, so that the score is not the maximum of 100
  tries on the images it reports (Choe et al.'s held-out split tunes methods' hyper-parameters, not
  this threshold).
- **Masks.** Pixel-wise precision and recall against the ground-truth object mask over every
  threshold, summarised by its area (average precision, scikit-learn): ``pxap`` per image, and
  :func:`pxap_pooled`, Choe et al.'s PxAP over all pixels of all images.
- **Regions that a model is known to use** (the BAM and trojan tests of the survey):
  ``region_mean``, the mean normalised map over a region (BAM's attribution of the common
  feature), and ``top_k_iou``, the IoU of the map's k highest pixels with the region (k its area,
  the equal-size comparison of Lin et al. 2020's trigger test). The share of the positive map
  on a region is ``mask_energy``; a hit of the map's maximum on it, the ``pointing_game`` (Zhang et al.
  2018, as the RISE paper uses it).
- **The same questions under the names other toolkits use** (Quantus, LATEC): Arras et al.'s
  ``relevance_mass_accuracy`` (mask energy under another name) and ``relevance_rank_accuracy``
  (the share of the map's top pixels, as many as the object has, on the object: top-k IoU on
  another scale), and Kohlbrenner et al.'s ``attribution_localisation`` (mask energy, or with
  ``weighted`` corrected for the object's size).

Connected components (scipy) and average precision (scikit-learn) come from their libraries; the
box and IoU arithmetic is a few lines, written here so that its conventions are visible: boxes are
``[x0, y0, x1, y1)`` in pixels, half-open like the benchmark's. Choe et al.'s boxes are inclusive
pixel coordinates with areas (x1 - x0 + 1)(y1 - y0 + 1): the same pixels, the same IoU. An empty
selection (a map with no positive value, at any threshold) gives the empty box, IoU 0.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

import torch.nn.functional as F

from ..errors import ParameterError, check_choice, check_values
from .order import saliency_order, saliency_ranks
from .registry import register

COMPONENTS = ("largest", "all", "each")
THRESHOLDS = np.round(np.arange(0.0, 1.0, 0.01), 2)   # Choe et al.'s grid: 0, 0.01, ..., 0.99
CAM_THRESHOLD = 0.2
_EIGHT = np.ones((3, 3), dtype=bool)                   # 8-connectivity


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map's positive part scaled min-max to [0, 1] per image (float64). A flat positive map
    is 1 everywhere (every pixel is at its maximum: its box is the whole image, the "max box"); a
    map with no positive value is 0 everywhere (it selects nothing). NaN and infinities are refused."""
    check_values("maps", maps, ndim=(2, 3, 4))
    pos = maps.detach().double().clamp(min=0).flatten(1)
    lo, hi = pos.min(1, keepdim=True).values, pos.max(1, keepdim=True).values
    span = hi - lo
    flat = torch.where(hi > 0, torch.ones_like(pos), torch.zeros_like(pos))
    out = torch.where(span > 0, (pos - lo) / span.clamp(min=1e-300), flat)
    return out.view(maps.shape)


def _box_of(selected: np.ndarray, component: str) -> np.ndarray:
    """(k, 4): one box (``"largest"``, ``"all"``) or one per connected component (``"each"``);
    the empty box when nothing is selected."""
    if not selected.any():
        return np.zeros((1, 4))
    if component == "all":
        ys, xs = np.nonzero(selected)
        return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=float)
    labels, n = ndimage.label(selected, structure=_EIGHT)
    found = ndimage.find_objects(labels)
    if component == "largest":
        sizes = np.bincount(labels.ravel())[1:]
        found = [found[int(np.argmax(sizes))]]                # ties: the first in scan order
    return np.array([[sx.start, sy.start, sx.stop, sy.stop] for sy, sx in found], dtype=float)


def boxes(maps: torch.Tensor, threshold: float = CAM_THRESHOLD, component: str = "largest") -> np.ndarray:
    """(B, 4) boxes ``[x0, y0, x1, y1)`` around the normalised map's pixels above ``threshold``
    (one box per image: ``component`` "largest" or "all")."""
    check_choice("component", component, COMPONENTS[:2])
    if not 0 <= threshold <= 1:
        raise ParameterError(f"threshold={threshold!r} must be in [0, 1] (a share of the map's maximum)")
    norm = normalise(maps).numpy()
    return np.stack([_box_of(m > threshold, component)[0] for m in norm])


def iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of boxes ``pred`` (..., 4) with each of ``gt`` (k, 4): (..., k)."""
    p, g = check_values("pred", pred), check_values("gt", gt, ndim=2)
    if p.shape[-1:] != (4,) or g.shape[1] != 4:
        raise ParameterError(f"pred and gt must be boxes [x0, y0, x1, y1] (last axis 4), "
                             f"got shapes {p.shape} and {g.shape}")
    p = p[..., None, :]
    w = np.clip(np.minimum(p[..., 2], g[:, 2]) - np.maximum(p[..., 0], g[:, 0]), 0, None)
    h = np.clip(np.minimum(p[..., 3], g[:, 3]) - np.maximum(p[..., 1], g[:, 1]), 0, None)
    inter = w * h
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])   # noqa: E731
    union = area(p) + area(g) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _gt_boxes(gt, n: int) -> list[np.ndarray]:
    if gt is None or len(gt) != n:
        raise ParameterError(f"boxes must give one (k, 4) box array per image ({n}), "
                             f"got {None if gt is None else len(gt)}")
    return [check_values(f"boxes[{i}]", torch.as_tensor(b, dtype=torch.float64).reshape(-1, 4)) for i, b in enumerate(gt)]


def box_ious(maps: torch.Tensor, gt, thresholds=THRESHOLDS, component: str = "largest") -> np.ndarray:
    """(B, T): for each image and threshold, the IoU of the map's box with its best-matching
    ground-truth box (``gt``: one (k, 4) array per image; several boxes: the best, as Choe et al.);
    with ``component="each"`` the best pair of a component's box and a ground-truth box."""
    check_choice("component", component, COMPONENTS)
    check_values("thresholds", thresholds, low=0, high=1, ndim=(0, 1))
    t = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if ((t < 0) | (t > 1)).any():
        raise ParameterError("thresholds must lie in [0, 1] (shares of each map's maximum)")
    gts = _gt_boxes(gt, len(maps))
    norm = normalise(maps).numpy()
    out = np.empty((len(norm), len(t)))
    for i, (m, g) in enumerate(zip(norm, gts)):
        out[i] = [iou(_box_of(m > th, component), g).max() for th in t]
    return out


def max_box_acc(ious: np.ndarray, delta: float = 0.5, thresholds=THRESHOLDS) -> tuple[float, float]:
    """Choe et al.'s MaxBoxAcc at IoU ``delta``: the box accuracy at the threshold that maximises
    it on these images. ``ious``: (B, T) from :func:`box_ious` (``component="largest"`` for
    their MaxBoxAcc, ``"each"`` for MaxBoxAccV2, whose score is the mean over ``delta`` 0.3, 0.5
    and 0.7). Returns (the threshold, the lowest among ties; the accuracy)."""
    ious = check_values("ious", ious, low=0, high=1, ndim=2)
    check_values("thresholds", thresholds, low=0, high=1, ndim=(0, 1))
    if not 0 < delta <= 1:
        raise ParameterError(f"delta={delta!r} must be in (0, 1] (an IoU)")
    if ious.shape[1] != len(np.atleast_1d(thresholds)):
        raise ParameterError("ious must have one column per threshold")
    acc = (ious >= delta).mean(0)
    k = int(np.argmax(acc))
    return float(np.atleast_1d(thresholds)[k]), float(acc[k])


def heldout_box_acc(val_ious: np.ndarray, test_ious: np.ndarray, delta: float = 0.5,
                    thresholds=THRESHOLDS) -> tuple[float, np.ndarray]:
    """The book's held-out variant of MaxBoxAcc at IoU ``delta``: the threshold chosen on a
    held-out split, applied to the scored one (not Choe et al.'s score, which takes the best
    threshold on the scored images; see the module's doc).

    ``val_ious`` / ``test_ious``: (B, T) from :func:`box_ious` on the two splits. Returns the
    threshold that maximises the held-out accuracy (the lowest among ties) and the scored split's
    hits (0 / 1 per image) at that threshold."""
    val_ious = check_values("val_ious", val_ious, low=0, high=1, ndim=2)
    test_ious = check_values("test_ious", test_ious, low=0, high=1, ndim=2, empty=True)
    check_values("thresholds", thresholds, low=0, high=1, ndim=(0, 1))
    if not 0 < delta <= 1:
        raise ParameterError(f"delta={delta!r} must be in (0, 1] (an IoU)")
    if val_ious.shape[1] != test_ious.shape[1] or val_ious.shape[1] != len(np.atleast_1d(thresholds)):
        raise ParameterError("val_ious and test_ious must have one column per threshold")
    acc = (val_ious >= delta).mean(0)
    k = int(np.argmax(acc))
    return float(np.atleast_1d(thresholds)[k]), (test_ious[:, k] >= delta).astype(float)


def _masks(masks, maps, what="masks"):
    if masks is None:
        raise ParameterError(f"this metric needs {what}= (B, H, W) bool")
    m = torch.as_tensor(masks).bool().cpu()
    if m.shape != maps.shape:
        raise ParameterError(f"{what} must match maps {tuple(maps.shape)}, got {tuple(m.shape)}")
    return m


@register("box_iou", higher_is_better=True, reference="zhou2016", required=("boxes",),
          boxes=None, threshold=CAM_THRESHOLD, component="largest")
def _box_iou(model, images, targets, maps, boxes, threshold, component):
    """IoU of the box around the normalised map's pixels above ``threshold`` (its largest connected
    component; ``component="all"``: all of them; ``"each"``: the best box of a component) with the
    best-matching ground-truth box."""
    return box_ious(maps.cpu(), boxes, [threshold], component)[:, 0]


@register("box_accuracy", higher_is_better=True, reference="zhou2016", required=("boxes",),
          boxes=None, threshold=CAM_THRESHOLD, component="largest", iou=0.5)
def _box_accuracy(model, images, targets, maps, boxes, threshold, component, iou):
    """1 when the box (as ``box_iou``) overlaps a ground-truth box by IoU >= ``iou`` (CAM's 0.5), else 0."""
    if not 0 < iou <= 1:
        raise ParameterError(f"iou={iou!r} must be in (0, 1]")
    return (box_ious(maps.cpu(), boxes, [threshold], component)[:, 0] >= iou).astype(float)


def _ap(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score
    return float(average_precision_score(y, s))


@register("pxap", higher_is_better=True, reference="choe2020", required=("masks",), masks=None)
def _pxap(model, images, targets, maps, masks):
    """Average precision of the normalised map as a pixel-wise detector of the object mask
    (scikit-learn's ``average_precision_score``, the area under the precision-recall steps), per
    image. A constant map scores the object's share of the image; the mask itself scores 1.

    Thresholds: every distinct value of the map (the exact step-wise area), where Choe et al.'s
    code evaluates a fixed grid of thresholds 0, 0.01, ..., 0.99 on the normalised map; the two
    agree up to the grid's resolution (a map with many values between two grid points is scored
    more finely here). Per image here; :func:`pxap_pooled` is their pooled form."""
    m = _masks(masks, maps)
    if not m.flatten(1).any(1).all():
        raise ParameterError("pxap needs an object in every image (a mask with no pixel has no precision-recall curve)")
    norm = normalise(maps.cpu())
    return np.array([_ap(y.flatten().numpy(), s.flatten().numpy()) for y, s in zip(m, norm)])


def pxap_pooled(maps: torch.Tensor, masks) -> float:
    """Choe et al.'s PxAP: one precision-recall curve over every pixel of every image (each map
    normalised per image first), and its average precision, at every distinct value of the maps
    where their code takes a grid of 100 thresholds (see ``pxap``). Images without an object take part
    (their pixels are all negatives); at least one object pixel over all images is needed."""
    m = _masks(masks, maps)
    if not m.any():
        raise ParameterError("pxap_pooled needs an object pixel in at least one image (masks are all empty)")
    return _ap(m.flatten().numpy(), normalise(maps.cpu()).flatten().numpy())


@register("region_mean", higher_is_better=True, reference="yang2019bam", required=("masks",), masks=None)
def _region_mean(model, images, targets, maps, masks):
    """Mean of the normalised map over the region ``masks`` (BAM's attribution of a region); an
    all-zero map scores 0."""
    m = _masks(masks, maps).double()
    area = m.flatten(1).sum(1)
    if (area == 0).any():
        raise ParameterError("region_mean needs a region of at least one pixel in every image")
    return (normalise(maps.cpu()) * m).flatten(1).sum(1) / area


@register("top_k_iou", higher_is_better=True, reference="lin2020backdoor", required=("masks",),
          masks=None, k=None)
def _top_k_iou(model, images, targets, maps, masks, k):
    """IoU of the map's ``k`` highest pixels (default: as many as the region has) with the region
    ``masks``; ties in the map are broken by a fixed random order of the pixels
    (:mod:`xailib.metrics.order`), so a flat map is not favoured by its position."""
    m = _masks(masks, maps).flatten(1)
    n = m.shape[1]
    ks = m.sum(1) if k is None else torch.full((len(m),), int(k))
    if k is not None and not 1 <= int(k) <= n:
        raise ParameterError(f"k={k!r} must be in [1, {n}]")
    order = saliency_order(maps.detach().cpu().flatten(1))
    out = np.empty(len(m))
    for i in range(len(m)):
        top = torch.zeros(n, dtype=torch.bool)
        top[order[i, :int(ks[i])]] = True
        inter, union = (top & m[i]).sum().item(), (top | m[i]).sum().item()
        out[i] = inter / union if union else 0.0
    return out


@register("mask_energy", higher_is_better=True, reference="wang2020", required=("masks",), masks=None)
def _mask_energy(model, images, targets, maps, masks):
    """Share of the positive saliency that falls on the object: sum(S+ * mask) / sum(S+).

    A map with no positive value scores 0. Needs ``masks`` (B, H, W) bool, the ground truth.
    """
    masks = torch.as_tensor(masks).to(maps.device)
    if masks.shape != maps.shape:
        raise ParameterError(f"masks must match maps {tuple(maps.shape)}, got {tuple(masks.shape)}")
    pos = maps.double().clamp(min=0)
    total = pos.flatten(1).sum(1)
    inside = (pos * masks.double()).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-300), torch.zeros_like(total))


@register("relevance_mass_accuracy", higher_is_better=True, reference="arras2022", required=("masks",), masks=None)
def _relevance_mass_accuracy(model, images, targets, maps, masks):
    """Arras et al.'s relevance mass accuracy: the share of the positive relevance inside the
    ground truth, ``R_within / R_total`` over the positive part of the map (they keep positive
    relevance only). The same number as ``mask_energy`` and as Kohlbrenner et al.'s unweighted
    attribution localisation: one score under three names, registered under each so that a
    reader finds the one they know."""
    return _mask_energy(model, images, targets, maps, masks)


@register("relevance_rank_accuracy", higher_is_better=True, reference="arras2022", required=("masks",), masks=None)
def _relevance_rank_accuracy(model, images, targets, maps, masks):
    """Arras et al.'s relevance rank accuracy: with K the ground truth's size in pixels, the share
    of the map's K highest pixels that lie in it, ``|top_K & GT| / K``. Ties are broken by the
    book's fixed random order of pixels (:mod:`xailib.metrics.order`). Per image it orders maps
    as ``top_k_iou`` does (``IoU = r / (2 - r)``), on another scale."""
    m = _masks(masks, maps).flatten(1)
    k = m.sum(1)
    if (k == 0).any():
        raise ParameterError("relevance_rank_accuracy needs a ground truth of at least one pixel in every image")
    top = saliency_ranks(maps.detach().cpu().flatten(1)) < k[:, None]
    return (top & m).sum(1).double() / k.double()


@register("attribution_localisation", higher_is_better=True, reference="kohlbrenner2020", required=("masks",),
          masks=None, weighted=False)
def _attribution_localisation(model, images, targets, maps, masks, weighted):
    """Kohlbrenner et al.'s attribution localisation: the share of the positive relevance inside
    the object, ``mu = R_in+ / R_tot+`` (the same number as ``mask_energy``), and with ``weighted``
    the size-weighted ``mu_w = mu * S_tot / S_in`` as we read their correction for the object's
    size: a map uniform over the image scores 1 whatever the object's size, where ``mu`` rewards
    large objects. (Quantus 0.6's ``weighted`` multiplies by ``S_in / S_tot`` instead.) A map
    with no positive value scores 0."""
    m = _masks(masks, maps)
    area = m.flatten(1).sum(1).double()
    if (area == 0).any():
        raise ParameterError("attribution_localisation needs an object of at least one pixel in every image")
    mu = _mask_energy(model, images, targets, maps.cpu(), m)
    return mu * (m[0].numel() / area) if weighted else mu


@register("focus", higher_is_better=True, reference="ariasduart2022", required=("masks",), masks=None)
def _focus(model, images, targets, maps, masks):
    """Arias-Duart et al.'s Focus, on their mosaics (:func:`xailib.variants.mosaics`: four images
    in a 2 x 2 grid, two of the target class): the share of the positive relevance in the target's
    two quadrants, ``masks``. The same computation as ``mask_energy``; the test is in the image
    set, whose truth (which quadrants hold the class) needs no drawn object. A uniform map scores
    0.5."""
    return _mask_energy(model, images, targets, maps, masks)


@register("pointing_game", higher_is_better=True, reference="zhang2018",
          masks=None, boxes=None, tolerance=None)
def _pointing_game(model, images, targets, maps, masks, boxes, tolerance):
    """1 when the map's maximum lies on the object or within ``tolerance`` pixels of it, else 0.

    The object is given by its pixel ``masks`` (B, H, W) bool, or by its bounding ``boxes`` (one
    (k, 4) ``[x0, y0, x1, y1)`` tensor per image, the annotation Zhang et al. and the RISE paper
    use). ``tolerance`` defaults to Zhang et al.'s 15 px at 224 px, scaled to the image side.
    When the maximum is shared by several pixels, the score is the fraction of them that hit (the
    expected outcome of picking one at random), so flat maps are not favoured by scan order.
    """
    if (masks is None) == (boxes is None):
        raise ParameterError("metric 'pointing_game' needs exactly one of masks= (pixel masks) "
                             "or boxes= (bounding boxes)")
    if boxes is not None:
        if len(boxes) != len(maps):
            raise ParameterError(f"boxes must give one (k, 4) tensor per image ({len(maps)}), got {len(boxes)}")
        from ..data import boxes_to_mask
        masks = torch.stack([boxes_to_mask(torch.as_tensor(b, dtype=torch.float32).reshape(-1, 4),
                                           *maps.shape[-2:]) for b in boxes])
    masks = torch.as_tensor(masks).to(maps.device)
    if masks.shape != maps.shape:
        raise ParameterError(f"masks must match maps {tuple(maps.shape)}, got {tuple(masks.shape)}")
    side = maps.shape[-1]
    tol = 15.0 * side / 224 if tolerance is None else float(tolerance)
    if tol < 0:
        raise ParameterError(f"tolerance={tolerance!r} must be >= 0")
    r = int(tol)
    offs = torch.arange(-r, r + 1, device=maps.device, dtype=torch.float32)
    disc = ((offs[:, None] ** 2 + offs[None, :] ** 2) <= tol ** 2).float()[None, None]
    near = F.conv2d(masks.float()[:, None], disc, padding=r)[:, 0] > 0   # object dilated by tol
    peaks = maps == maps.flatten(1).amax(1)[:, None, None]
    return (peaks & near).flatten(1).sum(1).double() / peaks.flatten(1).sum(1).double()
