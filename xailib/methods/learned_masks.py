"""Learned masks: a mask per image, optimised with the network's gradients.

Two methods, one section each below.

**NeuroMask** (Alzantot, Widdicombe, Julier and Srivastava, 2019): a mask learned to keep the decision.

Algorithm 1 of the paper: mask weights ``W`` start uniformly random, the mask is
``m = sigmoid(W / temperature)``, the model sees ``m * x``, and ``W`` follows RMSProp on

    lambda_p * L_pred + lambda_sp * L_sparse + lambda_sm * L_smooth

with ``L_pred`` the cross-entropy of the masked image's prediction to the original top class,
``L_sparse`` pulling every weight to ``-tau`` (mask 0: "hide") and ``L_smooth`` a norm of the
Laplacian of ``W``. The paper and its authors' public code (TensorFlow, github.com/nesl/neuromask)
disagree on almost every constant, so both are named settings (:data:`SETTINGS`, every difference in
:data:`DIFFERENCES`); the chapter ``05_neuromask`` lists them and says why ``"authors"`` is the
default.

Written by hand: captum 0.7, lime, shap and TorchRay (checked) have no NeuroMask, and
``torch.optim.RMSprop`` is not the RMSProp the authors ran (TensorFlow 1's starts its running
average at one, not zero, and puts ``eps`` under the square root), so the update is written out
(:func:`_rmsprop_step`, three lines).

Batched: every image of a batch has its own ``W`` and its own RMSProp state, and all start from
the same random draw (from ``seed``), so an image's mask does not depend on which images share its
batch, up to float rounding: another batch size runs other convolution kernels, and 2000
iterations amplify that a little (one vgg_mini image learned alone moved its deletion AUC by 0.02). ``patience`` stops an image whose total loss has not improved by 0.1 % for that many
iterations; stopped images leave the batch's forward pass.

**Extremal perturbation** (Fong, Patrick and Vedaldi 2019): learned perturbation masks of a fixed area.

Fong and Vedaldi's *meaningful perturbation* (2017), the method the NeuroMask paper names as its
closest, learns a mask that blurs the image where it is 0, trading the mask's area against the
class score with a weight; their *extremal perturbation* (2019) replaces that weight by a hard
area: the mask keeps a chosen share ``area`` of the image and, among such masks, keeps the class
score as high as it can ("preservation game"). With the area as a parameter, NeuroMask and this
method can be compared at the same area, which is why the book uses the 2019 form.

Written small, by hand: captum has neither method; TorchRay, the authors' library, has extremal
perturbation but is unmaintained (last release 2020), needs pycocotools and pymongo, and
handles one image at a time. What is kept of it: the mask is a smooth upsampled grid (one
parameter per ``step`` x ``step`` pixels, TorchRay's 7 px at 224 px in proportion), the
perturbation is a blur, the area enters as ``lambda_area * mean (sort(m) - r_a)^2`` with ``r_a``
the sorted mask of exactly ``area`` (``lambda_area`` 1000, stricter than TorchRay's 300, which
let the mask grow past its area on these networks' logits), the class score is the target's
logit, and the area's weight grows over the first half of the
iterations. Simplified: one blur level instead of TorchRay's pyramid of eight, Adam instead of SGD
with momentum, no random jitter, a linear instead of an exponential schedule.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .. import inference
from ..errors import ParameterError, check_choice, check_positive_int
from ..metrics.removal import blur
from .registry import register

# Discrete Laplacian filters: the paper's d2W/dx2 + d2W/dy2 (4 neighbours), and the two the
# authors' code uses (8 neighbours on CIFAR-10, a 5 x 5 "24 - sum of the rest" on ImageNet).
LAPLACIANS = {
    "4-neighbour": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "8-neighbour": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "5x5": [[-1] * 5, [-1] * 5, [-1, -1, 24, -1, -1], [-1] * 5, [-1] * 5],
}


@dataclass(frozen=True)
class Setting:
    """Every constant of one reading of NeuroMask."""
    lambda_p: float         # weight of the prediction loss
    lambda_sp: float        # weight of the sparsity loss
    lambda_sm: float        # weight of the smoothness loss
    tau: float              # the sparsity loss pulls W to -tau (the text; Algorithm 1 line 9: to 0)
    init: float             # W ~ Uniform(-init, init)
    temperature: float      # m = sigmoid(W / temperature)
    sparsity: str           # "abs(W + tau)" (the text, the code) or "abs(W)" (Algorithm 1, line 9)
    smoothness: str         # "abs" (L1, the paper) or "square" (the code)
    reduce: str             # "sum" (the paper's sums) or "mean" (the code)
    laplacian: str          # a key of LAPLACIANS
    lr: float               # RMSProp's learning rate (alpha)
    decay: float            # RMSProp's beta: v = decay * v + (1 - decay) * dW^2
    eps: float              # W -= lr * dW / sqrt(v + eps)
    v0: float               # RMSProp's running average at the start (TF 1: 1, PyTorch: 0)
    iterations: int         # T


def _authors(side: int) -> Setting:
    """The authors' code: its CIFAR-10 demo for images up to 64 px, its ImageNet demo above."""
    small = side <= 64
    return Setting(lambda_p=0.4, lambda_sp=0.35, lambda_sm=0.15 if small else 0.03, tau=10.0, init=10.0,
                   temperature=1.0 if small else 0.3, sparsity="abs(W + tau)", smoothness="square",
                   reduce="mean", laplacian="8-neighbour" if small else "5x5", lr=0.03, decay=0.9,
                   eps=1e-10, v0=1.0, iterations=2000 if small else 1000)


