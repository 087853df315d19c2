"""Image sets: the embedded *shapes* benchmark, an ImageNet-style folder, CIFAR-10.

Every loader returns an :class:`ImageSet`: float images in [0, 1] (normalisation lives inside
the models, so explanation methods and baselines all work in pixel space), integer labels, and
where the data has them, ground-truth object masks and boxes.

The shapes benchmark is drawn here because no image data can be downloaded in the book's
default setting. Each image holds one object of ten classes, drawn with random colour, size,
position and rotation on a textured background with clutter (thin lines and small blobs) behind
it, so a classifier has to find the object. Every image is a pure function of
``(seed, split, index)``: splits are fixed, and the first ``n`` images of a split are the same
whatever ``n`` is.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .errors import MissingResourceError, ParameterError, check_choice, check_positive_int

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "cross",
                 "ring", "crescent", "arrow", "heart", "bowtie")
SPLITS = {"train": 10000, "val": 1000, "test": 1000}
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
GENERATOR_VERSION = 1  # bump when drawing changes, so old caches are not reused
DATASETS = ("shapes", "digits", "photos", "imagenet", "cifar10")


@dataclass
class ImageSet:
    """A batch-able image set. ``masks`` and ``boxes`` are None where the data has none."""

    images: torch.Tensor                 # (N, 3, H, W) float32 in [0, 1]
    labels: torch.Tensor                 # (N,) int64
    class_names: list[str]
    masks: torch.Tensor | None = None    # (N, H, W) bool, the object's pixels (box union for ImageNet)
    boxes: list[torch.Tensor] | None = None  # per image (k, 4) float [x0, y0, x1, y1), pixel units
    name: str = ""
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])

    def subset(self, index) -> "ImageSet":
        """The images at ``index``; per-image tensors in ``info`` (one row per image) follow."""
        index = torch.as_tensor(index, dtype=torch.long)
        rows = set(self.info.get("per_image", ()))     # per-image lists named as such follow too
        info = {k: v[index] if isinstance(v, torch.Tensor) and v.ndim and len(v) == len(self)
                else [v[i] for i in index.tolist()] if k in rows else v
                for k, v in self.info.items()}
        return ImageSet(
            images=self.images[index], labels=self.labels[index], class_names=self.class_names,
            masks=None if self.masks is None else self.masks[index],
            boxes=None if self.boxes is None else [self.boxes[i] for i in index.tolist()],
            name=self.name, info=info,
        )

    def correct(self, predicted) -> torch.Tensor:
        """Whether each image's predicted class counts as right: its label, or, where the set
        lists them (the photographs' ``info["accepted"]``, an (N, classes) bool tensor), another
        class that names the same object (a tabby's photograph called an Egyptian cat)."""
        predicted = torch.as_tensor(predicted).cpu()
        ok = predicted == self.labels
        accepted = self.info.get("accepted")
        if isinstance(accepted, torch.Tensor):
            ok |= accepted[torch.arange(len(self)), predicted]
        return ok


# --------------------------------------------------------------------------------------------
# The shapes benchmark
# --------------------------------------------------------------------------------------------

def _circle(r=1.0, cx=0.0, cy=0.0, k=72):
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)


def _regular(k, r=1.0, phase=0.0):
    t = phase + np.arange(k) * 2 * np.pi / k
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _star(points=5, outer=1.0, inner=0.42):
    t = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _heart(k=80):
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y + 2.5], 1)
    return pts / np.abs(pts).max(axis=0).max() * 0.98


# Each shape is a list of (polygon in unit coordinates, fill): fill 1 paints, fill 0 cuts a hole.
# Every polygon lies within the unit disc, so ``radius`` bounds the object's extent.
_SHAPES = {
    "circle": [(_circle(), 1)],
    "square": [(_regular(4, 1.0, np.pi / 4), 1)],
    "triangle": [(_regular(3, 1.0, -np.pi / 2), 1)],
    "star": [(_star(), 1)],
    "cross": [(np.array([[-.25, -1], [.25, -1], [.25, -.25], [1, -.25], [1, .25], [.25, .25],
                         [.25, 1], [-.25, 1], [-.25, .25], [-1, .25], [-1, -.25], [-.25, -.25]]), 1)],
    "ring": [(_circle(), 1), (_circle(0.55), 0)],
    "crescent": [(_circle(), 1), (_circle(0.85, 0.45, 0.0), 0)],
    "arrow": [(np.array([[-1, -.22], [.15, -.22], [.15, -.6], [.8, 0], [.15, .6], [.15, .22],
                         [-1, .22]]), 1)],
    "heart": [(_heart(), 1)],
    "bowtie": [(np.array([[-.75, -.65], [0, 0], [-.75, .65]]), 1),
               (np.array([[.75, -.65], [0, 0], [.75, .65]]), 1)],
}
assert tuple(_SHAPES) == SHAPE_CLASSES

