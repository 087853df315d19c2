"""Model-parameter randomisation, the first of Adebayo et al.'s sanity checks (2018).

A saliency method that explains *the model* must give another map when the model's learned
weights are destroyed. This module makes the randomised models; :mod:`.similarity` compares the
maps. What "a layer" and "randomised" mean is stated here, because papers and libraries differ:

- **Layers, in the order data flows.** :func:`layers` runs one forward pass with a hook on every
  module that owns parameters and lists the weight layers (convolutions, linear layers) in the
  order they are *called*, not the order they are declared: in a ResNet a block's shortcut
  convolution is declared before its second convolution in some code and after it in other code,
  and only the call order is the network's. A normalisation layer (BatchNorm, GroupNorm,
  LayerNorm) belongs to the weight layer called just before it.
- **Cascading** (:func:`plan`, ``test="cascading"``): the layers are randomised one at a time
  from the *output* back to the input, each step keeping the earlier steps' randomisation.
  **Independent** (``test="independent"``): one layer at a time, all others trained.
- **How a layer is randomised** (``mode``): ``"reset"`` (default) calls the module's own
  ``reset_parameters``, PyTorch's initialiser for the layer type. Adebayo et al.'s code re-runs
  each variable's *own* initialiser; the benchmark networks were built with PyTorch's, so for them
  the two are the same (torchvision's ResNet and VGG use other initialisers when built, which
  PyTorch does not record). ``"normal"`` re-draws each weight from a truncated normal (mean 0,
  standard deviation ``std``, cut at two standard deviations: the initialiser of Adebayo et al.'s
  MNIST networks, with ``std`` 0.1) and sets biases to 0; ``"shuffle"`` permutes the trained values
  within each tensor (the weights' distribution kept, their arrangement destroyed).
- **What happens to the normalisation layer** (``batchnorm``): ``"affine"`` (default) resets its
  scale to 1 and its shift to 0 and keeps its running statistics: in Adebayo et al.'s TensorFlow
  code the moving mean and variance are not trainable variables, so re-initialising the trainable
  ones leaves them; ``"reset"`` also resets the statistics to mean 0 / variance 1 (PyTorch's
  ``reset_parameters``, what Quantus does); ``"keep"`` leaves every trained value.

Each layer's random draw depends only on ``seed`` and the layer's position, so the cascade's
step that randomises layer *k* and the independent randomisation of layer *k* draw the same
values, and two seeds give two independent random networks (the noise floor). Randomisation works
on a copy: the model passed in is never changed.

Written here because captum has no randomisation test; Quantus (GPL) has one, which the book does
not use (see the chapter for the averaging trap it had).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .. import inference
from ..errors import ParameterError, check_choice
from .registry import register

MODES = ("normal", "reset", "shuffle")
BATCHNORM = ("affine", "reset", "keep")
TESTS = ("cascading", "independent")
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class Layer:
    """A weight layer and the normalisation layers that belong to it (dotted module names)."""

    name: str
    norms: tuple = ()

    @property
    def modules(self) -> tuple:
        return (self.name, *self.norms)


def _owns_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or isinstance(module, NORM_TYPES)


def call_order(model: nn.Module, example: torch.Tensor) -> list[str]:
    """The dotted names of the modules that own parameters, in the order one forward pass on
    ``example[:1]`` first calls them (modules the pass never calls are left out)."""
    seen, hooks = [], []
    for name, module in model.named_modules():
        if name and _owns_parameters(module):
            hooks.append(module.register_forward_pre_hook(
                lambda m, inp, name=name: seen.append(name) if name not in seen else None))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return seen


def layers(model: nn.Module, example: torch.Tensor) -> list[Layer]:
    """The model's weight layers in data-flow order, each with its normalisation layers."""
    modules = dict(model.named_modules())
    out: list[Layer] = []
    for name in call_order(model, example):
        if isinstance(modules[name], NORM_TYPES):
            if not out:
                raise ParameterError(f"{name!r} normalises before any weight layer: no layer to attach it to")
            out[-1] = Layer(out[-1].name, out[-1].norms + (name,))
        else:
            out.append(Layer(name))
    if not out:
        raise ParameterError("the model has no layer with parameters to randomise")
    return out


def _truncated_normal_(t: torch.Tensor, std: float, g: torch.Generator) -> None:
    with torch.no_grad():
        draw = torch.randn(t.shape, generator=g, dtype=torch.float32)
        bad = draw.abs() > 2
        while bad.any():                      # re-draw beyond two standard deviations (TF's rule)
            draw[bad] = torch.randn(int(bad.sum()), generator=g)
            bad = draw.abs() > 2
        t.copy_((draw * std).to(t))


