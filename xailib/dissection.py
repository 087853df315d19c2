"""Network Dissection (Bau, Zhou, Khosla, Oliva and Torralba 2017): how many of a network's units
detect a concept that people label.

The survey (Li et al., section 4.2) presents it as an evaluation of *models*: "the number of
semantic neurons and its ratio of all neurons are considered as the score for model
interpretability". For one unit k (a channel of a convolutional layer) and a data set whose pixels
are labelled with concepts c:

- its threshold ``T_k`` is the top quantile of its activations over every position of every image:
  ``P(a_k > T_k) = 0.005`` (:data:`QUANTILE`);
- its activation map on image x is upsampled to the image's size (bilinear), ``S_k(x)``, and
  thresholded, ``M_k(x) = S_k(x) >= T_k``;
- its IoU with concept c is taken over the whole data set,
  ``IoU_{k,c} = sum_x |M_k(x) & L_c(x)| / sum_x |M_k(x) | L_c(x)|``;
- k is a *detector* of its best concept when that IoU exceeds 0.04 (:data:`IOU_THRESHOLD`), and a
  layer's interpretability is its number of detectors, their share of its units, and the number of
  distinct concepts they detect ("unique detectors").

Positions tied at the threshold are all selected, as the paper's ``>=`` does: a unit that copies a
concept's mask selects the mask, and a unit capped by ReLU6 at 6 over more than the quantile of
positions selects every capped position, far more than the quantile (a unit's real share is in
``selected``). One choice of the book's, stated: a unit whose threshold is its smallest value over
the data set (a dead or constant unit; a sparse one, active at fewer than 0.5 % of positions)
selects the positions *above* that floor instead, so a constant unit selects nothing and a sparse
one its active positions. Bau et al.'s text leaves this case open.

Everything is kept as per-image counts (the pixels each unit selects, each concept's pixels, and
their intersection per unit and concept), so that a bootstrap over images re-sums them without
running a network again (:meth:`Dissection.iou` with resampling weights). Written by hand: no
maintained library computes it for PyTorch networks (Bau et al.'s own code is a research
repository tied to its data set's files).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import ParameterError, check_fraction, check_positive_int

QUANTILE = 0.005          # Bau et al.: the top 0.5 % of a unit's activations
IOU_THRESHOLD = 0.04      # Bau et al.: a unit is a detector of a concept above this IoU
# The most upsampled activations (images x pixels x units) held at once: 2^26 floats, 256 MB. A
# wide layer at 224 px (1280 units) is counted a few images at a time; the counts are whole
# numbers, the same however the images are grouped.
MASK_ELEMENTS = 2 ** 26


def _hooked_pass(model: nn.Module, images: torch.Tensor, hooks, batch_size: int) -> None:
    """Run ``images`` through ``model`` (eval mode, no gradients, in batches) with forward hooks
    ``[(module, hook)]`` in place; remove them and restore the model's mode after."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                model(images[i:i + batch_size].to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def probe_layers(model: nn.Module, example: torch.Tensor) -> list[str]:
    """The layers to dissect: every ReLU module (or subclass) whose output is a 4-D feature map,
    in the order a forward pass on ``example[:1]`` first calls them."""
    seen = []
    _hooked_pass(model, example[:1], [(module, lambda m, i, o, name=name: seen.append(name)
                                       if o.ndim == 4 and name not in seen else None)
                                      for name, module in model.named_modules()
                                      if name and isinstance(module, nn.ReLU)], 1)
    if not seen:
        raise ParameterError("the network has no ReLU with a 4-D output to dissect; name its layers with layers=")
    return seen


def _activations(model: nn.Module, images: torch.Tensor, layers, batch_size: int, read: str = "output"):
    """{layer: (N, units, h, w) float32 on the CPU}: every probed layer's output on every image
    (``read="input"``: its input, e.g. a clipping activation's, before it clips)."""
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ParameterError(f"the network has no module named {missing}; its modules: {list(modules)[1:12]} ...")
    out = {name: [] for name in layers}
    if read not in ("output", "input"):
        raise ParameterError(f"read={read!r} must be 'output' or 'input'")
    pick = (lambda i, o: o) if read == "output" else (lambda i, o: i[0])
    _hooked_pass(model, images, [(modules[name], lambda m, i, o, name=name: out[name].append(pick(i, o).detach().float().cpu()))
                                 for name in layers], batch_size)
    return {name: torch.cat(v) for name, v in out.items()}