_SUPER = 4  # supersampling factor: objects are drawn at 4x and box-filtered down (anti-aliasing)


def object_coverage(label: int, cx: float, cy: float, radius: float, angle: float,
                    size: int) -> np.ndarray:
    """Fraction of each pixel covered by the object, (size, size) float in [0, 1].

    ``cx, cy`` is the centre in pixel units (pixel ``i`` spans ``[i, i+1)``), ``radius`` the
    radius of the object's bounding circle, ``angle`` the rotation in radians.
    """
    big = Image.new("L", (size * _SUPER, size * _SUPER), 0)
    draw = ImageDraw.Draw(big)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    for poly, fill in _SHAPES[SHAPE_CLASSES[label]]:
        pts = (poly @ rot.T) * radius + np.array([cx, cy])
        # PIL fills the pixels whose centres are inside; shift by half a pixel to match.
        pts = pts * _SUPER - 0.5
        draw.polygon([tuple(p) for p in pts], fill=255 * fill)
    small = big.resize((size, size), Image.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _background(rng: np.random.Generator, size: int, kind: int | None = None) -> np.ndarray:
    """A textured background; ``kind`` (0 noise, 1 stripes, 2 checker, 3 gradient) is drawn
    unless given (the draw happens either way, so the benchmark's random stream is unchanged)."""
    c1, c2 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    drawn = rng.integers(4)
    kind = drawn if kind is None else kind
    if kind == 0:  # smooth noise field
        g = rng.uniform(0, 1, (6, 6)).astype(np.float32)
        t = np.asarray(Image.fromarray(g).resize((size, size), Image.BICUBIC))
    elif kind == 1:  # stripes
        th, f, ph = rng.uniform(0, np.pi), rng.uniform(2, 6), rng.uniform(0, 2 * np.pi)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * f * (xx * np.cos(th) + yy * np.sin(th)) + ph)
    elif kind == 2:  # checkerboard
        k = rng.integers(5, 14)
        t = (((xx * size) // k + (yy * size) // k) % 2).astype(np.float32)
        t = 0.25 + 0.5 * t
    else:  # linear gradient
        th = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(th) + yy * np.sin(th)
        t = (t - t.min()) / (np.ptp(t) + 1e-6)
    t = np.clip(t, 0, 1)[..., None]
    return (c1 * (1 - t) + c2 * t).astype(np.float32)


def _clutter(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    size = img.shape[0]
    pil = Image.fromarray((img * 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(rng.integers(4, 11)):
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.uniform() < 0.5:  # a thin line
            x0, y0 = rng.uniform(0, size, 2)
            ln, th = rng.uniform(0.15, 0.45) * size, rng.uniform(0, 2 * np.pi)
            draw.line([(x0, y0), (x0 + ln * np.cos(th), y0 + ln * np.sin(th))], fill=col,
                      width=int(rng.integers(1, 3)))
        else:  # a small blob
            x0, y0 = rng.uniform(0, size, 2)
            rx, ry = rng.uniform(1.0, 3.5, 2) * size / 64
            draw.ellipse([x0 - rx, y0 - ry, x0 + rx, y0 + ry], fill=col)
    return np.asarray(pil, dtype=np.float32) / 255.0


def _object_colour(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    ref = [bg.mean((0, 1)), bg[0, 0], bg[-1, -1]]
    best, best_d = None, -1.0
    for _ in range(50):
        col = rng.uniform(0, 1, 3)
        d = min(np.linalg.norm(col - r) for r in ref)
        if d > 0.4:
            return col
        if d > best_d:
            best, best_d = col, d
    return best


def render_shape_image(seed: int, split: str, index: int, size: int = 64) -> dict:
    """Draw image ``index`` of ``split``; returns image (H, W, 3) uint8, label, mask, box, spec."""
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], index, GENERATOR_VERSION])
    label = int(rng.integers(len(SHAPE_CLASSES)))
    img = _clutter(rng, _background(rng, size))
    radius = rng.uniform(0.17, 0.30) * size
    cx, cy = rng.uniform(radius + 1, size - radius - 1, 2)
    angle = rng.uniform(0, 2 * np.pi)
    colour = _object_colour(rng, img)
    alpha = object_coverage(label, cx, cy, radius, angle, size)[..., None]
    img = img * (1 - alpha) + colour * alpha
    img = np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1)
    mask = alpha[..., 0] >= 0.5
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)
    return dict(image=(img * 255 + 0.5).astype(np.uint8), label=label, mask=mask, box=box,
                spec=dict(cx=cx, cy=cy, radius=radius, angle=angle, colour=colour))


def cache_dir() -> Path:
    """Where generated data and results go: ``$XAILIB_CACHE`` or ``<repo>/.cache``."""
    env = os.environ.get("XAILIB_CACHE")
    return Path(env) if env else Path(__file__).resolve().parent.parent / ".cache"


def _atomic_save_npz(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_shapes(split: str = "test", n: int | None = None, size: int = 64, seed: int = 0,
                progress: bool = False) -> ImageSet:
    """The shapes benchmark split (generated once, then read from the cache)."""
    check_choice("split", split, SPLITS)
    check_positive_int("size", size, minimum=32)
    total = SPLITS[split]
    if n is not None:
        check_positive_int("n", n)
        if n > total:
            raise ParameterError(f"n={n} is larger than the {split} split ({total} images)")
    path = cache_dir() / "shapes" / f"v{GENERATOR_VERSION}-{size}px-seed{seed}" / f"{split}.npz"
    if not path.exists():
        it = range(total)
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(it, desc=f"drawing shapes/{split}")
        samples = [render_shape_image(seed, split, i, size) for i in it]
        _atomic_save_npz(path,
                         images=np.stack([s["image"] for s in samples]),
                         labels=np.array([s["label"] for s in samples], dtype=np.int64),
                         masks=np.packbits(np.stack([s["mask"] for s in samples]), axis=-1),
                         boxes=np.stack([s["box"] for s in samples]))
    with np.load(path) as z:
        m = slice(0, n)
        images = torch.from_numpy(z["images"][m]).permute(0, 3, 1, 2).float().div_(255)
        labels = torch.from_numpy(z["labels"][m])
        masks = torch.from_numpy(np.unpackbits(z["masks"][m], axis=-1, count=size).astype(bool))
        boxes = [torch.from_numpy(b[None]) for b in z["boxes"][m]]
    return ImageSet(images.contiguous(), labels, list(SHAPE_CLASSES), masks, boxes,
                    name=f"shapes/{split}", info=dict(seed=seed, size=size, split=split))


# --------------------------------------------------------------------------------------------
# CIFAR-10 (the standard python batch files)
# --------------------------------------------------------------------------------------------

def load_cifar10(root: str | os.PathLike, split: str = "test", n: int | None = None) -> ImageSet:
    """CIFAR-10 from ``cifar-10-batches-py`` (``root`` may be that folder or its parent)."""
    check_choice("split", split, ("train", "test"))
    if n is not None:
        check_positive_int("n", n)
    root = Path(root).expanduser()
    folder = root if (root / "batches.meta").exists() else root / "cifar-10-batches-py"
    files = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    missing = [f for f in ["batches.meta", *files] if not (folder / f).exists()]
    if missing:
        raise MissingResourceError(
            f"CIFAR-10 not found: {folder} lacks {', '.join(missing)}. Download "
            "'CIFAR-10 python version' (cifar-10-python.tar.gz) from "
            "https://www.cs.toronto.edu/~kriz/cifar.html, extract it, and pass data_root= the "
            "folder that contains cifar-10-batches-py.")
    with open(folder / "batches.meta", "rb") as f:
        names = [s.decode() if isinstance(s, bytes) else s
                 for s in pickle.load(f, encoding="bytes")[b"label_names"]]
    data, labels = [], []
    for name in files:
        with open(folder / name, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data.append(np.asarray(d[b"data"], dtype=np.uint8))
        labels.extend(d[b"labels"])
    x = np.concatenate(data).reshape(-1, 3, 32, 32)[:n]
    return ImageSet(torch.from_numpy(x).float().div_(255),
                    torch.tensor(labels[:len(x)], dtype=torch.long),
                    names, name=f"cifar10/{split}")


# --------------------------------------------------------------------------------------------
# ImageNet-style folder with ILSVRC bounding-box annotations
# --------------------------------------------------------------------------------------------

_WNID = re.compile(r"^n\d{8}$")
_IMAGE_EXT = {".jpeg", ".jpg", ".png"}


def read_ilsvrc_boxes(xml_path: str | os.PathLike) -> tuple[tuple[int, int], list[tuple[str, list[float]]]]:
    """Parse one ILSVRC (PASCAL-VOC style) annotation: ((width, height), [(wnid, box), ...]).

    Boxes come back as ``[x0, y0, x1, y1)`` in 0-based pixel units: the file's 1-based inclusive
    ``xmin..xmax`` covers pixels ``xmin-1 .. xmax-1``.
    """
    root = ET.parse(xml_path).getroot()
    size = root.find("size")
    wh = (int(size.findtext("width")), int(size.findtext("height")))
    objects = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        objects.append((obj.findtext("name"), [x0 - 1, y0 - 1, x1, y1]))
    return wh, objects


SYNSET_FILE = "LOC_synset_mapping.txt"     # the class order, found beside the images when not given


def _read_synsets(path: Path) -> list[str]:
    if not path.exists():
        raise MissingResourceError(f"synset list {path} does not exist (one wnid per line, "
                                   "in class-index order, e.g. LOC_synset_mapping.txt)")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _resize_crop(img: Image.Image, resize: int, size: int):
    """torchvision's ``Resize(resize)`` then ``CenterCrop(size)``, with the same rounding."""
    w, h = img.size
    if w <= h:
        nw, nh = resize, int(resize * h / w)
    else:
        nw, nh = int(resize * w / h), resize
    img = img.resize((nw, nh), Image.BILINEAR)
    if nw < size or nh < size:
        raise ParameterError(f"resize={resize} is smaller than the crop size={size}")
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    return img, (nw / w, nh / h), (left, top)


def load_imagenet(root: str | os.PathLike, annotations: str | os.PathLike | None = None,
                  n: int | None = None, size: int = 224, resize: int | None = None,
                  synsets: str | os.PathLike | None = None, seed: int = 0) -> ImageSet:
    """Images from an ImageNet-style folder, preprocessed as torchvision's ImageNet models expect.

    ``root`` holds either class sub-folders named by wnid (``n01440764/…JPEG``) or the flat
    ILSVRC2012 validation images (``ILSVRC2012_val_00000001.JPEG``; then labels come from the
    annotations). ``annotations`` is the folder of ILSVRC bounding-box XML files named like the
    images; boxes are mapped through the same resize (shorter side to ``resize``, default
    ``size * 8/7``) and centre crop, and ``masks`` is the union of the target class's boxes.
    ``synsets`` is a file listing the 1000 wnids in class-index order; without it, a
    ``LOC_synset_mapping.txt`` in ``root`` or beside it (as ImageNet's localisation release ships
    one) when there is one, else the sorted wnids found, which matches torchvision's models only
    when all 1000 are present.
    ``n`` images are drawn at random (seeded) when fewer than all are wanted.
    """
    check_positive_int("size", size)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MissingResourceError(
            f"ImageNet folder {root} does not exist. Pass data_root= a folder of ILSVRC2012 "
            "validation images (class sub-folders named by wnid, or the flat val folder) and "
            "annotations= the folder of its bounding-box XML files (ILSVRC2012_bbox_val_v3.tgz "
            "from image-net.org, which needs a free account).")
    ann = None
    if annotations is not None:
        ann = Path(annotations).expanduser()
        if not ann.is_dir():
            raise MissingResourceError(f"annotation folder {ann} does not exist (expected the "
                                       "extracted ILSVRC2012_bbox_val_v3.tgz XML files)")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and _WNID.match(p.name))
    if subdirs:
        files = [(f, d.name) for d in subdirs for f in sorted(d.iterdir())
                 if f.suffix.lower() in _IMAGE_EXT]
    else:
        if ann is None:
            raise ParameterError("the flat ImageNet validation folder has no class sub-folders; "
                                 "pass annotations= so labels can be read from the XML files")
        files = []
        for f in sorted(root.iterdir()):
            if f.suffix.lower() in _IMAGE_EXT and (ann / f"{f.stem}.xml").exists():
                objects = read_ilsvrc_boxes(ann / f"{f.stem}.xml")[1]
                if not objects:
                    raise ParameterError(f"annotation {ann / f'{f.stem}.xml'} has no <object>, "
                                         "so the image's label is unknown")
                files.append((f, objects[0][0]))
        if not files and any(f.suffix.lower() in _IMAGE_EXT for f in root.iterdir()):
            raise MissingResourceError(f"no image under {root} has an annotation file "
                                       f"<image name>.xml in {ann}")
    if not files:
        raise MissingResourceError(f"no images (.JPEG/.jpg/.png) found under {root}")
    if synsets is None:
        synsets = next((p for p in (root / SYNSET_FILE, root.parent / SYNSET_FILE) if p.is_file()), None)
    wnids = _read_synsets(Path(synsets)) if synsets else sorted({w for _, w in files})
    if not synsets and len(wnids) != 1000:
        warnings.warn(f"{len(wnids)} classes found under {root}; label indices follow their "
                      "sorted order, which matches torchvision's 1000-class models only if you "
                      "pass synsets= the full wnid list", stacklevel=2)
    index = {w: i for i, w in enumerate(wnids)}
    unknown = sorted({w for _, w in files} - set(index))
    if unknown:
        raise ParameterError(f"wnid(s) {unknown[:3]} are not in the synset list {synsets}")
    if n is not None:
        check_positive_int("n", n)
        if n < len(files):
            pick = np.sort(np.random.default_rng(seed).choice(len(files), n, replace=False))
            files = [files[i] for i in pick]
    resize = resize or round(size * 8 / 7)
    images, labels, masks, boxes = [], [], [], []
    for path, wnid in files:
        with Image.open(path) as im:
            img, (sx, sy), (left, top) = _resize_crop(im.convert("RGB"), resize, size)
        images.append(torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()))
        labels.append(index[wnid])
        if ann is not None:
            xml = ann / f"{path.stem}.xml"
            objs = read_ilsvrc_boxes(xml)[1] if xml.exists() else []
            b = np.array([bx for w, bx in objs if w == wnid], dtype=np.float32).reshape(-1, 4)
            b = b * np.array([sx, sy, sx, sy], np.float32) - np.array([left, top, left, top], np.float32)
            b = np.clip(b, 0, size)
            b = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
            boxes.append(torch.from_numpy(b))
            masks.append(boxes_to_mask(boxes[-1], size, size))
    x = torch.stack(images).permute(0, 3, 1, 2).float().div_(255)
    return ImageSet(x, torch.tensor(labels), wnids, torch.stack(masks) if masks else None,
                    boxes or None, name="imagenet", info=dict(root=str(root), size=size))


def boxes_to_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W) bool mask of the pixels whose centres lie in any of the ``[x0, y0, x1, y1)`` boxes."""
    ys = torch.arange(height).float() + 0.5
    xs = torch.arange(width).float() + 0.5
    mask = torch.zeros(height, width, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes.tolist():
        mask |= ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
    return mask


# --------------------------------------------------------------------------------------------

def load_dataset(dataset: str = "shapes", split: str = "test", n: int | None = None,
                 data_root=None, annotations=None, size: int | None = None, seed: int = 0,
                 synsets=None) -> ImageSet:
    """One entry point for notebooks: ``dataset`` is one of ``shapes``, ``digits`` (scikit-learn's
    UCI digits at 64 px, :func:`load_digits`), ``photos`` (real photographs with ImageNet labels and
    boxes, :func:`load_photos`; one set whatever the split), ``imagenet``, ``cifar10``."""
    check_choice("dataset", dataset, DATASETS)
    if dataset == "photos":
        return load_photos(n=n, size=size or 224)
    if dataset == "shapes":
        return load_shapes(split, n=n, size=size or 64, seed=seed)
    if dataset == "digits":
        return load_digits(split, n=n, size=size or 64, seed=seed)
    if data_root is None:
        raise ParameterError(f"dataset={dataset!r} needs data_root= the folder that holds it")
    if dataset == "cifar10":
        return load_cifar10(data_root, split="test" if split in ("test", "val") else split, n=n)
    return load_imagenet(data_root, annotations, n=n, size=size or 224, synsets=synsets, seed=seed)


def mask_box(mask) -> np.ndarray:
    """The ``[x0, y0, x1, y1)`` box (float32, half-open pixels) around the true pixels of an (H, W) mask."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


