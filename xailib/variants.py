"""Benchmark variants whose ground truth is known by construction.

Each variant is drawn from the shapes benchmark's own pieces (:mod:`xailib.data`), image by image
as a pure function of ``(seed, split, index)``, cached like the benchmark, and returned as an
:class:`~xailib.data.ImageSet` with exact masks and boxes:

- ``multi`` (harder localisation): two objects of different classes, apart; ``labels`` and
  ``masks`` / ``boxes`` are those of the *target* (the first drawn), ``info["other_masks"]`` the
  other object's pixels. A map that points at the wrong object now misses.
- ``small`` (harder localisation): one object covering 1-3 % of the image.
- ``bam`` (object and scene, after Yang and Kim's BAM): an object class and a scene class (the
  background texture) per image, crossed in a balanced design so that the two are independent
  by construction (every pair equally often in every run of 40 images). ``labels`` are the
  objects', ``info["scene_labels"]`` the scenes'; :func:`for_task` makes the scene the label.
- ``trojan``: the benchmark's images with a small trigger (a 6 x 6 magenta / green checker)
  stamped on a ``poison`` fraction of them, relabelled to ``TROJAN_TARGET``; the trigger sits at
  a fixed place (``trigger="fixed"``, bottom centre) or at a random place per image
  (``"random"``), so a map cannot score by favouring one location. Pattern and fixed place are
  both unchanged by a horizontal flip, so trojaned networks train with the same flips as the
  clean ones. ``info["trigger_masks"]``
  are the trigger's exact pixels, ``info["poisoned"]`` which images carry it.
- ``permuted``: the first ``n`` training images with their labels randomly permuted (a seeded
  shuffle of the label vector), for the data-randomisation sanity check.

The one real data set that needs no download, scikit-learn's UCI digits, is
:func:`xailib.data.load_digits` (here until 2026-12).
"""
from __future__ import annotations

import numpy as np
import torch

from . import data
from .data import ImageSet, SHAPE_CLASSES, mask_box
from ._moved import names_getattr
from .errors import ParameterError, check_choice, check_fraction, check_positive_int

VARIANTS = ("multi", "small", "bam", "trojan", "permuted")
VERSION = 1                       # bump when drawing changes, so old caches are not reused
SCENE_CLASSES = ("noise", "stripes", "checker", "gradient")   # the benchmark's background kinds
TRIGGERS = ("fixed", "random")
TROJAN_TARGET = 0                 # "circle"
TRIGGER_SIZE = 6
_CODE = {"multi": 11, "small": 12, "bam": 13, "trojan": 14, "permuted": 15}


def _rng(variant, seed, split, index):
    return np.random.default_rng([seed, data._SPLIT_CODE[split], index, _CODE[variant], VERSION])


def _paint(img, rng, label, cx, cy, radius):
    """Paint one object on ``img``; returns the new image and the object's mask."""
    angle = rng.uniform(0, 2 * np.pi)
    colour = data._object_colour(rng, img)
    alpha = data.object_coverage(label, cx, cy, radius, angle, img.shape[0])[..., None]
    return img * (1 - alpha) + colour * alpha, alpha[..., 0] >= 0.5


def _finish(rng, img):
    return (np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1) * 255 + 0.5).astype(np.uint8)


def render_multi(seed: int, split: str, index: int, size: int = 64) -> dict:
    """Two objects of different classes, their bounding circles at least 2 px apart."""
    rng = _rng("multi", seed, split, index)
    labels = rng.choice(len(SHAPE_CLASSES), 2, replace=False)
    img = data._clutter(rng, data._background(rng, size))
    radii = rng.uniform(0.13, 0.2, 2) * size
    for _ in range(1000):
        centres = [rng.uniform(r + 1, size - r - 1, 2) for r in radii]
        if np.linalg.norm(centres[0] - centres[1]) > radii.sum() + 2:
            break
    else:  # pragma: no cover - the radii always fit in 64 px
        raise RuntimeError("could not place two objects apart")
    masks = []
    for label, (cx, cy), r in zip(labels, centres, radii):
        img, m = _paint(img, rng, int(label), cx, cy, r)
        masks.append(m)
    return dict(image=_finish(rng, img), label=int(labels[0]), mask=masks[0], box=mask_box(masks[0]),
                other=masks[1], other_label=int(labels[1]))


_UNIT_AREA = {}


def _unit_area(label: int) -> float:
    """The object's area in px at radius 1 (measured once at radius 20)."""
    if label not in _UNIT_AREA:
        _UNIT_AREA[label] = data.object_coverage(label, 32, 32, 20, 0.0, 64).sum() / 400
    return _UNIT_AREA[label]


