"""Causal metrics: the model's output as pixels are removed in the map's order.

Deletion and insertion (Petsiuk et al. 2018, section 4.1), and ROAD in both orders (Rong et al.
2022); the pixels removed become what the operator of :mod:`xailib.metrics.removal` makes of them.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import inference
from ..errors import ParameterError, check_choice, check_positive_int, check_values
from ..methods.registry import check_images, check_targets
from .order import saliency_ranks
from .registry import register
from .removal import check_removal, fill_image, remove


@torch.no_grad()
def causal_curves(model: nn.Module, images: torch.Tensor, targets, maps: torch.Tensor,
                  mode: str = "deletion", n_steps: int | None = None, removal=None,
                  blur_kernel: int | None = None, blur_sigma: float | None = None,
                  batch_size: int = 512, road_noise: float = 0.01, seed: int = 0, order: str = "most"):
    """Probability of the target class as pixels are changed in order of decreasing saliency
    (``order="least"``: increasing, the least relevant first).

    ``deletion`` removes the most salient pixels with the operator ``removal`` (default
    ``"dataset_mean"``: 0 in the model's normalised input, the data set's mean colour, as in the
    authors' code); ``insertion`` restores the most salient pixels into the image with every
    other pixel removed by ``removal`` (default ``"blur"``, the paper's blurred canvas;
    ``"dataset_mean"`` is the constant canvas the paper argues against). The operators are
    :mod:`xailib.metrics.removal`'s. ``n_steps`` steps of equal size
    (default: the image side, i.e. 224 steps of 224 pixels at 224 x 224 as in the authors'
    code). Ties in saliency are broken by a fixed random order of the pixels
(:mod:`xailib.metrics.order`), so a flat map is not taken from the top rows down. All steps of a group of images
    go through the model in one batch of at most ``batch_size`` rows (at least one image's).

    Returns ``(fractions (S+1,), curves (B, S+1), auc (B,))``; the AUC is the trapezoid rule over
    the fraction of pixels changed.
    """
    check_choice("mode", mode, ("deletion", "insertion"))
    check_choice("order", order, ("most", "least"))
    if len(images):
        check_images(images)
        check_targets(targets, len(images))
    if check_values("maps", maps, ndim=3, empty=True).shape != (images.shape[0], *images.shape[-2:]):
        raise ParameterError(f"maps must be (batch, H, W) matching images {tuple(images.shape)}, "
                             f"got {tuple(maps.shape)}")
    removal = ("dataset_mean" if mode == "deletion" else "blur") if removal is None else removal
    check_removal(removal)
    dev = inference.model_device(model, fallback=images.device)
    x = images.to(dev, torch.float32)
    B, C, H, W = x.shape
    HW = H * W
    S = H if n_steps is None else n_steps
    if not isinstance(S, int) or S < 1 or S > HW:
        raise ParameterError(f"n_steps={n_steps!r} must be an integer in [1, {HW}]")
    t = torch.as_tensor(targets, dtype=torch.long, device=dev).expand(B)
    counts = torch.round(torch.arange(S + 1, device=dev, dtype=torch.float64) * HW / S).long()
    rank = saliency_ranks((maps if order == "most" else -maps).to(dev).flatten(1))
    removed_image = None if removal == "road" else fill_image(
        x, removal, model=model, blur_kernel=blur_kernel, blur_sigma=blur_sigma)
    curves = torch.empty(B, S + 1, device=dev)
    per = max(1, batch_size // (S + 1))
    for i in range(0, B, per):
        sl = slice(i, min(i + per, B))
        changed = (rank[sl, None, :] < counts[None, :, None]).view(-1, S + 1, H, W)
        gone = changed if mode == "deletion" else ~changed          # the pixels removed at each step
        if removed_image is None:
            xs = remove(x[sl, None].expand(-1, S + 1, C, H, W).reshape(-1, C, H, W), gone.reshape(-1, H, W),
                        removal, road_noise=road_noise, seed=seed)
        else:
            xs = torch.where(gone[:, :, None], removed_image[sl, None], x[sl, None]).view(-1, C, H, W)
        probs = inference.probabilities(model, xs)
        curves[sl] = probs.view(-1, S + 1, probs.shape[1]).gather(
            2, t[sl, None, None].expand(-1, S + 1, 1))[..., 0]
    frac = counts.to(torch.float32) / HW
    return frac.cpu(), curves.cpu(), torch.trapezoid(curves, frac[None], dim=1).cpu()


@register("deletion", higher_is_better=False, reference="petsiuk2018",
          n_steps=None, removal="dataset_mean", batch_size=512, blur_kernel=None, blur_sigma=None,
          road_noise=0.01, seed=0)
def _deletion(model, images, targets, maps, n_steps, removal, batch_size, blur_kernel, blur_sigma,
              road_noise, seed):
    """Area under the target probability as the most salient pixels are removed (lower is better);
    ``removal`` is the operator (:mod:`xailib.metrics.removal`)."""
    return causal_curves(model, images, targets, maps, "deletion", n_steps, removal, blur_kernel=blur_kernel,
                         blur_sigma=blur_sigma, batch_size=batch_size, road_noise=road_noise, seed=seed)[2]


@register("insertion", higher_is_better=True, reference="petsiuk2018",
          n_steps=None, removal="blur", blur_kernel=None, blur_sigma=None, batch_size=512,
          road_noise=0.01, seed=0)
def _insertion(model, images, targets, maps, n_steps, removal, blur_kernel, blur_sigma, batch_size,
               road_noise, seed):
    """Area under the target probability as the most salient pixels are restored into the image
    with the others removed by ``removal`` (default: a blurred copy, the paper's) (higher is better)."""
    return causal_curves(model, images, targets, maps, "insertion", n_steps, removal,
                         blur_kernel=blur_kernel, blur_sigma=blur_sigma, batch_size=batch_size,
                         road_noise=road_noise, seed=seed)[2]


ROAD_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)   # the grad-cam package's ROADCombined default


def road_scores(model, images, targets, maps, *, percentiles=ROAD_PERCENTILES, road_noise: float = 0.01,
                seed: int = 0, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ROAD in both orders (Rong et al. 2022), as the ``grad-cam`` package's ``ROADCombined``
    computes it: for each percentile p, the change of the target's probability when the pixels
    above the map's p-th percentile are removed by ROAD's noisy linear imputation (most relevant
    first, MoRF: the top (100 - p) %), and when those below it are (least relevant first, LeRF: the
    bottom p %); each averaged over the percentiles, and the combination (LeRF - MoRF) / 2.
    Returns ``(morf, lerf, combined)`` per image (float64): a faithful map has MoRF well below 0,
    LeRF near 0, the combination high.

    As the package, with these differences, stated: the output is the target's probability (its
    ``ClassifierOutputSoftmaxTarget``); the package removes the pixels at or above an interpolated
    percentile, so ties at it are all removed or all kept, where here exactly round(share x pixels)
    are removed, ties taken in the book's fixed random order (a test shows the two equal on a map
    without ties); the imputation is the package's own system (:func:`xailib.metrics.removal.road`),
    its noise seeded. Removing every pixel (a singular system: nothing left to interpolate from)
    is not among the percentiles; the operator fills such an image with 0."""
    pct = check_values("percentiles", percentiles, low=0, high=100, ndim=1)
    if not len(pct) or ((pct <= 0) | (pct >= 100)).any():
        raise ParameterError(f"percentiles={percentiles!r} must lie strictly between 0 and 100")
    check_images(images)
    check_targets(targets, len(images))
    if check_values("maps", maps, ndim=3).shape != (images.shape[0], *images.shape[-2:]):
        raise ParameterError(f"maps must be (batch, H, W) matching images {tuple(images.shape)}, "
                             f"got {tuple(maps.shape)}")
    check_positive_int("batch_size", batch_size)
    dev = inference.model_device(model, fallback=images.device)
    x = images.to(dev, torch.float32)
    B, C, H, W = x.shape
    P = len(pct)
    t = torch.as_tensor(targets, dtype=torch.long, device=dev).expand(B)
    base = inference.probabilities(model, x).gather(1, t[:, None])[:, 0].double()
    change = {}
    for order in ("most", "least"):
        share = [(100 - float(p)) / 100 if order == "most" else float(p) / 100 for p in pct]
        counts = torch.tensor([int(round(f * H * W)) for f in share], device=dev)
        rank = saliency_ranks((maps if order == "most" else -maps).to(dev).flatten(1))
        gone = (rank[:, None, :] < counts[None, :, None]).view(-1, H, W)      # (B * P, H, W)
        xs = remove(x[:, None].expand(-1, P, C, H, W).reshape(-1, C, H, W), gone, "road",
                    road_noise=road_noise, seed=seed)
        probs = torch.cat([inference.probabilities(model, xs[i:i + batch_size]) for i in range(0, len(xs), batch_size)])
        after = probs.view(B, P, -1).gather(2, t[:, None, None].expand(-1, P, 1))[..., 0].double()
        change[order] = (after - base[:, None]).mean(1)
    morf, lerf = change["most"].cpu(), change["least"].cpu()
    return morf, lerf, (lerf - morf) / 2


@register("road_morf", higher_is_better=False, reference="rong2022", percentiles=ROAD_PERCENTILES,
          road_noise=0.01, seed=0, batch_size=512)
def _road_morf(model, images, targets, maps, percentiles, road_noise, seed, batch_size):
    """ROAD, most relevant first: the mean change of the target's probability over the
    percentiles removed (lower is better); see :func:`road_scores`."""
    return road_scores(model, images, targets, maps, percentiles=percentiles, road_noise=road_noise, seed=seed,
                       batch_size=batch_size)[0]


@register("road_lerf", higher_is_better=True, reference="rong2022", percentiles=ROAD_PERCENTILES,
          road_noise=0.01, seed=0, batch_size=512)
def _road_lerf(model, images, targets, maps, percentiles, road_noise, seed, batch_size):
    """ROAD, least relevant first (higher, nearer 0, is better); see :func:`road_scores`."""
    return road_scores(model, images, targets, maps, percentiles=percentiles, road_noise=road_noise, seed=seed,
                       batch_size=batch_size)[1]


@register("road_combined", higher_is_better=True, reference="rong2022", percentiles=ROAD_PERCENTILES,
          road_noise=0.01, seed=0, batch_size=512)
def _road_combined(model, images, targets, maps, percentiles, road_noise, seed, batch_size):
    """ROAD's combination as the grad-cam package's ``ROADCombined``: (LeRF - MoRF) / 2 (higher is
    better); see :func:`road_scores`."""
    return road_scores(model, images, targets, maps, percentiles=percentiles, road_noise=road_noise, seed=seed,
                       batch_size=batch_size)[2]


# --------------------------------------------------------------------------------------------
# Two more of the same kind, as Quantus and LATEC name them: Arya et al.'s monotonicity and Lin
# et al.'s recovering rate (trojans).
# --------------------------------------------------------------------------------------------

@register("monotonicity", higher_is_better=True, reference="arya2019", patch=None, removal="zero", batch_size=512)
def _monotonicity(model, images, targets, maps, patch, removal, batch_size):
    """Arya et al.'s monotonicity (as Quantus implements it): starting from the image with every
    ``patch`` x ``patch`` square removed (``removal``, default black), the squares are put back one
    at a time from the least relevant to the most (their summed map; ties in the book's fixed
    random order); 1 when the target's probability never falls along the way, else 0. Quantus
    adds single features (one pixel at a time: 4096 passes per 64-px image); the default square
    is 8 px at 64 (64 steps), scaled with the image side."""
    from .faithfulness import first_squares, ranked_squares
    check_images(images)
    check_targets(targets, len(images))
    check_positive_int("batch_size", batch_size)
    check_removal(removal)
    dev = inference.model_device(model, fallback=images.device)
    x = images.to(dev, torch.float32)
    B, C, H, W = x.shape
    side = max(1, round(8 * W / 64)) if patch is None else patch
    grid, rank = ranked_squares(-maps.to(dev), side)                 # least relevant first
    F = rank.shape[1]
    t = torch.as_tensor(targets, dtype=torch.long, device=dev).expand(B)
    canvas = fill_image(x, removal, model=model)
    out = torch.empty(B, dtype=torch.float64)
    per = max(1, batch_size // (F + 1))
    for i in range(0, B, per):
        sl = slice(i, min(i + per, B))
        back = first_squares(rank[sl], grid, F + 1)                   # the squares put back so far
        xs = torch.where(back, x[sl, None], canvas[sl, None]).view(-1, C, H, W)
        p = inference.probabilities(model, xs)
        p = p.view(-1, F + 1, p.shape[1]).gather(2, t[sl, None, None].expand(-1, F + 1, 1))[..., 0].double()
        out[sl] = (p.diff(dim=1) >= 0).all(1).double().cpu()
    return out


@register("recovering_rate", higher_is_better=True, reference="lin2020backdoor", required=("masks", "true_labels"),
          masks=None, true_labels=None, removal="road", road_noise=0.01, seed=0)
def _recovering_rate(model, images, targets, maps, masks, true_labels, removal, road_noise, seed):
    """Lin et al.'s recovering rate, on triggered images that a trojaned network sends to its
    target: the map's k highest pixels (k the trigger's area, ``masks``) are removed and filled in
    (``removal``, default ROAD's noisy linear imputation, the book's closest to their inpainting),
    and the image scores 1 when the network then names its ``true_labels`` again, else 0. The
    mean over images is their rate. Ties in the map in the book's fixed random order."""
    m = torch.as_tensor(masks).bool()
    if m.shape != maps.shape:
        raise ParameterError(f"masks must match maps {tuple(maps.shape)}, got {tuple(m.shape)}")
    truth = torch.as_tensor(true_labels).long().expand(len(images)).cpu()
    check_removal(removal)
    dev = inference.model_device(model, fallback=images.device)
    B, C, H, W = images.shape
    k = m.flatten(1).sum(1).to(dev)
    gone = (saliency_ranks(maps.to(dev).flatten(1)) < k[:, None]).view(B, H, W)
    x = remove(images.to(dev, torch.float32), gone, removal, model=model, road_noise=road_noise, seed=seed)
    return (inference.probabilities(model, x).argmax(1).cpu() == truth).double()
