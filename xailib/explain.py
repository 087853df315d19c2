"""One interface to explain: ``explain(model, images, targets, method, **params) -> (B, H, W)``.

This is the thesis's *Attributer*: every registered method takes a batch of [0, 1] images
(B, 3, H, W) and one target class per image and returns one saliency map per image at input
resolution, as a float32 tensor on the images' device. Larger values mean "more evidence for the
target". Methods come from captum (gradients, backprop rules, CAMs, occlusion), ``lime`` and
``shap`` (the latter two on superpixels); later chapters register RISE and NeuroMask here too.

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
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import inference
from .errors import ParameterError, check_choice, check_positive_int, check_unknown_keys
from .models import check_input_size

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


METHODS: dict[str, Method] = {}


def register(name: str, *, family: str, library: str, reference: str, required: tuple = (),
             batch_size: int = 32, learned: bool = False, control: bool = False, per_image: tuple = (),
             **defaults):
    """Decorator: add ``fn(model, x, targets, **params) -> (B, H, W)`` to the registry.
    ``learned``: the method optimises a mask per image (NeuroMask, extremal perturbation);
    ``control``: a reference map that explains nothing (the sanity checks' edge detector);
    ``per_image``: the parameters that may be given one value per image, which :func:`explain`
    cuts into the same chunks as the images."""
    def deco(fn):
        METHODS[name] = Method(name, fn, family, library, reference, defaults, required, batch_size,
                               learned, control, tuple(per_image))
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


# --------------------------------------------------------------------------------------------
# Gradient and back-propagation methods (captum)
# --------------------------------------------------------------------------------------------

@register("gradient", family="gradient", library="captum", reference="simonyan2014", reduce="max_abs")
def _gradient(model, x, t, reduce):
    """Vanilla gradient of the target logit (Simonyan et al. 2014)."""
    from captum.attr import Saliency
    return _reduce(Saliency(model).attribute(x, target=t, abs=False), reduce)


@register("gradient_x_input", family="gradient", library="captum", reference="shrikumar2017",
          reduce="sum")
def _gradient_x_input(model, x, t, reduce):
    """Gradient times input."""
    from captum.attr import InputXGradient
    return _reduce(InputXGradient(model).attribute(x, target=t), reduce)


@register("integrated_gradients", family="gradient", library="captum", reference="sundararajan2017",
          n_steps=32, baseline=0.0, internal_batch_size=512, reduce="sum")
def _integrated_gradients(model, x, t, n_steps, baseline, internal_batch_size, reduce):
    """Integrated gradients from a constant baseline image (0 = black)."""
    from captum.attr import IntegratedGradients
    a = IntegratedGradients(model).attribute(x, baselines=float(baseline), target=t,
                                             n_steps=n_steps, internal_batch_size=internal_batch_size)
    return _reduce(a, reduce)


@register("smoothgrad", family="gradient", library="captum", reference="smilkov2017",
          n_samples=25, noise=0.15, seed=0, reduce="max_abs")
def _smoothgrad(model, x, t, n_samples, noise, seed, reduce):
    """SmoothGrad: absolute gradients averaged over ``n_samples`` noisy copies (sigma = noise)."""
    from captum.attr import NoiseTunnel, Saliency
    with _seeded(seed):
        a = NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=n_samples, nt_samples_batch_size=n_samples,
            stdevs=float(noise), target=t, abs=True)
    return _reduce(a, reduce)


@register("guided_backprop", family="backprop", library="captum", reference="springenberg2015",
          reduce="max_abs")
def _guided_backprop(model, x, t, reduce):
    """Guided backpropagation: only positive gradients pass back through ReLUs."""
    from captum.attr import GuidedBackprop
    return _reduce(GuidedBackprop(model).attribute(x, target=t), reduce)


@register("deconvolution", family="backprop", library="captum", reference="zeiler2014",
          reduce="max_abs")
def _deconvolution(model, x, t, reduce):
    """Deconvolution (Zeiler and Fergus): gradients with ReLUs applied on the way back, not forward
    (the RISE paper's "Deconv" column)."""
    from captum.attr import Deconvolution
    return _reduce(Deconvolution(model).attribute(x, target=t), reduce)


@register("deeplift", family="backprop", library="captum", reference="shrikumar2017",
          baseline=0.0, reduce="sum")
def _deeplift(model, x, t, baseline, reduce):
    """DeepLIFT (rescale rule) against a constant baseline image."""
    from captum.attr import DeepLift
    return _reduce(DeepLift(model).attribute(x, baselines=float(baseline), target=t), reduce)


@register("expected_gradients", family="gradient", library="captum", reference="erion2021",
          required=("background",), background=None, n_samples=32, seed=0, reduce="sum")
def _expected_gradients(model, x, t, background, n_samples, seed, reduce):
    """Expected gradients (captum's GradientShap): IG averaged over baselines drawn from
    ``background`` (reference images, (K, 3, H, W)) and random path positions."""
    from captum.attr import GradientShap
    bg = torch.as_tensor(background).to(x.device, torch.float32)
    if bg.ndim != 4 or bg.shape[1:] != x.shape[1:]:
        raise ParameterError(f"background must be reference images shaped (K, {', '.join(map(str, x.shape[1:]))}), "
                             f"got {tuple(bg.shape)}")
    with _seeded(seed):
        a = GradientShap(model).attribute(x, baselines=bg, target=t, n_samples=n_samples, stdevs=0.0)
    return _reduce(a, reduce)


def _lrp_rules(model, epsilon):
    from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS
    from captum.attr._utils.lrp_rules import EpsilonRule, IdentityRule
    for layer in model.modules():
        if list(layer.children()):
            continue
        if type(layer) in SUPPORTED_LAYERS_WITH_RULES:
            layer.rule = EpsilonRule(epsilon=epsilon)
        elif type(layer) not in SUPPORTED_NON_LINEAR_LAYERS and not list(layer.parameters()):
            layer.rule = IdentityRule()  # parameter-free element-wise modules (normalisation)


@register("lrp_epsilon", family="backprop", library="captum", reference="bach2015",
          epsilon=1e-6, reduce="sum", batch_size=16)
def _lrp(model, x, t, epsilon, reduce):
    """Layer-wise relevance propagation with the epsilon rule on every layer. captum treats
    functional operations (a residual ``+``) as pass-through, so on ResNets it is approximate."""
    from captum.attr import LRP
    _lrp_rules(model, float(epsilon))
    return _reduce(LRP(model).attribute(x, target=t), reduce)


def residual(model: nn.Module) -> bool:
    """Whether ``model`` adds a block's input to its output (a residual connection): a module
    with a ``shortcut`` or ``downsample`` branch (this book's ResNet blocks, torchvision's)."""
    return any(hasattr(m, "shortcut") or hasattr(m, "downsample") for m in model.modules())


def approximate(method: str, model: nn.Module) -> str | None:
    """Why ``method``'s maps on ``model`` are only an approximation of the method, or None.
    captum's LRP passes relevance through a residual ``+`` unchanged instead of splitting it
    between the two branches (zennit's residual canonizers do split it), so the leaderboard marks
    those rows instead of ranking them silently."""
    if method == "lrp_epsilon" and residual(model):
        return "captum's LRP treats the residual + as pass-through (no canonizer)"
    return None


# --------------------------------------------------------------------------------------------
# Class activation maps (captum)
# --------------------------------------------------------------------------------------------

def _cam_layer(model, layer):
    name = layer or getattr(model, "xai_cam_layer", None)
    if name is None:
        raise ParameterError("Grad-CAM needs layer= the dotted name of a convolutional layer "
                             "(the model has no xai_cam_layer attribute)")
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ParameterError(f"layer={name!r} is not a submodule of the model") from None


@register("gradcam", family="cam", library="captum", reference="selvaraju2017", layer=None)
def _gradcam(model, x, t, layer):
    """Grad-CAM on the last convolutional block, ReLU'd and upsampled bilinearly to the input."""
    from captum.attr import LayerGradCam
    cam = LayerGradCam(model, _cam_layer(model, layer)).attribute(x, target=t, relu_attributions=True)
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


@register("guided_gradcam", family="cam", library="captum", reference="selvaraju2017",
          layer=None, reduce="max_abs")
def _guided_gradcam(model, x, t, layer, reduce):
    """Guided Grad-CAM: guided backprop times the upsampled Grad-CAM map."""
    from captum.attr import GuidedGradCam
    a = GuidedGradCam(model, _cam_layer(model, layer)).attribute(x, target=t,
                                                                 interpolate_mode="bilinear")
    return _reduce(a, reduce)


# --------------------------------------------------------------------------------------------
# Perturbation methods
# --------------------------------------------------------------------------------------------

@register("occlusion", family="perturbation", library="captum", reference="zeiler2014",
          window=None, stride=None, baseline=0.5, windows_per_pass=256, reduce="mean", batch_size=8)
def _occlusion(model, x, t, window, stride, baseline, windows_per_pass, reduce):
    """Sliding-window occlusion with a grey (0.5) square. Default window and stride keep RISE's
    ImageNet setting (64 and 8 px at 224 px) in proportion to the image size."""
    from captum.attr import Occlusion
    side = x.shape[-1]
    w = window or max(2, round(side * 64 / 224))
    s = stride or max(1, round(side * 8 / 224))
    forward = lambda z: inference.forward(model, z)  # noqa: E731 - the fast path, batched by it
    a = Occlusion(forward).attribute(x, target=t, sliding_window_shapes=(3, w, w), strides=(3, s, s),
                                   baselines=float(baseline),
                                   perturbations_per_eval=max(1, windows_per_pass // len(x)))
    return _reduce(a, reduce)


def superpixels(image: torch.Tensor, n_segments: int = 50, compactness: float = 10.0) -> np.ndarray:
    """SLIC superpixels of one (3, H, W) image in [0, 1]: (H, W) int labels 0..K-1."""
    from skimage.segmentation import slic
    img = image.detach().permute(1, 2, 0).cpu().double().numpy()
    seg = slic(img, n_segments=n_segments, compactness=compactness, start_label=0)
    _, seg = np.unique(seg, return_inverse=True)  # consecutive labels
    return seg.reshape(img.shape[:2])


def _segment_means(img: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """(3, H, W) image where each superpixel is filled with its mean colour (LIME's default)."""
    k = int(seg.max()) + 1
    flat = seg.flatten()
    sums = torch.zeros(3, k, device=img.device).index_add_(1, flat, img.flatten(1))
    counts = torch.bincount(flat, minlength=k).clamp(min=1)
    return (sums / counts)[:, flat].view_as(img)


def _segments(segments, x, i, n_segments) -> np.ndarray:
    """Image ``i``'s superpixels: the given ``segments`` (B, H, W) labels, or SLIC's."""
    if segments is None:
        return superpixels(x[i], n_segments)
    seg = torch.as_tensor(segments)
    if seg.ndim != 3 or seg.shape[0] != len(x) or seg.shape[1:] != x.shape[-2:]:
        raise ParameterError(f"segments must be (batch, H, W) integer labels matching the images "
                             f"{tuple(x.shape)}, got {tuple(seg.shape)}")
    _, out = np.unique(seg[i].cpu().numpy(), return_inverse=True)   # consecutive labels
    return out.reshape(seg.shape[1:])


@register("lime", family="surrogate", library="lime", reference="ribeiro2016", batch_size=1,
          per_image=("segments",), num_samples=1000, n_segments=50, hide="mean", seed=0,
          model_batch_size=250, segments=None)
def _lime(model, x, t, num_samples, n_segments, hide, seed, model_batch_size, segments):
    """LIME (the ``lime`` package) on SLIC superpixels; the map is each superpixel's weight in
    the local linear model of the target's probability. Hidden superpixels take their mean
    colour (LIME's default, ``hide="mean"``) or a constant grey value (``hide=0.5``).
    ``segments`` (B, H, W): the superpixels to use instead of SLIC's (max-sensitivity passes the
    unperturbed image's to its perturbed copies)."""
    from lime.lime_image import LimeImageExplainer
    dev, maps = x.device, []
    for i, (img, target) in enumerate(zip(x, t.tolist())):
        seg = _segments(segments, x, i, n_segments)
        arr = img.permute(1, 2, 0).cpu().double().numpy()

        def classifier_fn(batch):
            b = torch.from_numpy(batch).to(dev, torch.float32).permute(0, 3, 1, 2)
            return inference.probabilities(model, b).cpu().numpy()

        with mock.patch("lime.lime_image.tqdm", lambda it, **_: it):  # silence its per-image bar
            exp = LimeImageExplainer(random_state=seed).explain_instance(
                arr, classifier_fn, labels=(target,), top_labels=None,
                hide_color=None if hide == "mean" else float(hide), num_samples=num_samples,
                batch_size=model_batch_size, segmentation_fn=lambda _: seg, random_seed=seed)
        weights = np.zeros(seg.max() + 1)
        for k, w in exp.local_exp[target]:
            weights[k] = w
        maps.append(torch.from_numpy(weights[seg]).to(dev, torch.float32))
    return torch.stack(maps)


@register("kernel_shap", family="surrogate", library="shap", reference="lundberg2017", batch_size=1,
          per_image=("segments",), nsamples=1000, n_segments=50, hide="mean", seed=0, segments=None)
def _kernel_shap(model, x, t, nsamples, n_segments, hide, seed, segments):
    """KernelSHAP (the ``shap`` package) on SLIC superpixels: Shapley values of the target's
    probability, with absent superpixels filled as in LIME (mean colour or a constant);
    ``segments`` as for LIME."""
    import shap
    dev, maps = x.device, []
    for i, (img, target) in enumerate(zip(x, t.tolist())):
        seg = torch.from_numpy(_segments(segments, x, i, n_segments)).to(dev)
        k = int(seg.max()) + 1
        fill = _segment_means(img, seg) if hide == "mean" else torch.full_like(img, float(hide))

        def f(z):
            keep = torch.from_numpy(np.asarray(z)).to(dev, torch.float32)[:, seg][:, None]
            masked = img * keep + fill * (1 - keep)
            return inference.probabilities(model, masked)[:, target].cpu().numpy()

        with _seeded(seed):
            phi = shap.KernelExplainer(f, np.zeros((1, k))).shap_values(
                np.ones((1, k)), nsamples=nsamples, silent=True)
        phi = np.asarray(phi, dtype=np.float64).reshape(-1)[:k]
        maps.append(torch.from_numpy(phi).to(dev, torch.float32)[seg])
    return torch.stack(maps)
