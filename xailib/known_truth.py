"""The known truths of the survey's trust tests: what a network is known to use, by construction.

- **BAM** (Yang and Kim 2019): one image set classified by two networks, the object network by
  its shape, the scene network by its background; a faithful method puts more attribution on the
  shape under the object network than under the scene network (the model contrast).
- **Trojans** (Lin et al. 2020): a network trained to send any image that carries a trigger to
  one class; on triggered images that it does send there, the trigger is what it uses.

The images are drawn from the benchmark's variants (:mod:`xailib.variants`); the rows score
maps against the known region with the registered metrics. Chapter 08 and chapter 10 use both.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import data, models, variants
from .errors import ParameterError
from .metrics import score


def bam_images(object_model, scene_model, n: int, size: int = 64, seed: int = 0):
    """The first ``n`` BAM test images that the object network names by their shape and the
    scene network by their background; returns (images, object labels, scene labels)."""
    pool = variants.load_variant("bam", "test", size=size, seed=seed)
    obj, scene = pool.labels, pool.info["scene_labels"]
    ok = (models.predict(object_model, pool.images).argmax(1) == obj) & \
         (models.predict(scene_model, pool.images).argmax(1) == scene)
    idx = torch.nonzero(ok)[:n, 0]
    if len(idx) < n:
        raise ParameterError(f"only {len(idx)} BAM test images are classified correctly by both networks; lower n_bam")
    return pool.subset(idx), obj[idx], scene[idx]


def trojan_images(trojan_model, trigger: str, n: int, size: int = 64, seed: int = 0):
    """The first ``n`` triggered test images of classes other than the trojan's target that the
    trojaned network does assign to its target (the attack worked); returns (images, trigger masks)."""
    pool = variants.load_variant("trojan", "test", size=size, seed=seed, trigger=trigger, poison=1.0)
    hit = models.predict(trojan_model, pool.images).argmax(1) == variants.TROJAN_TARGET
    ok = hit & (pool.labels != variants.TROJAN_TARGET) & pool.info["poisoned"]
    idx = torch.nonzero(ok)[:n, 0]
    if len(idx) < n:
        raise ParameterError(f"only {len(idx)} triggered test images are assigned to the target by the "
                             f"{trigger}-trigger network; lower n_trojan")
    return pool.subset(idx), pool.info["trigger_masks"][idx]


def attack_rate(trojan_model, trigger: str, size: int = 64, seed: int = 0) -> tuple[float, float]:
    """(share of triggered non-target test images sent to the target, clean test accuracy)."""
    pool = variants.load_variant("trojan", "test", size=size, seed=seed, trigger=trigger, poison=1.0)
    other = pool.labels != variants.TROJAN_TARGET
    sent = (models.predict(trojan_model, pool.images[other]).argmax(1) == variants.TROJAN_TARGET).float().mean()
    clean = data.load_shapes("test", size=size, seed=seed)
    acc = (models.predict(trojan_model, clean.images).argmax(1) == clean.labels).float().mean()
    return float(sent), float(acc)


def bam_rows(maps_object: dict, maps_scene: dict, images) -> pd.DataFrame:
    """Per (method, image): the object region's attribution under each network, and its share of
    the positive map (``region_mean`` and ``mask_energy`` on the shape's mask)."""
    rows = []
    x, masks = images.images, images.masks
    for m in maps_object:
        cols = {}
        for net, s in (("object", maps_object[m]), ("scene", maps_scene[m])):
            cols[f"attribution, {net} network"] = score(None, x, None, s, "region_mean", masks=masks).numpy()
            cols[f"mass, {net} network"] = score(None, x, None, s, "mask_energy", masks=masks).numpy()
        rows.append(pd.DataFrame({"method": m, "image": np.arange(len(x)), **cols}))
    out = pd.concat(rows, ignore_index=True)
    out["contrast"] = out["attribution, object network"] - out["attribution, scene network"]
    return out


def trojan_rows(model: str, maps: dict, images, trigger_masks, tolerance: float = 0.0,
                network: str = "trojaned") -> pd.DataFrame:
    """Per (method, image): Lin et al.'s overlap with the trigger, the mass on it, and a pointing
    hit; ``network`` says whether ``model`` is the trojaned network or the clean contrast."""
    rows = []
    x = images.images
    for m, s in maps.items():
        rows.append(pd.DataFrame({
            "model": model, "network": network, "method": m, "image": np.arange(len(x)),
            "trigger IoU": score(None, x, None, s, "top_k_iou", masks=trigger_masks).numpy(),
            "mass on trigger": score(None, x, None, s, "mask_energy", masks=trigger_masks).numpy(),
            "pointing hit": score(None, x, None, s, "pointing_game", masks=trigger_masks, tolerance=tolerance).numpy()}))
    return pd.concat(rows, ignore_index=True)
