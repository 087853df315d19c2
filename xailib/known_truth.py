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


# --------------------------------------------------------------------------------------------
# BAM's input dependence and input independence rates (Yang and Kim 2019), on the scene network,
# which classifies by the background and so does not use the object pasted on it: each image
# beside the same image drawn without its object (variants.bam_without_objects).
# --------------------------------------------------------------------------------------------

IIR_TOLERANCE = 0.1      # Yang and Kim's t: a map that moves by less than 10 % has not moved


def bam_pairs(scene_model, n: int, size: int = 64, seed: int = 0):
    """The first ``n`` BAM test images that the scene network labels by their background both
    with their object and without it (the object then changes nothing the network decides);
    returns (images with their objects, the same images without, as an (n, 3, H, W) tensor)."""
    pool = variants.load_variant("bam", "test", size=size, seed=seed)
    scene = pool.info["scene_labels"]
    first = torch.nonzero(models.predict(scene_model, pool.images).argmax(1) == scene)[:, 0]
    kept, empty = [], []
    for start in range(0, len(first), 4 * n):
        part = pool.subset(first[start:start + 4 * n])
        without = variants.bam_without_objects(part)
        ok = models.predict(scene_model, without).argmax(1) == part.info["scene_labels"]
        kept += part.info["index"][ok].tolist()
        empty.append(without[ok])
        if len(kept) >= n:
            break
    if len(kept) < n:
        raise ParameterError(f"only {len(kept)} BAM test images are labelled by their background by the scene "
                             f"network with and without their object; lower n")
    return pool.subset(torch.tensor(kept[:n])), torch.cat(empty)[:n]


def input_dependence_rows(maps_with: dict, maps_without: dict, images, tolerance: float = IIR_TOLERANCE) -> pd.DataFrame:
    """Per (method, image), on a network that does not use the object (BAM's scene network):
    the object region's attribution with the object and without it (``region_mean`` of the
    normalised map over the object's mask: the same pixels in both images), ``dependent`` when
    the first is lower (Yang and Kim's input dependence: the pasted object, which the network
    ignores, gets less than the background it covers), and the map's relative change, the L1
    distance of the two normalised maps over the first's L1 norm, ``independent`` when it is at
    most ``tolerance`` (their input independence: a change the network ignores leaves the map).
    The rates are the means of the two columns over the images."""
    from .metrics.localisation import normalise
    x, masks = images.images, images.masks
    rows = []
    for m in maps_with:
        a, b = maps_with[m], maps_without[m]
        with_obj = score(None, x, None, a, "region_mean", masks=masks).numpy()
        without_obj = score(None, x, None, b, "region_mean", masks=masks).numpy()
        na, nb = normalise(a.detach().cpu()).double(), normalise(b.detach().cpu()).double()
        base = nb.flatten(1).abs().sum(1)
        change = ((na - nb).flatten(1).abs().sum(1) / base.clamp(min=1e-300)).numpy()
        change = np.where(base.numpy() > 0, change, np.where((na.flatten(1).abs().sum(1) > 0).numpy(), np.inf, 0.0))
        rows.append(pd.DataFrame({"method": m, "image": np.arange(len(x)), "region, with object": with_obj,
                                  "region, without object": without_obj, "dependent": with_obj < without_obj,
                                  "map change": change, "independent": change <= tolerance}))
    return pd.concat(rows, ignore_index=True)


def mosaic_images(model, n: int, size: int = 64, seed: int = 0):
    """Focus's test set (Arias-Duart et al. 2022): the first ``n`` mosaics of the benchmark's test
    images (:func:`xailib.variants.mosaics`) that ``model``, taking mosaics
    (:class:`~xailib.variants.MosaicNetwork`), labels as their target class; returns (the
    mosaics, the wrapped network)."""
    net = model if isinstance(model, variants.MosaicNetwork) else variants.MosaicNetwork(model)
    pool = data.load_shapes("test", size=size, seed=seed)
    drawn = variants.mosaics(pool, 8 * n, seed=seed)
    ok = torch.nonzero(models.predict(net, drawn.images).argmax(1) == drawn.labels)[:n, 0]
    if len(ok) < n:
        raise ParameterError(f"only {len(ok)} of {len(drawn)} mosaics are labelled by their target class; lower n")
    return drawn.subset(ok), net