@dataclass
class Dissection:
    """One network dissected: per-image counts, and the thresholds that made them."""

    units: pd.DataFrame        # one row per unit: layer, unit (channel), threshold, floor, positions (N h w)
    concepts: list             # concept names, in the counts' order
    families: list             # each concept's family ("object", "scene", "colour", ...)
    inter: np.ndarray          # (N, units, concepts) pixels a unit selects inside a concept
    selected: np.ndarray       # (N, units) pixels a unit selects
    labelled: np.ndarray       # (N, concepts) pixels of each concept
    pixels: int = 0            # pixels per image (H x W)

    def iou(self, weights: np.ndarray | None = None) -> np.ndarray:
        """IoU per unit and concept over the data set, (units, concepts); with ``weights`` (R, N)
        (how often each image is drawn in each of R resamples), (R, units, concepts)."""
        n = self.inter.shape[0]
        w = np.ones((1, n)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if w.shape[1] != n:
            raise ParameterError(f"weights must have one column per image ({n}), got {w.shape[1]}")
        inter = (w @ self.inter.reshape(n, -1)).reshape(len(w), *self.inter.shape[1:])
        union = (w @ self.selected)[:, :, None] + (w @ self.labelled)[:, None, :] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        return iou[0] if weights is None else iou

    def table(self, iou_threshold: float = IOU_THRESHOLD, iou: np.ndarray | None = None) -> pd.DataFrame:
        """One row per unit: its layer, its best concept and family, that IoU, and whether it is a
        detector (IoU above ``iou_threshold``)."""
        iou = self.iou() if iou is None else iou
        best = iou.argmax(1)
        t = self.units[["layer", "unit"]].copy()
        t["concept"] = [self.concepts[b] for b in best]
        t["family"] = [self.families[b] for b in best]
        t["iou"] = iou[np.arange(len(best)), best]
        t["detector"] = t["iou"] > iou_threshold
        return t


def dissect(model: nn.Module, images: torch.Tensor, concepts: dict, families: dict | None = None,
            layers=None, quantile: float = QUANTILE, batch_size: int = 64, read: str = "output") -> Dissection:
    """Dissect ``model`` on ``images`` (N, 3, H, W) in [0, 1] against ``concepts``
    ``{name: (N, H, W) bool}`` (each image's pixels of that concept); ``families`` ``{name: family}``
    (default: every concept its own); ``layers``: the modules to dissect (default
    :func:`probe_layers`); ``read``: each module's ``"output"`` or its ``"input"`` (a ReLU6's
    input: its output ties at the cap of 6, which a top quantile cannot split). See the module's
    doc for the definition."""
    check_fraction("quantile", quantile)
    check_positive_int("batch_size", batch_size)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ParameterError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    if not concepts:
        raise ParameterError("concepts must name at least one concept mask")
    n, (h, w) = len(images), images.shape[-2:]
    names = list(concepts)
    labels = []
    for name in names:
        m = torch.as_tensor(concepts[name])
        if m.shape != (n, h, w):
            raise ParameterError(f"concept {name!r} must be one (H, W) mask per image, shaped {(n, h, w)}, "
                                 f"got {tuple(m.shape)}")
        labels.append(m.bool())
    fam = families or {c: c for c in names}
    unknown = [c for c in names if c not in fam]
    if unknown:
        raise ParameterError(f"families has no entry for the concepts {unknown}")
    layers = list(layers) if layers is not None else probe_layers(model, images)
    acts = _activations(model, images, layers, batch_size, read)
    label = torch.stack(labels, 1).flatten(2).float()                   # (N, C, HW)
    rows, inter, selected = [], [], []
    for name in layers:
        a = acts[name]
        if a.ndim != 4:
            raise ParameterError(f"layer {name!r} gives {a.ndim}-D outputs; dissection needs (N, units, h, w) maps")
        per_unit = a.transpose(0, 1).flatten(1)                          # (units, N h w)
        threshold = torch.quantile(per_unit, 1 - quantile, dim=1)
        floor = per_unit.min(1).values
        rows.append(pd.DataFrame({"layer": name, "unit": np.arange(a.shape[1]), "threshold": threshold.numpy(),
                                  "floor": floor.numpy(), "positions": per_unit.shape[1]}))
        t, f = threshold[None, :, None, None], floor[None, :, None, None]
        k, s = [], []
        rows_at_once = max(1, min(batch_size, MASK_ELEMENTS // (h * w * a.shape[1])))
        for i in range(0, n, rows_at_once):
            # channels-last: the same values as the default layout, five times faster on a CPU
            part = a[i:i + rows_at_once].contiguous(memory_format=torch.channels_last)
            up = nn.functional.interpolate(part, size=(h, w), mode="bilinear", align_corners=False)
            mask = ((up >= t) & (up > f)).permute(0, 2, 3, 1).reshape(len(part), h * w, -1).float()  # (B, HW, units)
            k.append(torch.bmm(label[i:i + rows_at_once], mask).transpose(1, 2))   # (B, units, C): whole counts, exact
            s.append(mask.sum(1))
        inter.append(torch.cat(k))
        selected.append(torch.cat(s))
    return Dissection(pd.concat(rows, ignore_index=True), names, [fam[c] for c in names],
                      torch.cat(inter, 1).numpy().astype(np.float64), torch.cat(selected, 1).numpy().astype(np.float64),
                      label.sum(2).numpy().astype(np.float64), int(h * w))


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per layer (in the network's order) and for the whole network: units, detectors, their share,
    unique detectors (distinct concepts detected), and detectors per concept family."""
    order = list(dict.fromkeys(table["layer"]))
    parts = [(layer, table[table.layer == layer]) for layer in order] + [("all layers", table)]
    families = sorted(table["family"].unique())
    out = []
    for layer, t in parts:
        d = t[t.detector]
        row = {"layer": layer, "units": len(t), "detectors": len(d), "share": len(d) / max(1, len(t)),
               "unique detectors": d["concept"].nunique()}
        row.update({f"{f} detectors": int((d.family == f).sum()) for f in families})
        out.append(row)
    return pd.DataFrame(out).set_index("layer")


# The eleven basic colour terms of Berlin and Kay, as their CSS named colours. Broden (Bau et al.'s
# data set) names pixels by van de Weijer et al.'s learned colour model; here each pixel takes the
# nearest of these in CIELAB (scikit-image's conversion), which needs no trained model.
COLOURS = {"black": (0, 0, 0), "white": (1, 1, 1), "grey": (0.5, 0.5, 0.5), "red": (1, 0, 0),
           "orange": (1, 0.647, 0), "yellow": (1, 1, 0), "green": (0, 0.5, 0), "blue": (0, 0, 1),
           "purple": (0.5, 0, 0.5), "pink": (1, 0.753, 0.796), "brown": (0.647, 0.165, 0.165)}


def colour_names(images: torch.Tensor) -> torch.Tensor:
    """Each pixel's colour term (an index into :data:`COLOURS`), (N, H, W): the nearest in CIELAB."""
    from skimage.color import rgb2lab
    lab = rgb2lab(images.permute(0, 2, 3, 1).clamp(0, 1).numpy())              # (N, H, W, 3)
    protos = rgb2lab(np.asarray(list(COLOURS.values()), dtype=np.float64)[None])[0]   # (11, 3)
    d = ((lab[..., None, :] - protos) ** 2).sum(-1)
    return torch.from_numpy(d.argmin(-1))


def benchmark_concepts(images, colours: bool = True) -> tuple[dict, dict]:
    """The concepts the benchmark labels exactly, pixel by pixel, as ``dissect`` takes them:
    ``({concept: (N, H, W) bool}, {concept: family})``. Family "object": each shape class, its
    pixels on the images of that class (the object mask); "scene": each background texture of
    the BAM variant (``images.info["scene_labels"]``), every pixel off the object on the images of
    that scene (clutter included); "colour" (``colours``): each colour term of :data:`COLOURS` that
    names some pixel, its pixels."""
    if images.masks is None:
        raise ParameterError("the images need exact object masks (the shapes benchmark or its variants)")
    masks, labels = images.masks.bool(), images.labels
    concepts, families = {}, {}
    for c, name in enumerate(images.class_names):
        m = masks & (labels == c)[:, None, None]
        if m.any():
            concepts[name], families[name] = m, "object"
    scenes = images.info.get("scene_labels")
    if scenes is not None:
        for s, name in enumerate(images.info["scene_classes"]):
            m = ~masks & (torch.as_tensor(scenes) == s)[:, None, None]
            if m.any():
                concepts[f"{name} (scene)"], families[f"{name} (scene)"] = m, "scene"
    if colours:
        more, kinds = colour_concepts(images.images)
        concepts.update(more)
        families.update(kinds)
    return concepts, families


def colour_concepts(images: torch.Tensor) -> tuple[dict, dict]:
    """The colour terms of :data:`COLOURS` that name some pixel of ``images`` (N, 3, H, W), each
    with its pixels, as ``dissect`` takes them (family "colour"): the one concept family that any
    photograph labels exactly."""
    named = colour_names(images)
    concepts = {f"{name} (colour)": named == k for k, name in enumerate(COLOURS) if (named == k).any()}
    return concepts, {c: "colour" for c in concepts}


def unit_maps(model: nn.Module, images: torch.Tensor, layer: str, unit: int, batch_size: int = 64,
              read: str = "output") -> torch.Tensor:
    """One unit's activation maps upsampled (bilinear) to the images' size, (N, H, W): what
    :func:`dissect` thresholds (with the same ``read``), for drawing the positions a unit selects."""
    a = _activations(model, images, [layer], batch_size, read)[layer]
    if not 0 <= unit < a.shape[1]:
        raise ParameterError(f"layer {layer!r} has {a.shape[1]} units; unit={unit} is not one of them")
    part = a[:, unit:unit + 1].contiguous(memory_format=torch.channels_last)
    return nn.functional.interpolate(part, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
