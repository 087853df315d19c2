"""Robustness of a map: max-sensitivity (Yeh et al. 2019; the survey's eq. 18), through
``captum.metrics.sensitivity_max``, and sensitivity to hyper-parameters (Bansal et al. 2020, at the
end of the module).

    SENS_MAX(Phi, f, x, r) = max_{||y - x||_inf <= r} ||Phi(f, y) - Phi(f, x)||

estimated, as captum does, by the largest change over ``n_samples`` points drawn uniformly from
the L-infinity ball of radius ``radius`` around each image (pixel units in [0, 1]). Captum divides
each change by the norm of the unperturbed map (``relative=True``, the default here: a scale-free
number, comparable across methods); ``relative=False`` gives eq. 18's absolute change.

The metric re-runs the *method*, so it takes the method's name and parameters, not only its maps.
Two traps are handled here, and tested:

- **the same randomness.** captum hands the explanation function all perturbed copies in one
  batch (each image repeated ``n_samples`` times). A seeded method (SmoothGrad, LIME, RISE, ...)
  would then draw different noise for a copy than for the original, and the score would measure
  the method's own noise. The copies are therefore explained as ``n_samples`` batches shaped like
  the original one, each drawn exactly as the original batch is.
- **the feature mask.** LIME and KernelSHAP explain superpixels of the image. Segmenting each
  perturbed copy anew would change the features themselves; the original image's segments are
  passed to every copy (``segments``), repeated for its copies. captum expands ``target`` and
  ``baselines`` for its copies but not a feature mask, so a mask passed through its keyword
  arguments would pair the first images' segments with the wrong copies.

A method that ignores its input scores 0, the best score: a low sensitivity is necessary, not
sufficient (the chapter's constant map shows it).
"""
from __future__ import annotations

import torch
from captum.metrics import sensitivity_max

from .registry import register
from .draws import Samples
from ..errors import ParameterError, check_choice, check_positive_int, check_values
from ..methods.registry import check_images

SEGMENTED = ("lime", "kernel_shap")    # methods that explain superpixels: their segments are kept


def perturbations(images: torch.Tensor, radius: float, n_samples: int, seed: int) -> torch.Tensor:
    """(B * n_samples, C, H, W): each image repeated ``n_samples`` times (captum's order) plus
    uniform noise in [-radius, radius], drawn per image and sample from ``seed``
    (:mod:`xailib.metrics.draws`: the same draws for an image at any batching)."""
    check_images(images)
    check_values("radius", radius, low=0, ndim=0)
    check_positive_int("n_samples", n_samples)
    shape = (1, *images.shape[1:])
    noise = torch.cat(Samples(images, seed)(n_samples, lambda g: torch.rand(shape, generator=g)))
    return images.repeat_interleave(n_samples, 0) + ((noise * 2 - 1) * radius).to(images.device)


def segments_of(images: torch.Tensor, method: str, params: dict) -> torch.Tensor | None:
    """The superpixels a segmented method uses on ``images`` (None for other methods)."""
    from .. import methods
    check_choice("method", method, methods.METHODS)
    if method not in SEGMENTED:
        return None
    n = params.get("n_segments", methods.METHODS[method].defaults["n_segments"])
    return torch.stack([torch.from_numpy(methods.superpixels(im, n)) for im in images]).to(images.device)


