"""The methods' registry and its entry point: ``explain(model, images, targets, method, **params) -> (B, H, W)``.

This is the thesis's *Attributer*: every registered method takes a batch of [0, 1] images
(B, 3, H, W) and one target class per image and returns one saliency map per image at input
resolution, as a float32 tensor on the images' device. Larger values mean "more evidence for the
target". The methods themselves live one family per module beside this one (as Captum's
``attr/_core``) and declare themselves here with :func:`register`.

Pixel attributions (B, 3, H, W) are reduced over colour channels: ``max_abs`` (the maximum
absolute value, Simonyan et al.'s definition of a saliency map) for the gradient-visualisation
methods, ``sum`` for the methods whose attributions add up to an output difference
(gradient x input, integrated gradients, DeepLIFT, expected gradients, LRP), ``mean`` for
occlusion (captum copies one window's value into every channel). ``reduce=`` overrides it.
"""
from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .. import inference
from ..errors import ParameterError, check_choice, check_positive_int, check_unknown_keys
from ..models import check_input_size

REDUCTIONS = ("sum", "mean", "max_abs", "abs_sum")


@dataclass(frozen=True)
class Method:
    """A registered explanation method and what a reader needs to know about it."""

    name: str
    fn: Callable
    family: str         # gradient, backprop, cam, perturbation, surrogate
    library: str        # which package computes it
    reference: str      # bibliography key
    defaults: dict = field(default_factory=dict)
    required: tuple = ()
    batch_size: int = 32  # images per call of fn (fn batches its own model calls further)
    learned: bool = False  # optimises a mask per image (hundreds of passes with gradients)
    control: bool = False  # a reference, not an explanation (the edge detector of the sanity checks)
    per_image: tuple = ()  # parameters that may hold one value per image (sliced with the images)
    batch_invariant: bool = False  # an image's map has the same bits in any batch (xailib.map_store)


METHODS: dict[str, Method] = {}


def register(name: str, *, family: str, library: str, reference: str, required: tuple = (),
             batch_size: int = 32, learned: bool = False, control: bool = False, per_image: tuple = (),
             batch_invariant: bool = False, **defaults):
    """Decorator: add ``fn(model, x, targets, **params) -> (B, H, W)`` to the registry.
    ``learned``: the method optimises a mask per image (NeuroMask, extremal perturbation);
    ``control``: a reference map that explains nothing (the sanity checks' edge detector);
    ``per_image``: the parameters that may be given one value per image, which :func:`explain`
    cuts into the same chunks as the images; ``batch_invariant``: an image's map has the same bits
    whatever batch it is explained in (measured, and tested in ``tests/test_map_store.py``), so the
    map store reuses it across batchings."""
    def deco(fn):
        METHODS[name] = Method(name, fn, family, library, reference, defaults, required, batch_size,
                               learned, control, tuple(per_image), batch_invariant)
        return fn
    return deco


def method_names(learned: bool = False, controls: bool = False) -> list[str]:
    """The registered methods; the learned masks (each image an optimisation of hundreds of
    forward and backward passes, chapter 05) only with ``learned=True``, the controls (maps made
    without the model) only with ``controls=True``. A chapter's ``methods="all"`` means the
    others: chapters 01-04 were built, and are budgeted, on them."""
    return [name for name, m in METHODS.items()
            if (learned or not m.learned) and (controls or not m.control)]


def _reduce(attr: torch.Tensor, how: str) -> torch.Tensor:
    check_choice("reduce", how, REDUCTIONS)
    if how == "sum":
        return attr.sum(1)
    if how == "mean":
        return attr.mean(1)
    if how == "abs_sum":
        return attr.abs().sum(1)
    return attr.abs().amax(1)


def _targets(targets, n: int, device, model=None, example=None) -> torch.Tensor:
    t = check_targets(targets, n, model, example)
    return t.to(device)


# captum's notices about what it does on purpose here (gradients required on the input copies it
# is given; hooks set on ReLUs for the backprop rules and removed afterwards): expected, so silenced
CAPTUM_NOTICES = ("Input Tensor 0 did not already require gradients",
                  "Setting backward hooks on ReLU activations",
                  "Setting forward, backward hooks and attributes on non-linear")