def _randomise_module(module: nn.Module, mode: str, std: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if mode == "reset":
            state = torch.random.get_rng_state()
            torch.manual_seed(seed)           # reset_parameters draws from the global generator
            try:
                module.reset_parameters()
            finally:
                torch.random.set_rng_state(state)
            return
        for pname, p in module.named_parameters(recurse=False):
            if mode == "shuffle":
                p.copy_(p.flatten()[torch.randperm(p.numel(), generator=g).to(p.device)].view_as(p))
            elif pname == "bias":
                p.zero_()
            else:
                _truncated_normal_(p, std, g)


def _reset_norm(module: nn.Module, statistics: bool) -> None:
    with torch.no_grad():
        if getattr(module, "weight", None) is not None:
            module.weight.fill_(1.0)
        if getattr(module, "bias", None) is not None:
            module.bias.zero_()
    if statistics and isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
        module.reset_running_stats()


def _check_setting(mode: str, batchnorm: str, std: float) -> None:
    check_choice("mode", mode, MODES)
    check_choice("batchnorm", batchnorm, BATCHNORM)
    if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
        raise ParameterError(f"std must be a positive number, got {std!r}")


def randomise(model: nn.Module, chosen, all_layers: list[Layer], *, mode: str = "reset",
              batchnorm: str = "affine", std: float = 0.1, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with the layers named in ``chosen`` randomised (see the module's doc);
    every other tensor is bit-identical to the model's."""
    _check_setting(mode, batchnorm, std)
    names = [l.name for l in all_layers]
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise ParameterError(f"no weight layer named {', '.join(map(repr, unknown))}; the layers are {names}")
    net = copy.deepcopy(model)
    modules = dict(net.named_modules())
    for k, layer in enumerate(all_layers):
        if layer.name not in chosen:
            continue
        _randomise_module(modules[layer.name], mode, std, seed * 100_003 + k)
        if batchnorm != "keep":
            for norm in layer.norms:
                _reset_norm(modules[norm], statistics=batchnorm == "reset")
    net.eval()
    inference.share_batch_sizes(model, net)       # same architecture: no new batch-size measurement
    return net


@dataclass(frozen=True)
class Step:
    """One randomised model of a test: ``build()`` makes it (a copy) when needed."""

    test: str
    index: int            # 1 = the first step (the output layer in the cascade)
    layer: str            # the layer randomised at this step (cascade: the deepest one so far)
    build: Callable[[], nn.Module]


def plan(model: nn.Module, example: torch.Tensor, test: str = "cascading", *, mode: str = "reset",
         batchnorm: str = "affine", std: float = 0.1, seed: int = 0) -> list[Step]:
    """The randomised models of ``test`` ("cascading" or "independent"), in the order they are
    shown: the cascade from the output layer down to the first layer; independent randomisation
    in the same order, one layer at a time."""
    check_choice("test", test, TESTS)
    _check_setting(mode, batchnorm, std)      # now, not when the first step is built
    all_layers = layers(model, example)
    top_down = list(reversed(all_layers))
    kw = dict(mode=mode, batchnorm=batchnorm, std=std, seed=seed)
    steps = []
    for i, layer in enumerate(top_down, start=1):
        chosen = [l.name for l in top_down[:i]] if test == "cascading" else [layer.name]
        steps.append(Step(test, i, layer.name,
                          lambda chosen=chosen: randomise(model, chosen, all_layers, **kw)))
    return steps


def random_network(model: nn.Module, example: torch.Tensor, *, mode: str = "reset",
                   batchnorm: str = "affine", std: float = 0.1, seed: int = 0) -> nn.Module:
    """``model`` with every layer randomised (the cascade's last step for this ``seed``)."""
    all_layers = layers(model, example)
    return randomise(model, [l.name for l in all_layers], all_layers, mode=mode, batchnorm=batchnorm,
                     std=std, seed=seed)


# --------------------------------------------------------------------------------------------
# Random logit (Sixt, Granz and Landgraf 2020): the map of the target beside the map of another
# class. A method that explains the decision gives another map for another class; one that
# shows the image's edges whatever it is asked (a modified backpropagation that the last layers
# do not reach) gives the same.
# --------------------------------------------------------------------------------------------


def other_classes(images: torch.Tensor, targets, n_classes: int, seed: int = 0) -> torch.Tensor:
    """One class per image drawn uniformly among the ``n_classes`` but its target, from the
    image's own generator (:mod:`xailib.metrics.draws`: the same at any batching)."""
    from .draws import Samples
    t = torch.as_tensor(targets).expand(len(images)).cpu()
    if n_classes < 2:
        raise ParameterError("random_logit needs a network with at least two classes")
    draws = torch.tensor(Samples(images, seed)(1, lambda g: int(torch.randint(0, n_classes - 1, (1,), generator=g))))
    return draws + (draws >= t).long()                     # skip the target


@register("random_logit", higher_is_better=False, reference="sixt2020", required=("method",),
          method=None, method_params=None, measure="ssim", seed=0)
def _random_logit(model, images, targets, maps, method, method_params, measure, seed):
    """Sixt et al.'s random logit test: how alike the method's map for the target and its map for
    a class drawn at random among the others are (SSIM by default, Quantus's; any measure of
    :mod:`xailib.metrics.similarity`). Lower is better: 1 means the map does not depend on the
    class it is asked to explain. ``maps`` are the target's (the method is re-run for the other)."""
    from .. import methods
    from .similarity import similarity
    check_choice("method", method, methods.METHODS)
    params = dict(method_params or {})
    with torch.no_grad():
        n_classes = inference.forward(model, images[:1].to(inference.model_device(model, fallback=images.device))).shape[1]
    other = other_classes(images, targets, n_classes, seed)
    with torch.enable_grad():
        theirs = methods.explain(model, images, other.to(images.device), method, **params)
    return torch.as_tensor(similarity(maps.detach().cpu(), theirs.detach().cpu(), measure), dtype=torch.float64)