def max_sensitivity(model, images, targets, method: str, method_params: dict | None = None, *,
                    radius: float = 0.02, n_samples: int = 10, relative: bool = True, seed: int = 0) -> torch.Tensor:
    """Per-image max-sensitivity of ``method`` (see the module's doc): captum's
    ``sensitivity_max`` on the explanations of :func:`perturbed_explanations`, which the other
    four robustness metrics read too (a table scoring a method under all five explains it once)."""
    a, draws, copies, _, _ = perturbed_explanations(model, images, targets, method, method_params, radius=radius,
                                                    n_samples=n_samples, seed=seed)
    b = len(images)
    # captum takes the norms in the maps' float32: LRP's maps on EfficientNet-Lite0 reach 1e20,
    # whose squares overflow to inf; a map that large is divided by its largest value (one divisor
    # for every map: the ratio does not move)
    big = float(a.abs().max())
    scale = big if big > 1e15 else 1.0
    served = iter([a, copies.reshape(b * n_samples, *copies.shape[2:])])   # the originals, then the copies

    def explanation(x, target):
        out = next(served)
        return (out / scale if scale != 1.0 else out,)     # a tuple: captum iterates over it

    t = torch.as_tensor(targets).expand(b) if torch.as_tensor(targets).ndim == 0 else torch.as_tensor(targets)
    flat = draws.reshape(b * n_samples, *draws.shape[2:])
    rel = sensitivity_max(explanation, images, perturb_func=lambda x, r: flat.to(x.device), perturb_radius=radius,
                          n_perturb_samples=n_samples, target=t, max_examples_per_batch=None)
    rel = rel.double().cpu()
    if relative:
        return rel
    norm = a.double().flatten(1).norm(dim=1).cpu()
    return rel * torch.where(norm > 0, norm, torch.ones_like(norm))


@register("max_sensitivity", higher_is_better=False, reference="yeh2019", required=("method",),
          method=None, method_params=None, radius=0.02, n_samples=10, relative=True, seed=0)
def _max_sensitivity(model, images, targets, maps, method, method_params, radius, n_samples, relative, seed):
    """Yeh et al.'s max-sensitivity of ``method`` (lower is better); ``maps`` are not used (the
    method is re-run on perturbed copies); see :mod:`xailib.metrics.robustness`."""
    return max_sensitivity(model, images, targets, method, method_params, radius=radius, n_samples=n_samples,
                           relative=relative, seed=seed)


# --------------------------------------------------------------------------------------------
# Sensitivity to hyper-parameters (Bansal, Agarwal and Nguyen 2020)
# --------------------------------------------------------------------------------------------

# Each method's hyper-parameters and the values tried around its default (the registry's). A
# method absent here has none (the gradient, Grad-CAM, guided backpropagation, ...): its map is
# fixed by the model and the image, and its hyper-parameter sensitivity is 0.
HYPERPARAMETERS = {
    "smoothgrad": {"noise": [0.05, 0.3], "n_samples": [5, 100]},
    "integrated_gradients": {"n_steps": [8, 128], "baseline": [0.5, 1.0]},
    "deeplift": {"baseline": [0.5, 1.0]},
    "expected_gradients": {"n_samples": [8, 128]},
    "lrp_epsilon": {"epsilon": [0.01, 1.0]},
    "occlusion": {"window": [8, 32]},                 # default: 18 px at 64 px (64 at 224)
    "lime": {"num_samples": [250, 4000], "n_segments": [25, 100]},
    "kernel_shap": {"nsamples": [250, 4000], "n_segments": [25, 100]},
    "rise": {"n_masks": [1000, 8000], "cells": [4, 10]},
    "neuromask": {"lambda_sp": [0.175, 0.7], "lambda_sm": [0.075, 0.3]},   # half and twice the authors' at 64 px
}


def hyperparameters(method: str) -> dict:
    """{parameter: values tried} for ``method`` ({} when it has none)."""
    from .. import methods
    if method not in methods.METHODS:
        raise ParameterError(f"unknown method {method!r}")
    return HYPERPARAMETERS.get(method, {})