# Pixels of a [0, 1] image stay far below this even with the noise the chapters add (sMPRT's
# noisy copies, max-sensitivity's); a 0-255 image goes far above it.
MAX_PIXEL = 8.0


def check_images(images) -> None:
    """One sentence for each input a method would otherwise turn into a confusing error or, worse,
    into maps of NaN without a word: not a tensor, not (batch, 3, H, W), an empty batch, NaN or
    infinite pixels, 0-255 pixels (the models take [0, 1] and normalise them themselves)."""
    if not torch.is_tensor(images):
        raise ParameterError(f"images must be a torch tensor (batch, 3, H, W) in [0, 1], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ParameterError(f"images must be (batch, 3, H, W), got {tuple(images.shape)}")
    if len(images) == 0:
        raise ParameterError("images is an empty batch (0, 3, H, W): there is nothing to explain")
    if not torch.is_floating_point(images):
        raise ParameterError(f"images must be floating point in [0, 1], got {images.dtype} (divide 0-255 pixels by 255)")
    bad = ~torch.isfinite(images)
    if bad.any():
        which = torch.nonzero(bad.flatten(1).any(1)).flatten().tolist()
        raise ParameterError(f"images hold NaN or infinite pixels (image{'s' if len(which) > 1 else ''} "
                             f"{', '.join(map(str, which[:5]))}{' ...' if len(which) > 5 else ''}): every map "
                             "of them would be NaN")
    top = float(images.abs().amax())
    if top > MAX_PIXEL:
        raise ParameterError(f"images reach {top:.4g}, but the models take pixels in [0, 1] (they normalise them "
                             "themselves): divide 0-255 images by 255")


def check_targets(targets, n: int, model=None, example=None) -> torch.Tensor:
    """``targets`` as one class index per image, each in [0, number of classes): the number of
    classes from one forward pass of ``model`` on ``example[:1]`` when given. A negative index is
    an error, not "counted from the end" as Python would read it."""
    if targets is None:
        raise ParameterError("targets=None: give the class to explain, one index per image (the labels, or "
                             "the model's own predictions, model(images).argmax(1))")
    t = torch.as_tensor(targets)
    if torch.is_floating_point(t) or t.dtype == torch.bool:
        raise ParameterError(f"targets must be integer class indices, got {t.dtype}")
    t = t.to(torch.long)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ParameterError(f"targets must be one class index or one per image ({n}), "
                             f"got shape {tuple(t.shape)}")
    if n and int(t.min()) < 0:
        raise ParameterError(f"targets must be class indices >= 0, got {int(t.min())} "
                             "(a negative index is not read as counting from the last class)")
    if n and model is not None and example is not None:
        was_training = model.training
        model.eval()                   # no batch-norm statistics move for this one look
        try:
            with torch.no_grad():
                classes = model(example[:1]).shape[-1]
        finally:
            model.train(was_training)
        if int(t.max()) >= classes:
            raise ParameterError(f"targets must be class indices below {classes} (the model's number of "
                                 f"classes), got {int(t.max())}")
    return t


def explain(model: nn.Module, images: torch.Tensor, targets, method: str = "gradient", *,
            batch_size: int | None = None, progress: bool = False, fast=None,
            **params) -> torch.Tensor:
    """Saliency maps (B, H, W) of ``method`` for ``model`` on ``images`` and ``targets``.

    ``params`` are the method's own parameters (see ``METHODS[method].defaults``); unknown
    ones are an error. ``batch_size`` is how many images go to the method at once. ``fast``
    (default: on, or ``XAILIB_FAST``) runs the method's no-grad model calls on the fast path of
    :mod:`xailib.inference`; ``fast=False`` runs the model exactly as given.
    """
    check_choice("method", method, METHODS)
    m = METHODS[method]
    check_unknown_keys(f"method {method!r}", params, m.defaults)
    missing = [k for k in m.required if params.get(k) is None]
    if missing:
        raise ParameterError(f"method {method!r} needs {', '.join(missing)}= (see its docstring: "
                             f"{m.fn.__doc__.strip().splitlines()[0]})")
    check_images(images)
    if hasattr(model, "xai_input_size"):
        check_input_size(model, images)
    bs = batch_size or m.batch_size
    check_positive_int("batch_size", bs)
    dev = inference.model_device(model, fallback=images.device)
    out_dev = images.device
    x_all = images.to(dev, torch.float32)
    t_all = _targets(targets, len(images), dev, model, x_all)
    kw = {**m.defaults, **params}
    per = {}                          # one value per image: cut with the images, chunk by chunk
    for k in m.per_image:
        v = torch.as_tensor(kw[k]) if kw.get(k) is not None else None
        if v is not None and len(images) > 1 and (v.numel() == len(images) if v.ndim <= 1
                                                  else v.shape[0] == len(images)):
            per[k] = v.flatten() if v.ndim <= 1 else v
            del kw[k]
    chunks = range(0, len(images), bs)
    if progress:
        from tqdm.auto import tqdm
        chunks = tqdm(chunks, desc=method, leave=False)
    maps = []
    was_training = model.training
    model.eval()
    try:
        with inference.options(fast=fast), warnings.catch_warnings():
            for notice in CAPTUM_NOTICES:
                warnings.filterwarnings("ignore", message=notice, category=UserWarning)
            for i in chunks:
                s = m.fn(model, x_all[i:i + bs], t_all[i:i + bs], **kw, **{k: v[i:i + bs] for k, v in per.items()})
                maps.append(s.detach().to(torch.float32))
    finally:
        model.train(was_training)
    out = torch.cat(maps)
    assert out.shape == (len(images), *images.shape[-2:]), (method, out.shape)
    return out.to(out_dev)


class Attributer:
    """The thesis's Attributer: a method and its parameters bound once, called on batches."""

    def __init__(self, model: nn.Module, method: str, **params):
        check_choice("method", method, METHODS)
        check_unknown_keys(f"method {method!r}", set(params) - {"batch_size", "progress", "fast"},
                           METHODS[method].defaults)
        self.model, self.method, self.params = model, method, params
        self.seconds = 0.0

    def __call__(self, images: torch.Tensor, targets) -> torch.Tensor:
        t0 = time.perf_counter()
        out = explain(self.model, images, targets, self.method, **self.params)
        self.seconds += time.perf_counter() - t0
        return out

    def __repr__(self):
        return f"Attributer({self.method!r}, {self.params})"


#: How many images of 224 x 224 px one internal pass of a sampling method may put through the
#: network at once (SmoothGrad's noisy copies, integrated and expected gradients' path points):
#: 128 of them took 11 GB through EfficientNet-Lite0's backward pass here (``scripts/pass_memory.py``),
#: where 400 ran the book's 24 GB machine out of memory.
PASS_PIXELS = 128 * 224 * 224


def rows_per_pass(x: torch.Tensor) -> int | None:
    """The most images shaped like ``x``'s that one internal pass may hold: no limit up to the
    benchmark's 64 x 64 px (a pass of 64 images x 100 noisy copies there is 0.3 GB, and the book's
    published maps were computed in one pass), else :data:`PASS_PIXELS` worth of pixels. A function
    of the image size only, so that no map depends on the machine it ran on."""
    h, w = x.shape[-2:]
    return None if h * w <= 64 * 64 else max(1, PASS_PIXELS // (h * w))


def _by_images(fn, x: torch.Tensor, t: torch.Tensor, rows_per_image: int) -> torch.Tensor:
    """``fn(images, targets)`` on consecutive groups of images whose ``rows_per_image`` internal
    rows each fit in one pass (:func:`rows_per_pass`), concatenated; one call where they all fit.
    A seeded caller's draws continue from group to group, so the maps depend on the images'
    size and their batch only (the map store keys batch-dependent methods on the batch)."""
    cap = rows_per_pass(x)
    per = len(x) if cap is None else max(1, cap // max(1, rows_per_image))
    if per >= len(x):
        return fn(x, t)
    return torch.cat([fn(x[i:i + per], t[i:i + per]) for i in range(0, len(x), per)])


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch and numpy for the duration of one method call, then restore their state."""
    np_state, torch_state = np.random.get_state(), torch.random.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    torch.manual_seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        torch.random.set_rng_state(torch_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)


def reorder(registry: dict, names) -> None:
    """Put the entries of ``registry`` (:data:`METHODS`, or the metrics') named in ``names`` first,
    in that order (the order the book's tables list them in), the others after them as they were
    registered."""
    ordered = {n: registry[n] for n in names if n in registry}
    ordered.update({n: m for n, m in registry.items() if n not in ordered})
    registry.clear()
    registry.update(ordered)