def _paper(side: int) -> Setting:
    """The paper's text where it says something, and the authors' code where it does not: the
    code's coefficients rescaled from means to the paper's sums (divided by the number of pixels,
    so each term weighs per pixel what it weighs in the code), its learning rate, iteration count
    and RMSProp constants."""
    a = _authors(side)
    k = len(LAPLACIANS["4-neighbour"])
    return replace(a, lambda_sp=a.lambda_sp / side ** 2, lambda_sm=a.lambda_sm / (side - k + 1) ** 2,
                   tau=20.0, init=20.0, temperature=1.0, smoothness="abs", reduce="sum",
                   laplacian="4-neighbour")


SETTINGS = {"authors": _authors, "paper": _paper}

# Where the two settings differ, and where each number comes from (the chapter shows this table).
DIFFERENCES = {
    "tau": ("20 (text)", "10 (weight_limit)"),
    "init": ("W ~ U(-tau, tau) = U(-20, 20) (Algorithm 1, line 3)", "U(-10, 10)"),
    "temperature": ("none: sigmoid(W)", "sigmoid(W / 0.3) on ImageNet, sigmoid(W / 1) on CIFAR-10"),
    "sparsity": ("sum |W + tau| (text; Algorithm 1's |W|_1 contradicts it, see the chapter)",
                 "mean |W + tau|"),
    "smoothness": ("L1 norm of the Laplacian of W, summed", "mean of the squared Laplacian"),
    "laplacian": ("d2/dx2 + d2/dy2: the 4-neighbour 3 x 3 filter",
                  "8-neighbour 3 x 3 (CIFAR-10), 5 x 5 with 24 at the centre (ImageNet)"),
    "coefficients": ("not given: the code's, divided by the number of terms summed",
                     "(0.4, 0.35, 0.15) CIFAR-10 demo, (0.4, 0.35, 0.03) ImageNet demo"),
    "learning rate, iterations": ("not given: the code's", "0.03; 2000 (CIFAR-10 demo), 1000 (ImageNet)"),
    "RMSProp": ("v = beta v + (1 - beta) dW^2; W -= alpha dW / sqrt(dW + eps) (line 14: read as "
                "sqrt(v + eps)); beta, eps not given: the code's", "TensorFlow 1: beta 0.9, eps 1e-10, v starts at 1"),
}


def get_setting(name: str = "authors", side: int = 64, **overrides) -> Setting:
    """The named setting for ``side``-pixel images, with ``overrides`` (None keeps a value)."""
    check_choice("setting", name, SETTINGS)
    s = SETTINGS[name](side)
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(asdict(s)))
    if unknown:
        raise ParameterError(f"unknown NeuroMask parameter(s): {', '.join(unknown)}; accepted: "
                             f"{', '.join(asdict(s))}")
    s = replace(s, **given)
    check_choice("laplacian", s.laplacian, LAPLACIANS)
    check_choice("sparsity", s.sparsity, ("abs(W + tau)", "abs(W)"))
    check_choice("smoothness", s.smoothness, ("abs", "square"))
    check_choice("reduce", s.reduce, ("sum", "mean"))
    check_positive_int("iterations", s.iterations, minimum=0)
    for k in ("lambda_p", "lambda_sp", "lambda_sm", "init", "eps", "v0"):
        if not getattr(s, k) >= 0:
            raise ParameterError(f"{k}={getattr(s, k)!r} must be >= 0")
    for k in ("temperature", "lr"):
        if not getattr(s, k) > 0:
            raise ParameterError(f"{k}={getattr(s, k)!r} must be > 0")
    if not 0 <= s.decay < 1:
        raise ParameterError(f"decay={s.decay!r} must be in [0, 1)")
    return s