def hyperparameter_sensitivity(model, images, targets, method: str, grid: dict | None = None, *,
                               measures=("spearman_abs", "ssim"), method_params: dict | None = None,
                               reference: torch.Tensor | None = None, explain_fn=None):
    """How far ``method``'s map moves when one hyper-parameter moves, the others at their values.

    ``grid`` is {parameter: values} (default :data:`HYPERPARAMETERS`'s); each value is compared
    with the map at ``method_params`` (``reference`` when it is already made) by the sanity checks'
    similarity measures (:mod:`xailib.metrics.similarity`). A method with no hyper-parameter is
    compared with its own map made a second time, the one change it can show. Returns one row per
    image and value: method, parameter, value, image, and per measure the similarity and the
    sensitivity 1 - similarity. ``explain_fn(method, **params)`` may supply cached maps."""
    import pandas as pd

    from .. import methods
    from .similarity import similarities
    check_choice("method", method, methods.METHODS)
    base = dict(method_params or {})
    grid = hyperparameters(method) if grid is None else grid
    for p in grid:
        if p not in methods.METHODS[method].defaults:
            raise ParameterError(f"{p!r} is not a parameter of method {method!r}")
    run = explain_fn or (lambda m, **kw: methods.explain(model, images, targets, m, **kw))
    ref = run(method, **base) if reference is None else reference
    trials = [(p, v) for p, values in grid.items() for v in values] or [("(none)", "(the same call again)")]
    rows = []
    for p, v in trials:
        other = run(method, **base) if p == "(none)" else run(method, **{**base, p: v})
        sims = similarities(ref, other, measures)
        for i in range(len(ref)):
            row = {"method": method, "parameter": p, "value": str(v), "image": i}
            for k in measures:
                row[k] = float(sims[k][i])
                row[f"1 - {k}"] = 1.0 - float(sims[k][i])
            rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# The rest of the robustness family of Quantus and LATEC, from one set of perturbed explanations:
# average sensitivity (Yeh et al. 2019), the local Lipschitz estimate (Alvarez-Melis and Jaakkola
# 2018) and relative input / output stability (Agarwal et al. 2022). They differ only in how a
# change of the map is compared with the change of the input, so the method is re-run once on
# the same draws as max-sensitivity's and the four read the same copies (a table that scores a
# method under all of them pays for its explanations once).
# --------------------------------------------------------------------------------------------

def perturbed_explanations(model, images, targets, method: str, method_params: dict | None = None, *,
                           radius: float = 0.02, n_samples: int = 10, seed: int = 0):
    """``(maps (B, H, W), copies (B, S, C, H, W), their maps (B, S, H, W), logits (B, C'),
    their logits (B, S, C'))``: ``method`` re-run on ``n_samples`` copies of each image with
    uniform noise in [-``radius``, ``radius``] (:func:`perturbations`), each batch of copies shaped
    and seeded like the original, a segmented method's superpixels kept. The maps as the method
    returns them (float32, on the model's device), kept for the next robustness metric of the same
    method, images and draws (:mod:`xailib.metrics.shared`)."""
    from .. import inference, methods
    from . import shared
    check_choice("method", method, methods.METHODS)
    if not check_values("radius", radius, ndim=0) > 0:
        raise ParameterError(f"radius={radius!r} must be > 0")
    check_positive_int("n_samples", n_samples)
    params = dict(method_params or {})
    b = len(images)
    t = torch.as_tensor(targets).expand(b) if torch.as_tensor(targets).ndim == 0 else torch.as_tensor(targets)

    def compute():
        seg = segments_of(images, method, params)
        p = {**params, "segments": seg} if seg is not None else params
        draws = perturbations(images, radius, n_samples, seed).view(b, n_samples, *images.shape[1:])
        with torch.enable_grad():
            maps = methods.explain(model, images, t, method, **p)
            copies = torch.stack([methods.explain(model, draws[:, s], t, method, **p) for s in range(n_samples)], 1)
        dev = inference.model_device(model, fallback=images.device)
        with torch.no_grad():
            logits = inference.forward(model, images.to(dev)).double().cpu()
            moved = torch.stack([inference.forward(model, draws[:, s].to(dev)).double().cpu()
                                 for s in range(n_samples)], 1)
        return maps, draws, copies, logits, moved

    k = shared.key(model, images, t, method, sorted(params.items(), key=str), float(radius), int(n_samples), int(seed))
    return shared.kept("perturbed explanations", k, compute)


def _as_float64(value: tuple) -> tuple:
    return tuple(v.detach().double().cpu() for v in value)


def _norms(x: torch.Tensor, keep: int) -> torch.Tensor:
    return x.flatten(keep).norm(dim=-1)


@register("avg_sensitivity", higher_is_better=False, reference="yeh2019", required=("method",),
          method=None, method_params=None, radius=0.02, n_samples=10, seed=0)