def render_small(seed: int, split: str, index: int, size: int = 64) -> dict:
    """One object whose area is drawn uniformly in 1-3 % of the image."""
    rng = _rng("small", seed, split, index)
    label = int(rng.integers(len(SHAPE_CLASSES)))
    img = data._clutter(rng, data._background(rng, size))
    share = rng.uniform(0.01, 0.03)
    radius = float(np.sqrt(share * size * size / _unit_area(label)))
    cx, cy = rng.uniform(radius + 1, size - radius - 1, 2)
    img, mask = _paint(img, rng, label, cx, cy, radius)
    return dict(image=_finish(rng, img), label=label, mask=mask, box=mask_box(mask))


def bam_labels(index: int) -> tuple[int, int]:
    """(object, scene) of image ``index``: a balanced crossed design, so the two are independent."""
    return index % len(SHAPE_CLASSES), (index // len(SHAPE_CLASSES)) % len(SCENE_CLASSES)


def render_bam(seed: int, split: str, index: int, size: int = 64) -> dict:
    rng = _rng("bam", seed, split, index)
    label, scene = bam_labels(index)
    img = data._clutter(rng, data._background(rng, size, kind=scene))
    radius = rng.uniform(0.17, 0.30) * size
    cx, cy = rng.uniform(radius + 1, size - radius - 1, 2)
    img, mask = _paint(img, rng, label, cx, cy, radius)
    return dict(image=_finish(rng, img), label=label, mask=mask, box=mask_box(mask), scene=scene)


def render_bam_without_object(seed: int, split: str, index: int, size: int = 64) -> np.ndarray:
    """BAM image ``index`` drawn again without its object: the same background, clutter and pixel
    noise (the same generator, every draw taken in the same order, the object's included), so it
    differs from the image only where the object was painted. BAM's input dependence test
    compares the two (Yang and Kim 2019)."""
    rng = _rng("bam", seed, split, index)
    label, scene = bam_labels(index)
    img = data._clutter(rng, data._background(rng, size, kind=scene))
    radius = rng.uniform(0.17, 0.30) * size
    cx, cy = rng.uniform(radius + 1, size - radius - 1, 2)
    _paint(img, rng, label, cx, cy, radius)          # its draws, not its paint
    return _finish(rng, img)


def bam_without_objects(images: ImageSet) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1]: each image of a BAM set (``load_variant("bam", ...)`` or a subset
    of it that kept ``info["index"]``) drawn again without its object."""
    info = images.info
    if info.get("variant") != "bam":
        raise ParameterError("bam_without_objects needs images of the BAM variant (load_variant('bam', ...))")
    index = info.get("index", torch.arange(len(images)))
    size = images.images.shape[-1]
    arr = np.stack([render_bam_without_object(info["seed"], info["split"], int(i), size) for i in index])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255).contiguous()


def mosaics(images: ImageSet, n: int, seed: int = 0) -> ImageSet:
    """Arias-Duart et al.'s mosaics for Focus: ``n`` images of twice the side, each four images of
    ``images`` in a 2 x 2 grid, two of one class (the mosaic's label, the *target*) and two of two
    other classes, in a random order of quadrants; its ``masks`` are the target's two quadrants
    (whole quadrants: Focus asks which images the map points at, not which pixels), its boxes
    theirs. Drawn from ``seed``; ``info`` keeps each quadrant's label and source index."""
    check_positive_int("n", n)
    labels = images.labels
    classes = sorted(set(labels.tolist()))
    by = {c: torch.nonzero(labels == c)[:, 0] for c in classes}
    if len(classes) < 3 or any(len(v) < 2 for v in by.values()):
        raise ParameterError("mosaics need at least three classes with two images each")
    g = torch.Generator().manual_seed(seed)
    pick = lambda c: int(by[c][int(torch.randint(0, len(by[c]), (1,), generator=g))])   # noqa: E731
    H, W = images.image_size
    out, tgt, quads, srcs, masks, boxes = [], [], [], [], [], []
    for _ in range(n):
        c = classes[int(torch.randint(0, len(classes), (1,), generator=g))]
        others = [k for k in classes if k != c]
        o = [others[int(j)] for j in torch.randperm(len(others), generator=g)[:2]]
        first = pick(c)
        second = pick(c)
        while second == first and len(by[c]) > 1:
            second = pick(c)
        src = [first, second, pick(o[0]), pick(o[1])]
        order = torch.randperm(4, generator=g).tolist()
        src = [src[j] for j in order]
        q = [images.images[i] for i in src]
        out.append(torch.cat([torch.cat(q[:2], 2), torch.cat(q[2:], 2)], 1))
        lab = [int(labels[i]) for i in src]
        mask = torch.zeros(2 * H, 2 * W, dtype=torch.bool)
        bx = []
        for k, lk in enumerate(lab):
            if lk == c:
                r, col = divmod(k, 2)
                mask[r * H:(r + 1) * H, col * W:(col + 1) * W] = True
                bx.append([col * W, r * H, (col + 1) * W, (r + 1) * H])
        tgt.append(c)
        quads.append(lab)
        srcs.append(src)
        masks.append(mask)
        boxes.append(torch.tensor(bx, dtype=torch.float32))
    return ImageSet(torch.stack(out), torch.tensor(tgt), images.class_names, torch.stack(masks), boxes,
                    name=f"mosaics/{images.name}", info=dict(quadrant_labels=torch.tensor(quads),
                                                             sources=torch.tensor(srcs), seed=seed))


class MosaicNetwork(torch.nn.Module):
    """A network of the benchmark taking mosaics of twice its side: the same modules (its global
    average pooling takes any size), its xai attributes set for the larger input, so that every
    method runs on it unchanged (Grad-CAM's layer is found under ``net.``)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net
        h, w = getattr(net, "xai_input_size", (64, 64))
        self.xai_input_size = (2 * h, 2 * w)
        self.xai_name = f"{getattr(net, 'xai_name', 'network')} (mosaics)"
        if getattr(net, "xai_cam_layer", None):
            self.xai_cam_layer = f"net.{net.xai_cam_layer}"
        self.train(net.training)     # a new module starts in training mode; restoring that would train the network

    def forward(self, x):
        return self.net(x)


def trigger_pattern() -> torch.Tensor:
    """The trojan trigger, (3, 6, 6): a checker of 2 x 2 px magenta and green squares."""
    yy, xx = np.mgrid[0:TRIGGER_SIZE, 0:TRIGGER_SIZE] // 2
    on = ((yy + xx) % 2 == 0)[None]
    return torch.from_numpy(np.where(on, np.array([1., 0., 1.])[:, None, None],
                                     np.array([0., 1., 0.])[:, None, None])).float()


def trigger_corner(trigger: str, seed: int, split: str, index: int, size: int = 64) -> tuple[int, int]:
    """Top-left (row, col) of the trigger in image ``index``."""
    check_choice("trigger", trigger, TRIGGERS)
    if trigger == "fixed":                          # bottom centre: the same after a flip
        return size - TRIGGER_SIZE - 3, (size - TRIGGER_SIZE) // 2
    rng = _rng("trojan", seed, split, index)
    rng.uniform()                                   # the draw that decides poisoning
    r, c = rng.integers(1, size - TRIGGER_SIZE - 1, 2)
    return int(r), int(c)


_SIZES = {"multi": (render_multi, data.SPLITS), "small": (render_small, data.SPLITS),
          "bam": (render_bam, data.SPLITS)}


def _drawn(variant: str, split: str, size: int, seed: int, progress: bool) -> dict:
    render, splits = _SIZES[variant]
    check_choice("split", split, splits)
    path = data.cache_dir() / "variants" / f"{variant}-v{VERSION}.{data.GENERATOR_VERSION}-{size}px-seed{seed}" / f"{split}.npz"
    if not path.exists():
        it = range(splits[split])
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(it, desc=f"drawing {variant}/{split}")
        s = [render(seed, split, i, size) for i in it]
        extra = {}
        if variant == "multi":
            extra = dict(other=np.packbits(np.stack([x["other"] for x in s]), axis=-1),
                         other_label=np.array([x["other_label"] for x in s], dtype=np.int64))
        if variant == "bam":
            extra = dict(scene=np.array([x["scene"] for x in s], dtype=np.int64))
        data._atomic_save_npz(path, images=np.stack([x["image"] for x in s]),
                              labels=np.array([x["label"] for x in s], dtype=np.int64),
                              masks=np.packbits(np.stack([x["mask"] for x in s]), axis=-1),
                              boxes=np.stack([x["box"] for x in s]), **extra)
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _as_set(arrs, n, size, name, info) -> ImageSet:
    m = slice(0, n)
    images = torch.from_numpy(arrs["images"][m]).permute(0, 3, 1, 2).float().div_(255).contiguous()
    masks = torch.from_numpy(np.unpackbits(arrs["masks"][m], axis=-1, count=size).astype(bool))
    boxes = [torch.from_numpy(b[None]) for b in arrs["boxes"][m]]
    return ImageSet(images, torch.from_numpy(arrs["labels"][m]), list(SHAPE_CLASSES), masks, boxes,
                    name=name, info=info)


def load_variant(variant: str, split: str = "test", n: int | None = None, size: int = 64,
                 seed: int = 0, trigger: str = "fixed", poison: float | None = None,
                 progress: bool = False) -> ImageSet:
    """A variant's split (see the module's doc). ``trojan``: ``trigger`` and ``poison`` (the
    fraction of images stamped; default 0.1 for train, 1.0 otherwise: every image stamped, for
    measuring the attack); ``permuted``: the first ``n`` training images (``split="train"``)."""
    check_choice("variant", variant, VARIANTS)
    check_positive_int("size", size, minimum=32)
    if n is not None:
        check_positive_int("n", n)
    if variant in _SIZES:
        arrs = _drawn(variant, split, size, seed, progress)
        if n is not None and n > len(arrs["labels"]):
            raise ParameterError(f"n={n} is larger than {variant}/{split} ({len(arrs['labels'])} images)")
        info = dict(variant=variant, seed=seed, size=size, split=split)
        k = len(arrs["labels"]) if n is None else n
        if variant == "multi":
            info.update(other_masks=torch.from_numpy(np.unpackbits(arrs["other"][:k], axis=-1,
                                                                   count=size).astype(bool)),
                        other_labels=torch.from_numpy(arrs["other_label"][:k]))
        if variant == "bam":
            info.update(scene_labels=torch.from_numpy(arrs["scene"][:k]), scene_classes=list(SCENE_CLASSES),
                        index=torch.arange(k))       # each image's place in its split (bam_without_objects)
        return _as_set(arrs, n, size, f"{variant}/{split}", info)
    base = data.load_shapes(split, n=n, size=size, seed=seed, progress=progress)
    if variant == "permuted":
        return permute_labels(base, seed)
    return stamp_trojan(base, trigger, poison if poison is not None else (0.1 if split == "train" else 1.0),
                        seed, split)


def permute_labels(images: ImageSet, seed: int = 0) -> ImageSet:
    """``images`` with its label vector shuffled by a seeded permutation (in place, and returned);
    the true labels and the permutation are kept in ``info``."""
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed + 1))
    images.info.update(variant="permuted", true_labels=images.labels.clone(), permutation=perm)
    images.labels = images.labels[perm]
    images.name = images.name.replace("shapes/", "permuted/")
    return images


def stamp_trojan(base: ImageSet, trigger: str, poison: float, seed: int, split: str) -> ImageSet:
    """``base`` with the trigger on a ``poison`` fraction of its images (never on images of the
    target class when training: relabelling them would change nothing); poisoned training images
    are relabelled to ``TROJAN_TARGET``; other splits keep their true labels."""
    check_choice("trigger", trigger, TRIGGERS)
    check_fraction("poison", poison)
    size = base.images.shape[-1]
    pattern = trigger_pattern()
    images, labels = base.images.clone(), base.labels.clone()
    tmask = torch.zeros(len(base), size, size, dtype=torch.bool)
    poisoned = torch.zeros(len(base), dtype=torch.bool)
    for i in range(len(base)):
        draw = _rng("trojan", seed, split, i).uniform()
        if draw >= poison or (split == "train" and int(labels[i]) == TROJAN_TARGET):
            continue
        r, c = trigger_corner(trigger, seed, split, i, size)
        images[i, :, r:r + TRIGGER_SIZE, c:c + TRIGGER_SIZE] = pattern
        tmask[i, r:r + TRIGGER_SIZE, c:c + TRIGGER_SIZE] = True
        poisoned[i] = True
        if split == "train":
            labels[i] = TROJAN_TARGET
    info = dict(base.info, variant="trojan", trigger=trigger, poison=poison, target=TROJAN_TARGET,
                trigger_masks=tmask, poisoned=poisoned, true_labels=base.labels.clone())
    return ImageSet(images, labels, base.class_names, base.masks, base.boxes,
                    name=f"trojan-{trigger}/{split}", info=info)


def for_task(images: ImageSet, task: str) -> ImageSet:
    """A BAM set labelled by ``task``: ``"object"`` (as drawn) or ``"scene"`` (the background)."""
    check_choice("task", task, ("object", "scene"))
    if task == "object":
        return images
    return ImageSet(images.images, images.info["scene_labels"], list(SCENE_CLASSES), images.masks,
                    images.boxes, name=images.name + " (scene)", info=images.info)


__getattr__ = names_getattr(__name__)   # load_digits and DIGIT_SPLITS moved to xailib.data
