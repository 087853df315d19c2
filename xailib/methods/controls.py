"""Control "methods": maps made without looking at the model.

``edge``: the Sobel edge magnitude of the input image (scikit-image's ``sobel`` on each colour
channel, the largest of the three per pixel). Adebayo et al. (2018) show that several saliency
maps look like an edge detector's output, which needs neither a model nor data; registered as a
method so that every test and table of the book can put it beside the real ones. It ignores the
model and the target by construction, so it must fail the model- and data-randomisation tests
(a test checks that it does). Registered with ``control=True``: a chapter's ``"all"`` leaves it out.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.filters import sobel

from ..explain import register


@register("edge", family="control", library="scikit-image", reference="adebayo2018", control=True)
def _edge(model, x, t):
    """Sobel edge magnitude of the image, the largest over colour channels (the model is not used)."""
    img = x.detach().cpu().double().numpy()
    out = np.stack([np.max([sobel(ch) for ch in im], axis=0) for im in img])
    return torch.from_numpy(out).to(x.device, torch.float32)