def _avg_sensitivity(model, images, targets, maps, method, method_params, radius, n_samples, seed):
    """Yeh et al.'s average sensitivity: the mean over the copies of ``||Phi(x') - Phi(x)|| /
    ||Phi(x)||`` (the relative form of the book's max-sensitivity, of which it is the mean; Quantus's
    defaults draw 200 copies at radius 0.2 of its normalised inputs). A map of zeros that stays
    zero scores 0."""
    a, _, copies, _, _ = _as_float64(perturbed_explanations(model, images, targets, method, method_params,
                                                            radius=radius, n_samples=n_samples, seed=seed))
    norm = _norms(a, 1)
    change = _norms(copies - a[:, None], 2)
    return torch.where(norm[:, None] > 0, change / norm.clamp(min=1e-300)[:, None], change).mean(1)


@register("local_lipschitz", higher_is_better=False, reference="alvarezmelis2018", required=("method",),
          method=None, method_params=None, radius=0.02, n_samples=10, seed=0)
def _local_lipschitz(model, images, targets, maps, method, method_params, radius, n_samples, seed):
    """Alvarez-Melis and Jaakkola's local Lipschitz estimate: the largest ``||Phi(x') - Phi(x)||_2 /
    ||x' - x||_2`` over the copies (they search the neighbourhood by optimisation; Quantus and the
    book sample it: 200 Gaussian copies there, the book's 10 uniform ones here). In the map's own
    units: compare methods whose maps share a scale, or read it beside avg_sensitivity."""
    a, x2, copies, _, _ = _as_float64(perturbed_explanations(model, images, targets, method, method_params,
                                                             radius=radius, n_samples=n_samples, seed=seed))
    dx = _norms(x2 - images.double().cpu()[:, None], 2)
    return (_norms(copies - a[:, None], 2) / dx.clamp(min=1e-300)).amax(1)


def _relative(change: torch.Tensor, base: torch.Tensor, eps: float) -> torch.Tensor:
    """``change / base`` element-wise, a zero in ``base`` replaced by ``eps`` (Agarwal et al.)."""
    return change / torch.where(base == 0, torch.full_like(base, eps), base)


def _stability(model, images, targets, method, method_params, radius, n_samples, seed, eps_min, against):
    a, x2, copies, logits, moved = _as_float64(perturbed_explanations(model, images, targets, method, method_params,
                                                                      radius=radius, n_samples=n_samples, seed=seed))
    num = _norms(_relative(copies - a[:, None], a[:, None], eps_min), 2)
    if against == "input":
        x = images.double().cpu()[:, None]
        den = _norms(_relative(x2 - x, x, eps_min), 2)
    else:
        den = _norms(_relative(moved - logits[:, None], logits[:, None], eps_min), 2)
    ratio = num / den.clamp(min=eps_min)
    same = moved.argmax(2) == logits.argmax(1)[:, None]          # Agarwal et al.: copies the network labels alike
    kept = torch.where(same, ratio, torch.full_like(ratio, -torch.inf)).amax(1)
    return torch.where(same.any(1), kept, ratio.amax(1))


@register("relative_input_stability", higher_is_better=False, reference="agarwal2022", required=("method",),
          method=None, method_params=None, radius=0.02, n_samples=10, seed=0, eps_min=1e-6)
def _relative_input_stability(model, images, targets, maps, method, method_params, radius, n_samples, seed, eps_min):
    """Agarwal et al.'s RIS: the largest, over the copies the network labels as it labels the
    image, of ``||(Phi(x) - Phi(x')) / Phi(x)|| / max(||(x - x') / x||, eps_min)`` (element-wise
    ratios, a zero replaced by ``eps_min``; every copy when none keeps the label)."""
    return _stability(model, images, targets, method, method_params, radius, n_samples, seed, eps_min, "input")


@register("relative_output_stability", higher_is_better=False, reference="agarwal2022", required=("method",),
          method=None, method_params=None, radius=0.02, n_samples=10, seed=0, eps_min=1e-6)
def _relative_output_stability(model, images, targets, maps, method, method_params, radius, n_samples, seed, eps_min):
    """Agarwal et al.'s ROS: as RIS, with the change of the logits in the denominator."""
    return _stability(model, images, targets, method, method_params, radius, n_samples, seed, eps_min, "output")