PHOTOS = Path(__file__).resolve().parent.parent / "data" / "photos" / "annotations.json"


def _photo(source: str) -> np.ndarray:
    """One photograph as (H, W, 3) uint8, from the package that ships it (see the annotation file)."""
    if source.startswith("skimage.data."):
        from skimage import data as skdata
        name = source.split(".")[2].split()[0]
        img = getattr(skdata, name)()
        return img[0] if name == "stereo_motorcycle" else img
    if source.startswith("matplotlib"):
        import matplotlib.cbook as cbook
        import matplotlib.pyplot as plt
        with cbook.get_sample_data(source.split()[-1]) as f:
            return np.asarray(plt.imread(f))
    from sklearn.datasets import load_sample_images
    sample = load_sample_images()
    return sample.images[[Path(f).name for f in sample.filenames].index(source.split()[-1])]


def load_photos(n: int | None = None, size: int = 224) -> ImageSet:
    """The real photographs that ship with scikit-image, matplotlib and scikit-learn, resized (the
    whole frame, bilinear with antialiasing, not cropped) to ``size`` px, each with the ImageNet
    class and the object box the project drew (``data/photos/annotations.json`` says how); its
    masks are the boxes. Labels index the 1000 ImageNet classes (torchvision's names)."""
    import torchvision.models as tvm
    check_positive_int("size", size, minimum=8)
    notes = json.loads(PHOTOS.read_text())
    rows = notes["photos"][:n]
    images, boxes, masks = [], [], torch.zeros(len(rows), size, size, dtype=torch.bool)
    for i, r in enumerate(rows):
        img = torch.from_numpy(np.array(_photo(r["source"])[..., :3])).permute(2, 0, 1)[None].float() / 255
        h, w = img.shape[-2:]
        images.append(torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", antialias=True,
                                                      align_corners=False).clamp(0, 1))
        x0, y0, x1, y1 = r["box"]
        box = torch.tensor([[x0 * size / w, y0 * size / h, x1 * size / w, y1 * size / h]], dtype=torch.float32)
        boxes.append(box)
        a, b, c, d = box[0].round().long().tolist()
        masks[i, b:d, a:c] = True
    accepted = torch.zeros(len(rows), 1000, dtype=torch.bool)
    for i, r in enumerate(rows):
        accepted[i, [r["label"], *r["accepted"]]] = True
    return ImageSet(torch.cat(images), torch.tensor([r["label"] for r in rows]),
                    list(tvm.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]), masks, boxes, name="photos",
                    info=dict(size=size, photos=[r["name"] for r in rows], accepted=accepted, per_image=["photos"],
                              annotations="data/photos/annotations.json", resize="whole frame, bilinear, antialiased"))


