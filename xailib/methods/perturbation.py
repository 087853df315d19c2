"""Learned perturbation masks of a fixed area: extremal perturbation (Fong, Patrick and Vedaldi 2019).

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

import torch
import torch.nn.functional as F

from .. import inference
from ..errors import ParameterError, check_positive_int
from ..explain import register


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
    from ..metrics import blur
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
