"""Class activation maps: Grad-CAM and guided Grad-CAM (captum)."""
from __future__ import annotations

import torch.nn.functional as F

from ..errors import ParameterError
from .registry import _reduce, register


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