DIGIT_SPLITS = {"train": 1297, "val": 200, "test": 300}


def load_digits(split: str = "test", n: int | None = None, size: int = 64, seed: int = 0) -> ImageSet:
    """scikit-learn's UCI digits, one real data set that needs no download (1,797 images of 8 x 8 px),
    upsampled bilinearly to ``size`` px, grey in 3 channels, split 1297 / 200 / 300 by a seeded
    permutation; its masks are the ink (upsampled value >= 0.5)."""
    from sklearn.datasets import load_digits as sk_digits
    check_choice("split", split, DIGIT_SPLITS)
    check_positive_int("size", size, minimum=8)
    d = sk_digits()
    order = np.random.default_rng(seed).permutation(len(d.target))
    start = {"train": 0, "val": 1297, "test": 1497}[split]
    idx = order[start:start + DIGIT_SPLITS[split]][:n]
    x = torch.from_numpy(d.images[idx] / 16.0).float()[:, None]
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                        align_corners=False).clamp(0, 1)
    masks = x[:, 0] >= 0.5
    boxes = [torch.from_numpy(mask_box(m.numpy())[None]) for m in masks]
    return ImageSet(x.expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(d.target[idx]).long(),
                    [str(k) for k in range(10)], masks, boxes, name=f"digits/{split}",
                    info=dict(seed=seed, size=size, split=split, upsampling="bilinear from 8 x 8"))


def fingerprint(images: torch.Tensor) -> str:
    """Short content hash of an image tensor, to key cached results by the images they used."""
    return hashlib.sha256(images.detach().cpu().numpy().tobytes()).hexdigest()[:12]
