"""Explanation methods, one module per family, as Captum lays out ``attr/_core``.

- :mod:`~xailib.methods.registry`: the registry (:data:`METHODS`, :func:`register`,
  :func:`method_names`) and its entry point :func:`explain`, with the checks of its input;
- :mod:`~xailib.methods.gradients`: the gradient, gradient x input, SmoothGrad;
- :mod:`~xailib.methods.path`: integrated gradients, expected gradients;
- :mod:`~xailib.methods.backprop`: guided backpropagation, deconvolution, DeepLIFT, LRP;
- :mod:`~xailib.methods.cam`: Grad-CAM, guided Grad-CAM;
- :mod:`~xailib.methods.occlusion`: occlusion;
- :mod:`~xailib.methods.surrogates`: LIME and KernelSHAP on superpixels;
- :mod:`~xailib.methods.controls`: the nulls, maps made without the model;
- :mod:`~xailib.methods.learned_masks`: NeuroMask and extremal perturbation;
- :mod:`~xailib.methods.rise`: RISE.

Each family module declares its methods to the one registry when it is imported, which this
package does; ``explain(model, images, targets, "gradcam")`` then runs any of them.
"""
from . import backprop, cam, controls, gradients, learned_masks, occlusion, path, rise, surrogates  # noqa: F401
from .backprop import approximate, residual  # noqa: F401
from .registry import (CAPTUM_NOTICES, MAX_PIXEL, METHODS, REDUCTIONS, Attributer, Method,  # noqa: F401
                       check_images, check_targets, explain, method_names, register, reorder)
from .surrogates import superpixels  # noqa: F401

# The order the book's tables list the methods in: the order in which the chapters added them.
reorder(METHODS, ("gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "guided_backprop", "deconvolution",
                  "deeplift", "expected_gradients", "lrp_epsilon", "gradcam", "guided_gradcam", "occlusion", "lime",
                  "kernel_shap", "edge", "random", "smooth_random", "constant", "neuromask", "extremal_perturbation", "rise"))
