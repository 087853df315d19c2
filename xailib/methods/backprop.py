"""Modified back-propagation rules: guided backpropagation, deconvolution, DeepLIFT (rescale) and
LRP with the epsilon rule (captum); and which of them are only approximate on a residual network."""
from __future__ import annotations

from torch import nn

from .registry import _reduce, register


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
    _rescale_relu_subclasses(model)
    return _reduce(DeepLift(model).attribute(x, baselines=float(baseline), target=t), reduce)


def _rescale_relu_subclasses(model):
    """captum's DeepLIFT applies its rescale rule to modules of the exact types it lists, so a
    subclass of ``nn.ReLU`` (EfficientNet-Lite's ReLU6, :class:`xailib.models.ReLU6`) was passed
    through as if linear. The rule (the change of output over the change of input) holds for any
    monotone element-wise function: register it for each such subclass the model uses."""
    from captum.attr._core import deep_lift
    for layer in model.modules():
        if isinstance(layer, nn.ReLU) and type(layer) not in deep_lift.SUPPORTED_NON_LINEAR:
            deep_lift.SUPPORTED_NON_LINEAR[type(layer)] = deep_lift.nonlinear


def _lrp_rules(model, epsilon):
    from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS
    from captum.attr._utils.lrp_rules import EpsilonRule, IdentityRule
    for layer in model.modules():
        if list(layer.children()):
            continue
        if type(layer) in SUPPORTED_LAYERS_WITH_RULES or isinstance(layer, nn.ZeroPad2d):
            layer.rule = EpsilonRule(epsilon=epsilon)   # padding changes the shape: identity cannot pass it
        elif type(layer) not in SUPPORTED_NON_LINEAR_LAYERS and not list(layer.parameters()):
            layer.rule = IdentityRule()  # parameter-free element-wise modules (normalisation)


@register("lrp_epsilon", family="backprop", library="captum", reference="bach2015",
          epsilon=1e-6, reduce="sum", batch_size=16)
def _lrp(model, x, t, epsilon, reduce):
    """Layer-wise relevance propagation with the epsilon rule on every layer. captum treats
    functional operations (a residual ``+``) as pass-through, so on ResNets it is approximate."""
    from captum.attr import LRP
    _lrp_rules(model, float(epsilon))
    try:
        return _reduce(LRP(model).attribute(x, target=t), reduce)
    finally:     # captum leaves each layer's last activations on it (tensors keyed by device): they
        for layer in model.modules():      # hold memory and stop Dask from sending the network over
            layer.__dict__.pop("activations", None)


def residual(model: nn.Module) -> bool:
    """Whether ``model`` adds a block's input to its output (a residual connection): a module
    with a ``shortcut`` or ``downsample`` branch (this book's ResNet blocks, torchvision's)."""
    return any(hasattr(m, "shortcut") or hasattr(m, "downsample") for m in model.modules())


def approximate(method: str, model: nn.Module) -> str | None:
    """Why ``method``'s maps on ``model`` are only an approximation of the method, or None.
    captum's LRP passes relevance through a residual ``+`` unchanged instead of splitting it
    between the two branches (zennit's residual canonizers do split it), so the leaderboard marks
    those rows instead of ranking them silently; and the modified gradients on a network whose
    activations are no ``nn.ReLU`` modules are the plain gradient."""
    if method == "lrp_epsilon" and residual(model):
        return "captum's LRP treats the residual + as pass-through (no canonizer)"
    if method in ("guided_backprop", "deconvolution", "deeplift") and not any(
            isinstance(m, nn.ReLU) for m in model.modules()):
        # torchvision's Inception-v3 calls F.relu: captum's hooks find no activation to modify
        return ("captum's rule acts on nn.ReLU modules and this network has none (functional activations): "
                "the map is the plain gradient's" + (" times the input" if method == "deeplift" else ""))
    return None
