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
from .metrics.removal import blur_kernel as kernel_of, check_removal, fill_image
from .models import predict

DEGENERATE_ACCURACY = 0.5      # full removal leaves at least half of the decisions intact


def describe(removal, side: int, blur_sigma: float | None = None, kernel: int | None = None) -> str:
    """A short name for an operator at an image side ("blur 3 x 3, sigma 1.43")."""
    if removal == "blur":
        k, s = kernel_of(side, kernel, blur_sigma)
        return f"blur {k} x {k}, sigma {s:.3g}"
    return str(removal)


def full_removal(nets: dict, images: torch.Tensor, labels: torch.Tensor, removals=("zero", "dataset_mean", "blur"),
                 *, blur_sigmas=(None,), blur_kernel: int | None = None,
                 threshold: float = DEGENERATE_ACCURACY) -> pd.DataFrame:
    """One row per (network, operator): the accuracy on the clean ``images`` and on the fully
    removed ones, chance (the largest class share), and whether the setting is degenerate (full
    removal leaves ``threshold`` or more of the decisions correct). ``blur_sigmas``: the blurs to
    calibrate (None: the registry's default at this image side); ``blur_kernel``: their kernel
    size when a chapter's blur sets its own (the Impact Score's)."""
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
                k = blur_kernel if sigma is not None else None
                a = acc(fill_image(images, r, model=net, blur_sigma=sigma, blur_kernel=k))
                rows.append({"model": name, "operator": r, "removal": describe(r, side, sigma, k), "clean accuracy": clean,
                             "accuracy, all removed": a, "chance": chance, "degenerate": a >= threshold})
    return pd.DataFrame(rows)


def reasons(calib: pd.DataFrame) -> dict:
    """``{(model, operator): why}`` for each degenerate row of a :func:`full_removal` table: the
    sentence a claim on that setting carries instead of a verdict (``Claim(degenerate=...)``)."""
    return {(r["model"], r["operator"]): f"full removal ({r['removal']}) leaves {100 * r['accuracy, all removed']:.0f} % "
                                         f"of {r['model']}'s test images classified correctly (chance "
                                         f"{100 * r['chance']:.0f} %): the removal removes too little"
            for _, r in calib.iterrows() if r["degenerate"]}


def summary(calib: pd.DataFrame) -> str:
    """One generated sentence on a :func:`full_removal` table: which settings remove something
    and which are degenerate (no verdict rests on them)."""
    if not len(calib):
        return "No operator here has a fully removed image (ROAD's depends on the region): nothing to calibrate."
    bad = calib[calib.degenerate]
    worst = calib["accuracy, all removed"].max()
    if not len(bad):
        return (f"Every operator removes what it should: fully removed images are classified correctly at most "
                f"{100 * worst:.0f} % of the time (chance {100 * calib.chance.max():.0f} %), so a verdict may rest on "
                "each of them.")
    said = "; ".join(f"{r['removal']} on {r['model']} ({100 * r['accuracy, all removed']:.0f} % still correct)"
                     for _, r in bad.iterrows())
    return (f"Degenerate, no verdict rests on them: {said}. A fully removed image the network still classifies "
            f"correctly cannot show what an explanation's pixels do.")
