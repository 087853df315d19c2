"""Faithfulness to the model: infidelity (Yeh et al. 2019; the survey's eq. 17), through
``captum.metrics.infidelity``, and sensitivity-n (Ancona et al. 2018, at the end of the module).

    INFD(Phi, f, x) = E_I [ (I^T Phi(f, x) - (f(x) - f(x - I)))^2 ]

(the survey prints the square inside the expectation's first term, an extraction slip: Yeh et
al.'s definition squares the difference). How much the map's sum over a perturbation predicts
the output change that the perturbation causes. Choices a reader must see, all parameters:

- **what is perturbed.** A map holds one value per pixel, so a perturbation changes a pixel's
  colour channels together: ``perturbation="gaussian"`` subtracts the same N(0, ``noise``^2)
  value from every channel of each pixel (pixel units in [0, 1]); ``"square"`` removes a random
  ``side`` x ``side`` square with the shared operator ``removal`` (default: the data set's mean
  colour; :mod:`xailib.metrics.removal`), and its I is the square's indicator,
  so that I^T Phi is the map's sum over the square (the removal that completeness-satisfying
  methods, integrated gradients and DeepLIFT with that baseline, predict exactly);
  ``"noisy_baseline"`` is Yeh et al.'s noisy baseline, I = x - (x0 + eps): the perturbed image is
  the baseline x0 (the ``removal`` operator's fill, by default the data set's mean colour) plus
  grey noise eps ~ N(0, ``baseline_noise``^2) per pixel, clipped to [0, 1] (their code: sigma 0.2,
  baseline 0 on MNIST, clipped the same way). A large perturbation: the whole image moves.
- **why a signed small-noise perturbation sits unsigned maps at the random map's level.** Under
  small zero-mean noise, f(x) - f(x - I) ~ grad f . I, and the optimally rescaled infidelity of a
  map Phi is E[(grad f . I)^2] (1 - rho^2), rho the correlation of Phi . I with grad f . I over the
  draws, proportional to the cosine of Phi and grad f. A gradient's signs are mixed; a map that is
  zero or positive everywhere (Grad-CAM, LIME's positive weights, an absolute value) has a cosine
  near 0 with it, so it scores what a map that explains nothing scores, the random map's level,
  however well it localises. The square and the noisy baseline move pixels in one direction
  (towards the fill), where an unsigned map can correlate with the output's change.
- **the output**: the target's logit (what the gradient methods explain) or its probability.
- **rescaling** (``rescale=True``, Yeh et al.'s optimal scaling, captum's ``normalize``): the
  map is multiplied by the beta that minimises the infidelity on the drawn perturbations. Without
  it the score grows with the map's scale, so methods whose maps differ in units (a logit
  gradient against a probability-weighted superpixel) cannot be compared; a test shows that
  multiplying a map by 10 leaves the rescaled score unchanged and changes the other.
- **relative** (``relative=True``, this book's scale-free form): the rescaled score divided by
  E_I[(f(x) - f(x - I))^2], the infidelity of an all-zero map on the same perturbations. With
  the optimal beta it equals 1 - (E[I^T Phi dF])^2 / (E[(I^T Phi)^2] E[dF^2]): the share of the
  output's changes that the best multiple of the map leaves unexplained, in [0, 1], and free of
  the network's logit scale as well as the map's. Compare infidelities across networks only in
  this form: two networks that share every explanation but differ by a factor of their logits
  differ in the plain and rescaled scores by its square.
- ``n_samples`` perturbations per image, drawn from generators keyed by ``seed``, the image and
  the sample (:mod:`xailib.metrics.draws`): the same draws for every method and at any batching,
  so methods are compared on the same perturbations of each image.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from captum.metrics import infidelity as captum_infidelity

from .registry import register
from .. import inference
from .draws import Samples
from .order import saliency_ranks
from .removal import check_removal, fill_image, remove
from ..errors import ParameterError, check_choice, check_positive_int, check_values
from ..methods.registry import check_images, check_targets

PERTURBATIONS = ("gaussian", "square", "noisy_baseline")
OUTPUTS = ("logit", "probability")


def perturbation(kind: str, noise: float, side: int, removed, samples: Samples, fill=None):
    """captum's ``perturb_func``: (I, x - I) for a batch, with I as the module's doc describes;
    ``removed(x, region)`` is the square's removal operator, ``fill(x)`` the noisy baseline's x0
    (for ``"noisy_baseline"``, ``noise`` is its eps's standard deviation); ``samples`` hands out each
    image's own draws (:mod:`xailib.metrics.draws`), in captum's order (each image repeated k times)."""
    check_choice("perturbation", kind, PERTURBATIONS)
    if kind in ("gaussian", "noisy_baseline"):
        check_values("noise", noise, low=0, ndim=0)
    if kind == "noisy_baseline" and fill is None:
        raise ParameterError("the noisy baseline needs fill= (the baseline image x0 of a batch)")

    def perturb(x):
        n, c, h, w = x.shape
        k = n // len(samples.keys)
        if kind in ("gaussian", "noisy_baseline"):
            eps = torch.cat(samples(k, lambda g: torch.randn((1, 1, h, w), generator=g)))
            eps = (eps * noise).to(x.device).expand(n, c, h, w)
            if kind == "gaussian":
                return eps, x - eps
            moved = (fill(x) + eps).clamp(0, 1)
            return x - moved, moved
        if not 1 <= side <= min(h, w):
            raise ParameterError(f"side={side!r} must be in [1, {min(h, w)}]")
        corners = torch.tensor(samples(k, lambda g: (torch.randint(0, h - side + 1, (1,), generator=g).item(),
                                                     torch.randint(0, w - side + 1, (1,), generator=g).item())))
        r, q = corners[:, 0], corners[:, 1]
        ys, xs = torch.arange(h)[None, :], torch.arange(w)[None, :]
        inside = (((ys >= r[:, None]) & (ys < r[:, None] + side))[:, :, None]
                  & ((xs >= q[:, None]) & (xs < q[:, None] + side))[:, None, :]).to(x.device)[:, None]
        return inside.float().expand(n, c, h, w), removed(x, inside[:, 0])
    return perturb


@torch.no_grad()
def infidelity(model, images, targets, maps, *, perturbation_kind="gaussian", noise=0.1, side=8,
               n_samples=32, rescale=True, output="logit", seed=0, batch_size=2048,
               removal="dataset_mean", relative=False, baseline_noise=0.2) -> torch.Tensor:
    """Per-image infidelity of ``maps`` (B, H, W); see the module's doc (``noise``: the Gaussian
    perturbation's standard deviation; ``baseline_noise``: the noisy baseline's)."""
    check_choice("output", output, OUTPUTS)
    if relative and not rescale:
        raise ParameterError("relative=True needs rescale=True (the ratio is scale-free only for the optimally "
                             "rescaled map)")
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ParameterError(f"n_samples={n_samples!r} must be a positive integer")
    check_values("maps", maps, ndim=3)
    check_images(images)
    check_targets(targets, len(images))
    if maps.shape != (images.shape[0], *images.shape[-2:]):
        raise ParameterError(f"maps must be (batch, H, W) matching images {tuple(images.shape)}, "
                             f"got {tuple(maps.shape)}")
    if perturbation_kind == "gaussian" and not check_values("noise", noise, ndim=0) > 0:
        raise ParameterError(f"noise={noise!r} must be > 0")
    if perturbation_kind == "noisy_baseline":
        if not check_values("baseline_noise", baseline_noise, ndim=0) >= 0:
            raise ParameterError(f"baseline_noise={baseline_noise!r} must be >= 0")
        if removal == "road":
            raise ParameterError("the noisy baseline needs a baseline image: removal='road' has none (it "
                                 "depends on the region removed); take 'dataset_mean', 'zero', 'blur' or a grey value")
    dev = inference.model_device(model, fallback=images.device)
    x = images.to(dev, torch.float32)
    c = x.shape[1]
    check_removal(removal)

    def removed(z, region):
        return remove(z, region, removal, model=model, seed=seed)

    def forward(z):
        out = inference.forward(model, z)
        return torch.softmax(out, 1) if output == "probability" else out

    def run(attributions, normalize):
        # fresh draws per call: the same perturbations for the map and for the zero map, and for
        # an image at any batching (its draws are keyed by the image, xailib.metrics.draws)
        draws = Samples(images, seed)
        kind_noise = baseline_noise if perturbation_kind == "noisy_baseline" else noise
        perturb = perturbation(perturbation_kind, kind_noise, side, removed, draws,
                               fill=lambda z: fill_image(z, removal, model=model))
        return captum_infidelity(forward, perturb, x, attributions,
                                 target=torch.as_tensor(targets, device=dev), n_perturb_samples=n_samples,
                                 max_examples_per_batch=min(len(x) * n_samples, max(len(x), batch_size)),
                                 normalize=normalize).double()

    out = run((maps.to(dev, torch.float32) / c)[:, None].expand(-1, c, -1, -1), rescale)
    if relative:
        # E[dF^2]: the zero map's plain infidelity (a perturbation that changes nothing gives 0 / 0:
        # the map explains all there is, and scores 0)
        energy = run(torch.zeros_like(x), False)
        out = torch.where(energy > 0, out / energy.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(out))
    return out.cpu()


@register("infidelity", higher_is_better=False, reference="yeh2019", perturbation="gaussian", noise=0.1,
          side=8, n_samples=32, rescale=True, output="logit", seed=0, batch_size=2048, removal="dataset_mean",
          relative=False, baseline_noise=0.2)
def _infidelity(model, images, targets, maps, perturbation, noise, side, n_samples, rescale, output, seed,
                batch_size, removal, relative, baseline_noise):
    """Yeh et al.'s infidelity (lower is better); see :mod:`xailib.metrics.faithfulness`."""
    return infidelity(model, images, targets, maps, perturbation_kind=perturbation, noise=noise, side=side,
                      n_samples=n_samples, rescale=rescale, output=output, seed=seed, batch_size=batch_size,
                      removal=removal, relative=relative, baseline_noise=baseline_noise)