def loss_terms(W: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, s: Setting,
               weights: dict | None = None) -> dict:
    """The three loss terms of each image, (B,) each: ``W`` (B, 1, H, W) mask weights,
    ``logits`` the model's outputs on the masked images; ``weights`` ({"lambda_p": (B,), ...})
    replaces the setting's coefficients with one per image (a sweep in one batch)."""
    lam = {k: getattr(s, k) for k in ("lambda_p", "lambda_sp", "lambda_sm")}
    lam.update(weights or {})
    red = (lambda z: z.flatten(1).sum(1)) if s.reduce == "sum" else (lambda z: z.flatten(1).mean(1))
    pred = F.cross_entropy(logits, targets, reduction="none")
    sparse = red((W + s.tau).abs() if s.sparsity == "abs(W + tau)" else W.abs())
    lap = torch.tensor(LAPLACIANS[s.laplacian], dtype=W.dtype, device=W.device)[None, None]
    edges = F.conv2d(W, lap)                       # "VALID", as the authors' code
    smooth = red(edges.abs() if s.smoothness == "abs" else edges.square())
    return {"pred": pred, "sparse": sparse, "smooth": smooth,
            "total": lam["lambda_p"] * pred + lam["lambda_sp"] * sparse + lam["lambda_sm"] * smooth}


def _rmsprop_step(W, grad, v, s: Setting):
    """RMSProp as TensorFlow 1 runs it (in place): v = decay v + (1 - decay) g^2,
    W -= lr g / sqrt(v + eps)."""
    v.mul_(s.decay).addcmul_(grad, grad, value=1 - s.decay)
    W.sub_(s.lr * grad / (v + s.eps).sqrt())


def learn(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, s: Setting, *, seed: int = 0,
          patience: int | None = None, record: tuple = (), progress: bool = False,
          weights: dict | None = None):
    """Learn one mask per image of ``x`` (B, 3, H, W) in [0, 1] for class ``targets`` (B,).

    The model runs in the fast form of :mod:`xailib.inference` (batch norm folded into the
    convolutions, channels_last: 1.3-1.5x faster here, the same masks within float rounding)
    unless that is switched off. ``weights``: one coefficient per image for any of
    ``lambda_p`` / ``lambda_sp`` / ``lambda_sm`` (B,), so that a sweep runs as one batch.

    Returns ``(masks, history)``: masks (B, H, W) in [0, 1]; history holds each loss term per
    image and iteration (B, T + 1; the last column is after the last step), the iteration at
    which each image stopped (``stopped``, B) and the masks at the iterations in ``record``
    (``snapshots``: {iteration: (B, H, W)})."""
    B, _, H, Wd = x.shape
    x = x.to(inference.model_device(model, fallback=x.device), torch.float32)
    form = inference.fast_form(model)
    net = form if form is not None else model
    weights = {k: torch.as_tensor(v, dtype=torch.float32, device=x.device).expand(B)
               for k, v in (weights or {}).items()}
    gen = torch.Generator().manual_seed(int(seed))
    start = (torch.rand(1, 1, H, Wd, generator=gen, dtype=torch.float64) * 2 - 1) * s.init
    W = start.to(x.device, torch.float32).repeat(B, 1, 1, 1)
    ms = torch.full_like(W, float(s.v0))          # RMSProp's running mean of squared gradients
    targets = targets.to(x.device)
    T = s.iterations
    terms = {k: torch.full((B, T + 1), float("nan")) for k in ("pred", "sparse", "smooth", "total")}
    snapshots = {}
    active = torch.ones(B, dtype=torch.bool, device=x.device)
    best = torch.full((B,), float("inf"), device=x.device)
    since = torch.zeros(B, dtype=torch.long, device=x.device)
    stopped = torch.full((B,), T, dtype=torch.long)
    params = [p for p in model.parameters()]
    was = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)      # the model is frozen: gradients to W only
    steps = range(T + 1)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="NeuroMask", leave=False)
    try:
        for it in steps:
            if it in record:
                snapshots[it] = torch.sigmoid(W / s.temperature)[:, 0].detach().cpu()
            idx = active.nonzero()[:, 0]
            if len(idx) == 0:
                break
            w = W[idx].clone().requires_grad_(True)
            logits = net(torch.sigmoid(w / s.temperature) * x[idx])
            loss = loss_terms(w, logits, targets[idx], s, {k: lam[idx] for k, lam in weights.items()})
            for k in terms:
                terms[k][idx.cpu(), it] = loss[k].detach().float().cpu()
            if it == T:
                break
            grad, = torch.autograd.grad(loss["total"].sum(), w)
            w = w.detach()
            msi = ms[idx]
            _rmsprop_step(w, grad, msi, s)
            W[idx], ms[idx] = w, msi
            if patience:
                total = loss["total"].detach()
                better = total < best[idx] * (1 - 1e-3)
                best[idx] = torch.where(better, total, best[idx])
                since[idx] = torch.where(better, torch.zeros_like(since[idx]), since[idx] + 1)
                done = idx[since[idx] >= patience]
                active[done] = False
                stopped[done.cpu()] = it + 1
    finally:
        for p, r in zip(params, was):
            p.requires_grad_(r)
    masks = torch.sigmoid(W / s.temperature)[:, 0].detach()
    return masks, {**terms, "stopped": stopped, "snapshots": snapshots}


