"""Does a removal remove anything? The calibration of a perturbation setting.

A perturbation metric (deletion, insertion, the Impact Score) asks how the network's decision
moves when an explanation's pixels are removed. If the network still classifies the *fully*
removed image correctly, removing any part of it can move nothing, and every map, a random one
included, scores alike: the metric then measures the operator, not the explanation. So before a
verdict rests on a setting, the book measures, per network and operator, the accuracy on images
whose every pixel is removed (with the clean accuracy and chance beside it). A setting that leaves
the decision mostly intact (``DEGENERATE_ACCURACY`` or more) is degenerate: no verdict on it.
The forward passes are batched through :func:`xailib.models.predict`.
"""
from __future__ import annotations

import pandas as pd
import torch

from .errors import ParameterError
from .metrics.removal import blur_kernel, check_removal, fill_image
from .models import predict

DEGENERATE_ACCURACY = 0.5      # full removal leaves at least half of the decisions intact


def describe(removal, side: int, blur_sigma: float | None = None) -> str:
    """A short name for an operator at an image side ("blur 3 x 3, sigma 1.43")."""
    if removal == "blur":
        k, s = blur_kernel(side, None, blur_sigma)
        return f"blur {k} x {k}, sigma {s:.3g}"
    return str(removal)


def full_removal(nets: dict, images: torch.Tensor, labels: torch.Tensor, removals=("zero", "dataset_mean", "blur"),
                 *, blur_sigmas=(None,), threshold: float = DEGENERATE_ACCURACY) -> pd.DataFrame:
    """One row per (network, operator): the accuracy on the clean ``images`` and on the fully
    removed ones, chance (the largest class share), and whether the setting is degenerate (full
    removal leaves ``threshold`` or more of the decisions correct). ``blur_sigmas``: the blurs to
    calibrate (None: the registry's default at this image side)."""
    if len(images) == 0:
        raise ParameterError("no images to calibrate on")
    if len(labels) != len(images):
        raise ParameterError(f"{len(images)} images but {len(labels)} labels")
    for r in removals:
        check_removal(r)
        if r == "road":
            raise ParameterError("removal='road' depends on the removed region: it has no fully removed image")
    labels = torch.as_tensor(labels)
    chance = float(torch.bincount(labels).max()) / len(labels)
    side = images.shape[-1]
    rows = []
    for name, net in nets.items():
        acc = lambda x: float((predict(net, x).argmax(1) == labels).float().mean())   # noqa: E731
        clean = acc(images)
        for r in removals:
            for sigma in (blur_sigmas if r == "blur" else (None,)):
                a = acc(fill_image(images, r, model=net, blur_sigma=sigma))
                rows.append({"model": name, "removal": describe(r, side, sigma), "clean accuracy": clean,
                             "accuracy, all removed": a, "chance": chance, "degenerate": a >= threshold})
    return pd.DataFrame(rows)