# --------------------------------------------------------------------------------------------
# Sensitivity-n (Ancona et al. 2018)
# --------------------------------------------------------------------------------------------
# Written here: captum has no sensitivity-n, and its definition is a few lines over the shared
# removal operator.

def feature_grid(height: int, width: int, cell: int) -> torch.Tensor:
    """(H, W) int64: the index of the ``cell`` x ``cell`` square each pixel falls in (row-major;
    ``cell=1``: every pixel is a feature)."""
    check_positive_int("height", height)
    check_positive_int("width", width)
    if not isinstance(cell, int) or isinstance(cell, bool) or not 1 <= cell <= min(height, width):
        raise ParameterError(f"cell={cell!r} must be an integer in [1, {min(height, width)}]")
    cols = -(-width // cell)
    return (torch.arange(height)[:, None] // cell) * cols + torch.arange(width)[None, :] // cell


def default_n_values(n_features: int, k: int = 8) -> list[int]:
    """``k`` subset sizes spread evenly in log scale from 1 feature to 80 % of them."""
    check_positive_int("n_features", n_features)
    check_positive_int("k", k)
    top = max(1, int(0.8 * n_features))
    return sorted({int(round(v)) for v in torch.logspace(0, math.log10(top), k).tolist()})


def draw_subsets(height: int, width: int, cell: int = 4, n_values=None, n_subsets: int = 64, seed: int = 0):
    """``(n_values, chosen (N, S, F) bool)``: for each n, ``n_subsets`` random sets of n of the
    image's ``cell`` x ``cell`` features, drawn from ``seed`` (the same for every image)."""
    if not isinstance(n_subsets, int) or n_subsets < 3:
        raise ParameterError(f"n_subsets={n_subsets!r} must be an integer of at least 3 (a correlation)")
    F = int(feature_grid(height, width, cell).max()) + 1
    n_values = default_n_values(F) if n_values is None else list(n_values)
    if not n_values or any(not isinstance(n, int) or isinstance(n, bool) or not 1 <= n < F for n in n_values):
        raise ParameterError(f"n_values={n_values!r} must be integers in [1, {F - 1}] "
                             f"(the image has {F} features of {cell} x {cell} px)")
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.stack([torch.argsort(torch.rand(n_subsets, F, generator=gen), dim=1) < n for n in n_values])
    return n_values, chosen


@torch.no_grad()
def subset_outputs(model, images, targets, *, n_values=None, cell: int = 4, n_subsets: int = 64,
                   removal="zero", output: str = "logit", seed: int = 0, batch_size: int = 1024,
                   road_noise: float = 0.01):
    """The half of sensitivity-n that does not depend on the map: for each n in ``n_values``,
    ``n_subsets`` random sets of n features (the same sets for every image, drawn from ``seed``),
    and the output change f(x) - f(x with the set removed by ``removal``) of the target.

    Returns ``(n_values, chosen (N, S, F) bool, deltas (B, N, S) float64)``. Every method's maps
    are then scored by :func:`sensitivity_n_from` against the same draws."""
    check_choice("output", output, OUTPUTS)
    check_removal(removal)
    check_images(images)
    check_targets(targets, len(images))
    check_positive_int("batch_size", batch_size)
    dev = inference.model_device(model, fallback=images.device)
    x = images.to(dev, torch.float32)
    B, C, H, W = x.shape
    n_values, chosen = draw_subsets(H, W, cell, n_values, n_subsets, seed)
    grid = feature_grid(H, W, cell).to(dev)
    chosen = chosen.to(dev)                                            # (N, S, F)
    t = torch.as_tensor(targets, dtype=torch.long, device=dev).expand(B)

    def out(z):
        o = inference.forward(model, z)
        o = torch.softmax(o, 1) if output == "probability" else o
        return o.double()

    base = out(x)[torch.arange(B, device=dev), t]
    regions = chosen[:, :, grid]                                       # (N, S, H, W)
    NS = regions.shape[0] * regions.shape[1]
    deltas = torch.empty(B, NS, dtype=torch.float64, device=dev)
    flat = regions.reshape(NS, H, W)
    per = max(1, batch_size // NS) if NS <= batch_size else 1
    step = NS if NS <= batch_size else batch_size
    for i in range(0, B, per):
        for j in range(0, NS, step):
            sl, r = slice(i, min(i + per, B)), flat[j:j + step]
            nb, nr = sl.stop - sl.start, len(r)
            xs = remove(x[sl, None].expand(nb, nr, C, H, W).reshape(-1, C, H, W),
                        r[None].expand(nb, nr, H, W).reshape(-1, H, W), removal, model=model, seed=seed,
                        road_noise=road_noise)
            o = out(xs).view(nb, nr, -1).gather(2, t[sl, None, None].expand(nb, nr, 1))[..., 0]
            deltas[sl, j:j + nr] = base[sl, None] - o
    return n_values, chosen.cpu(), deltas.view(B, *regions.shape[:2]).cpu()


def kept_subset_outputs(model, images, targets, **settings):
    """:func:`subset_outputs`, kept between calls (:mod:`xailib.metrics.shared`): a table scores
    its maps one call at a time, and the passes do not depend on the map."""
    from . import shared
    return shared.kept("subset outputs", shared.key(model, images, targets, *sorted(settings.items())),
                       lambda: subset_outputs(model, images, targets, **settings))


def sensitivity_n_from(maps: torch.Tensor, chosen: torch.Tensor, deltas: torch.Tensor, cell: int) -> torch.Tensor:
    """(B, N) Pearson correlation, over the subsets, between the map's sum over each subset and
    the output change its removal caused. A map whose subset sums do not vary (a constant map:
    every set of n features sums to the same) predicts none of the variation and scores 0."""
    check_values("maps", maps, ndim=3)
    check_values("deltas", deltas, ndim=3)
    B, H, W = maps.shape
    grid = feature_grid(H, W, cell)
    F = int(grid.max()) + 1
    if chosen.shape[-1] != F or deltas.shape[0] != B:
        raise ParameterError("maps, chosen and deltas come from different images or cells")
    per_feature = torch.zeros(B, F, dtype=torch.float64).index_add_(1, grid.flatten(), maps.double().cpu().flatten(1))
    sums = torch.einsum("bf,nsf->bns", per_feature, chosen.double())
    a = sums - sums.mean(-1, keepdim=True)
    d = deltas - deltas.mean(-1, keepdim=True)
    den = (a.pow(2).sum(-1) * d.pow(2).sum(-1)).sqrt()
    r = (a * d).sum(-1) / den.clamp(min=1e-300)
    flat = a.abs().amax(-1) <= 1e-12 * sums.abs().amax(-1).clamp(min=1e-300)
    return torch.where(flat | (den == 0), torch.zeros_like(r), r)


@register("sensitivity_n", higher_is_better=True, reference="ancona2018", n=None, cell=4, n_subsets=64,
          removal="zero", output="logit", seed=0, batch_size=1024)
def _sensitivity_n(model, images, targets, maps, n, cell, n_subsets, removal, output, seed, batch_size):
    """Ancona et al.'s sensitivity-n at one subset size ``n`` (default: 10 % of the features):
    the correlation between the map's sum over n removed features (``cell`` x ``cell`` squares)
    and the output change (higher is better; 1: the map predicts every removal exactly)."""
    H, W = images.shape[-2:]
    F = int(feature_grid(H, W, cell).max()) + 1
    n = max(1, round(0.1 * F)) if n is None else n
    n_values, chosen, deltas = kept_subset_outputs(model, images, targets, n_values=[n], cell=cell,
                                                   n_subsets=n_subsets, removal=removal, output=output,
                                                   seed=seed, batch_size=batch_size)
    return sensitivity_n_from(maps, chosen, deltas, cell)[:, 0]


# --------------------------------------------------------------------------------------------
# The same questions under the names of Quantus and LATEC: faithfulness correlation (Bhatt et
# al. 2020), monotonicity correlation (Nguyen and Martinez 2020), region perturbation (Samek et
# al. 2017). Each is a few lines over the estimators above and the shared removal operators.
# --------------------------------------------------------------------------------------------

@register("faithfulness_correlation", higher_is_better=True, reference="bhatt2020", subset=224, n_subsets=100,
          removal="zero", output="logit", seed=0, batch_size=1024)
def _faithfulness_correlation(model, images, targets, maps, subset, n_subsets, removal, output, seed, batch_size):
    """Bhatt et al.'s faithfulness correlation: the Pearson correlation, over ``n_subsets`` random
    sets of ``subset`` pixels (each set to black, ``removal="zero"``), between the map's sum over
    the set and the drop of the target's logit. Defaults are Quantus's (100 sets of 224 features,
    a black baseline, logits); a feature here is a pixel with its three channels, where Quantus
    draws single channel values. It is sensitivity-n's estimator at one subset size, with pixels
    for features (``sensitivity_n`` with ``cell=1``)."""
    H, W = images.shape[-2:]
    if not isinstance(subset, int) or isinstance(subset, bool) or not 1 <= subset < H * W:
        raise ParameterError(f"subset={subset!r} must be an integer in [1, {H * W - 1}] (pixels of the image)")
    n_values, chosen, deltas = kept_subset_outputs(model, images, targets, n_values=[subset], cell=1,
                                                   n_subsets=n_subsets, removal=removal, output=output, seed=seed,
                                                   batch_size=batch_size)
    return sensitivity_n_from(maps, chosen, deltas, 1)[:, 0]


@torch.no_grad()
def cell_variances(model, images, targets, *, cell: int = 4, n_samples: int = 10, output: str = "logit",
                   seed: int = 0, batch_size: int = 1024) -> torch.Tensor:
    """The half of monotonicity correlation that does not depend on the map: for each ``cell`` x
    ``cell`` square of each image, the mean squared change of the target's output when the square
    is replaced by uniform noise, over ``n_samples`` noise images drawn per image
    (:mod:`xailib.metrics.draws`), divided by the squared output (Nguyen and Martinez's
    normalisation). Returns (B, F) float64."""
    check_choice("output", output, OUTPUTS)
    check_images(images)
    check_targets(targets, len(images))
    check_positive_int("cell", cell)
    check_positive_int("n_samples", n_samples)
    check_positive_int("batch_size", batch_size)
    dev = inference.model_device(model, fallback=images.device)
    x = images.to(dev, torch.float32)
    B, C, H, W = x.shape
    grid = feature_grid(H, W, cell).to(dev)
    F = int(grid.max()) + 1
    t = torch.as_tensor(targets, dtype=torch.long, device=dev).expand(B)
    noise = torch.cat(Samples(images, seed)(n_samples, lambda g: torch.rand((1, C, H, W), generator=g))).to(dev)
    noise = noise.view(B, n_samples, C, H, W)

    def out(z):
        o = inference.forward(model, z)
        o = torch.softmax(o, 1) if output == "probability" else o
        return o.double()

    base = out(x)[torch.arange(B, device=dev), t]
    cells = grid[None] == torch.arange(F, device=dev)[:, None, None]             # (F, H, W)
    rows = F * n_samples
    var = torch.empty(B, F, dtype=torch.float64, device=dev)
    step = max(1, min(rows, batch_size) // n_samples)                             # cells per pass
    for i in range(B):
        total = torch.empty(F, dtype=torch.float64, device=dev)
        for j in range(0, F, step):
            c = cells[j:j + step]                                                 # (k, H, W)
            xs = torch.where(c[:, None, None], noise[i][None], x[i][None, None])  # (k, S, C, H, W)
            o = out(xs.reshape(-1, C, H, W))[:, t[i]].view(len(c), n_samples)
            total[j:j + len(c)] = (o - base[i]).pow(2).mean(1)
        var[i] = total / base[i].pow(2).clamp(min=1e-12)
    return var.cpu()


@register("monotonicity_correlation", higher_is_better=True, reference="nguyen2020", cell=None, n_samples=10,
          output="logit", seed=0, batch_size=1024)
def _monotonicity_correlation(model, images, targets, maps, cell, n_samples, output, seed, batch_size):
    """Nguyen and Martinez's monotonicity: Spearman's correlation, over the image's ``cell`` x
    ``cell`` squares (default 4 px at 64, scaled with the image side: 256 squares at any size, so
    a 224-px photograph costs the passes a 64-px image does), between the map's absolute sum over each square and how much replacing the
    square by uniform noise moves the target's output (:func:`cell_variances`). Quantus perturbs
    groups of single features in the map's own order (100 noise draws each, 4096 x 100 passes for
    one 64-px image at one pixel per group); fixed squares make the passes the same for every map,
    so every method of a table is scored on one set of them (kept between calls:
    :mod:`xailib.metrics.shared`). 0 for a map whose squares all sum alike."""
    from scipy import stats
    from . import shared
    H, W = maps.shape[-2:]
    cell = max(1, round(4 * W / 64)) if cell is None else cell
    v = shared.kept("cell variances", shared.key(model, images, targets, cell, n_samples, output, seed),
                    lambda: cell_variances(model, images, targets, cell=cell, n_samples=n_samples, output=output,
                                           seed=seed, batch_size=batch_size))
    grid = feature_grid(H, W, cell)
    a = torch.zeros(len(maps), v.shape[1], dtype=torch.float64).index_add_(1, grid.flatten(), maps.double().cpu().abs().flatten(1))
    out = []
    for ai, vi in zip(a.numpy(), v.numpy()):
        flat = np.ptp(ai) <= 1e-12 * max(abs(ai).max(), 1e-300) or np.ptp(vi) == 0
        out.append(0.0 if flat else float(stats.spearmanr(ai, vi).statistic))
    return torch.tensor(out, dtype=torch.float64)


@torch.no_grad()
def region_perturbation(model, images, targets, maps, *, patch: int | None = None, n_regions: int = 100,
                        order: str = "most", seed: int = 0, batch_size: int = 512):
    """Samek et al.'s region perturbation: the image's ``patch`` x ``patch`` squares (default
    their 9 px at 224, scaled to the image side) ranked by the map's sum over each (``order``
    ``"most"``: MoRF, the most relevant first; ``"least"``: LeRF; ties in the book's fixed random
    order), replaced one by one by uniform noise (one noise image per image, drawn per image), and
    the target's probability after each of ``n_regions`` steps. Returns (B, n_regions + 1) curves,
    the unperturbed image first."""
    check_choice("order", order, ("most", "least"))
    check_images(images)
    check_targets(targets, len(images))
    check_positive_int("n_regions", n_regions)
    check_positive_int("batch_size", batch_size)
    dev = inference.model_device(model, fallback=images.device)
    x = images.to(dev, torch.float32)
    B, C, H, W = x.shape
    side = max(1, round(9 * W / 224)) if patch is None else patch
    grid, rank = ranked_squares(maps.to(dev) if order == "most" else -maps.to(dev), side)
    F = rank.shape[1]
    if n_regions > F:
        raise ParameterError(f"n_regions={n_regions} is more than the image's {F} squares of {side} px")
    t = torch.as_tensor(targets, dtype=torch.long, device=dev).expand(B)
    noise = torch.cat(Samples(images, seed)(1, lambda g: torch.rand((1, C, H, W), generator=g))).to(dev)
    curves = torch.empty(B, n_regions + 1, dtype=torch.float64)
    per = max(1, batch_size // (n_regions + 1))
    for i in range(0, B, per):
        sl = slice(i, min(i + per, B))
        gone = first_squares(rank[sl], grid, n_regions + 1)
        xs = torch.where(gone, noise[sl, None], x[sl, None]).view(-1, C, H, W)
        probs = inference.probabilities(model, xs)
        p = probs.view(-1, n_regions + 1, probs.shape[1])
        curves[sl] = p.gather(2, t[sl, None, None].expand(-1, n_regions + 1, 1))[..., 0].double().cpu()
    return curves


def ranked_squares(maps: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grid (H, W), ranks (B, F))``: the images' ``side`` x ``side`` squares
    (:func:`feature_grid`) and each square's place when ranked by the map's sum over it, the
    largest first (ties in the book's fixed random order)."""
    check_positive_int("patch", side)
    B, H, W = maps.shape
    grid = feature_grid(H, W, side).to(maps.device)
    F = int(grid.max()) + 1
    sums = torch.zeros(B, F, dtype=torch.float64, device=maps.device).index_add_(1, grid.flatten(),
                                                                                  maps.double().flatten(1))
    return grid, saliency_ranks(sums)


def first_squares(ranks: torch.Tensor, grid: torch.Tensor, n_steps: int) -> torch.Tensor:
    """(b, n_steps, 1, H, W) bool: at step k, the pixels of each image's k first-ranked squares."""
    b, F = ranks.shape
    steps = torch.arange(n_steps, device=ranks.device)
    chosen = ranks[:, None, :] < steps[None, :, None]                               # (b, S, F)
    return chosen.gather(2, grid.flatten()[None, None].expand(b, n_steps, grid.numel())).view(b, n_steps, 1, *grid.shape)


def aopc(curves: torch.Tensor) -> torch.Tensor:
    """Samek et al.'s area over the perturbation curve: the mean over the steps k = 0 .. L of
    f(x) - f(x after k steps)."""
    return (curves[:, :1] - curves).mean(1)


@register("region_perturbation_morf", higher_is_better=True, reference="samek2017", patch=None, n_regions=100,
          seed=0, batch_size=512)
def _region_perturbation_morf(model, images, targets, maps, patch, n_regions, seed, batch_size):
    """Samek et al.'s AOPC with the most relevant squares perturbed first (higher is better: the
    map finds what the output needs); see :func:`region_perturbation`."""
    return aopc(region_perturbation(model, images, targets, maps, patch=patch, n_regions=n_regions, order="most",
                                    seed=seed, batch_size=batch_size))


@register("region_perturbation_lerf", higher_is_better=False, reference="samek2017", patch=None, n_regions=100,
          seed=0, batch_size=512)
def _region_perturbation_lerf(model, images, targets, maps, patch, n_regions, seed, batch_size):
    """Samek et al.'s AOPC with the least relevant squares perturbed first (lower is better: what
    the map calls irrelevant should not matter)."""
    return aopc(region_perturbation(model, images, targets, maps, patch=patch, n_regions=n_regions, order="least",
                                    seed=seed, batch_size=batch_size))