@register("neuromask", family="perturbation", library="xailib (written by hand)", learned=True, reference="alzantot2019",
          batch_size=32, setting="authors", iterations=None, lr=None, lambda_p=None, lambda_sp=None,
          lambda_sm=None, tau=None, init=None, temperature=None, laplacian=None, patience=None, seed=0,
          progress=False)
def _neuromask(model, x, t, setting, iterations, lr, lambda_p, lambda_sp, lambda_sm, tau, init,
               temperature, laplacian, patience, seed, progress):
    """NeuroMask (Alzantot et al. 2019): the learned mask sigmoid(W) that keeps the target class
    while hiding as much of the image as it can, smoothly (Algorithm 1). ``setting``: "authors"
    (their public code; the default) or "paper" (the text); any other argument overrides one
    constant of the setting. ``patience``: stop an image after that many iterations without
    improvement (None: run every iteration, as the paper)."""
    if patience is not None:
        check_positive_int("patience", patience)
    s = get_setting(setting, x.shape[-1], iterations=iterations, lr=lr, lambda_p=lambda_p, lambda_sp=lambda_sp,
                 lambda_sm=lambda_sm, tau=tau, init=init, temperature=temperature, laplacian=laplacian)
    with torch.enable_grad():
        masks, _ = learn(model, x, t, s, seed=seed, patience=patience, progress=progress)
    return masks


# --------------------------------------------------------------------------------------------
# Extremal perturbation (Fong, Patrick and Vedaldi 2019)
# --------------------------------------------------------------------------------------------

def _ranked_target(area: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n): the sorted values of a 0 / 1 mask with round(area * n) ones (ascending)."""
    ones = torch.round(area * n).long().clamp(1, n)
    pos = torch.arange(n, device=area.device)[None]
    return (pos >= (n - ones)[:, None]).float()


@register("extremal_perturbation", family="perturbation", library="xailib (written by hand)", learned=True,
          reference="fong2019", batch_size=32, per_image=("area",), area=0.1, iterations=300, lr=0.05, step=None,
          blur_sigma=3.0, lambda_area=1000.0, seed=0)
def _extremal_perturbation(model, x, t, area, iterations, lr, step, blur_sigma, lambda_area, seed):
    """Extremal perturbation (preservation): the mask of area ``area`` (a share of the image, or
    one per image) that keeps the target's logit highest when the rest of the image is blurred
    (``blur_sigma`` px). The map is the mask, in [0, 1]."""
    check_positive_int("iterations", iterations, minimum=1)
    B, _, H, W = x.shape
    step = step or max(1, round(W * 7 / 224))        # TorchRay's 7 px at 224 px, in proportion
    check_positive_int("step", step)
    a = torch.as_tensor(area, dtype=torch.float32, device=x.device).flatten().expand(B) \
        if torch.as_tensor(area).numel() in (1, B) else None
    if a is None or not bool(((a > 0) & (a <= 1)).all()):
        raise ParameterError(f"area must be a share of the image in (0, 1], one or one per image; got {area!r}")
    form = inference.fast_form(model)
    net = form if form is not None else model
    canvas = blur(x, sigma=blur_sigma)
    target = _ranked_target(a, H * W)
    h, w = math.ceil(H / step), math.ceil(W / step)
    # every image starts from the same mask, 0.5 with a little seeded noise (ties in the sort)
    noise = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(int(seed))) - 0.5
    p = (0.5 + 0.01 * noise).to(x.device).repeat(B, 1, 1, 1).requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr)
    rows = torch.arange(B, device=x.device)
    with torch.enable_grad():
        for it in range(iterations):
            weight = lambda_area * min(1.0, 2 * it / iterations)    # the area constraint tightens over
            #                                                         the first half, as TorchRay's
            m = F.interpolate(p, size=(H, W), mode="bilinear", align_corners=False)
            logits = net(m * x + (1 - m) * canvas)
            reward = logits[rows, t]
            area_loss = (m.flatten(1).sort(1).values - target).square().mean(1)
            loss = (-reward + weight * area_loss).sum()
            p.grad, = torch.autograd.grad(loss, p)      # the mask only: the model stays untouched
            opt.step()
            with torch.no_grad():
                p.clamp_(0, 1)            # projected: a clamp inside the graph would stop gradients at 0 and 1
    m = F.interpolate(p.detach().clamp(0, 1), size=(H, W), mode="bilinear", align_corners=False)
    return m[:, 0]
