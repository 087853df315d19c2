"""Tests of xailib's real-data paths on small data made in tmp_path.

CIFAR-10 python batches, ImageNet-style folders (class sub-folders and the flat ILSVRC layout
with PASCAL-VOC XML boxes), torchvision model loading from local weights, and the
``load_dataset`` entry point. Nothing is downloaded.
"""
from __future__ import annotations

import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, when xailib is not installed

from xailib import data as xd  # noqa: E402
from xailib import models as xm  # noqa: E402
from xailib.errors import MissingResourceError, ParameterError  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WNID_A, WNID_B, WNID_C = "n01440764", "n01443537", "n01484850"


# ============================================================================================
# CIFAR-10
# ============================================================================================

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]


def _write_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"fake", b"data": data, b"labels": labels,
                     b"filenames": [b"x.png"] * len(labels)}, f)


def make_cifar(parent: Path, n_test: int = 5, n_train_per_batch: int = 2, seed: int = 0,
               names_as_bytes: bool = True) -> dict:
    """Fake ``cifar-10-batches-py`` under ``parent``; returns the data and labels written."""
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = [s.encode() for s in CIFAR_NAMES] if names_as_bytes else list(CIFAR_NAMES)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": 10000, b"num_vis": 3072}, f)
    out = {"folder": folder}
    test = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    test_labels = [int(v) for v in rng.integers(0, 10, n_test)]
    _write_batch(folder / "test_batch", test, test_labels)
    out["test"] = (test, test_labels)
    train, train_labels = [], []
    for i in range(1, 6):
        d = rng.integers(0, 256, (n_train_per_batch, 3072), dtype=np.uint8)
        lab = [int(v) for v in rng.integers(0, 10, n_train_per_batch)]
        _write_batch(folder / f"data_batch_{i}", d, lab)
        train.append(d)
        train_labels += lab
    out["train"] = (np.concatenate(train), train_labels)
    return out


def _cifar_expected(rows: np.ndarray) -> np.ndarray:
    """(N, 3, 32, 32) from (N, 3072) written out by hand: 1024 R, then 1024 G, then 1024 B."""
    n = len(rows)
    out = np.empty((n, 3, 32, 32), dtype=np.uint8)
    for c in range(3):
        for y in range(32):
            out[:, c, y, :] = rows[:, c * 1024 + y * 32: c * 1024 + y * 32 + 32]
    return out


def test_cifar10_test_split_shapes_values_labels_and_names(tmp_path):
    fake = make_cifar(tmp_path, n_test=5)
    ds = xd.load_cifar10(tmp_path, "test")
    assert isinstance(ds, xd.ImageSet)
    assert tuple(ds.images.shape) == (5, 3, 32, 32)
    assert ds.images.dtype == torch.float32
    assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
    assert float(ds.images.max()) > 0.9  # random bytes reach near 255: really scaled by 1/255
    assert ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == fake["test"][1]
    assert ds.class_names == CIFAR_NAMES
    assert all(isinstance(s, str) for s in ds.class_names)
    assert len(ds) == 5 and ds.image_size == (32, 32)
    assert ds.masks is None and ds.boxes is None
    # exact values: every pixel is byte / 255
    expected = _cifar_expected(fake["test"][0])
    np.testing.assert_array_equal((ds.images.numpy() * 255).round().astype(np.uint8), expected)


def test_cifar10_pixel_mapping_is_row_major_rgb_planes(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [s.encode() for s in CIFAR_NAMES]}, f)
    rows = np.zeros((2, 3072), dtype=np.uint8)
    rows[0, 0] = 255                     # R, y=0, x=0
    rows[0, 1024 + 31] = 200             # G, y=0, x=31
    rows[0, 2048 + 5 * 32 + 3] = 100     # B, y=5, x=3
    rows[1, 1023] = 51                   # R, y=31, x=31
    rows[1, 1024 + 32] = 102             # G, y=1, x=0
    _write_batch(folder / "test_batch", rows, [3, 7])
    ds = xd.load_cifar10(folder, "test")
    img = ds.images
    assert img[0, 0, 0, 0].item() == pytest.approx(1.0)
    assert img[0, 1, 0, 31].item() == pytest.approx(200 / 255)
    assert img[0, 2, 5, 3].item() == pytest.approx(100 / 255)
    assert img[1, 0, 31, 31].item() == pytest.approx(51 / 255)
    assert img[1, 1, 1, 0].item() == pytest.approx(102 / 255)
    # nothing else is lit
    assert int((img[0] > 0).sum()) == 3 and int((img[1] > 0).sum()) == 2
    assert ds.labels.tolist() == [3, 7]


def test_cifar10_root_may_be_the_folder_or_its_parent(tmp_path):
    fake = make_cifar(tmp_path, n_test=4)
    a = xd.load_cifar10(tmp_path, "test")
    b = xd.load_cifar10(fake["folder"], "test")
    c = xd.load_cifar10(str(fake["folder"]), "test")
    assert torch.equal(a.images, b.images) and torch.equal(a.images, c.images)
    assert a.labels.tolist() == b.labels.tolist() == fake["test"][1]


def test_cifar10_train_concatenates_the_five_batches_in_order(tmp_path):
    fake = make_cifar(tmp_path, n_test=3, n_train_per_batch=2)
    ds = xd.load_cifar10(tmp_path, "train")
    assert tuple(ds.images.shape) == (10, 3, 32, 32)
    assert ds.labels.tolist() == fake["train"][1]
    np.testing.assert_array_equal((ds.images.numpy() * 255).round().astype(np.uint8),
                                  _cifar_expected(fake["train"][0]))
    assert ds.name == "cifar10/train"


def test_cifar10_str_label_names_are_accepted(tmp_path):
    make_cifar(tmp_path, n_test=2, names_as_bytes=False)
    assert xd.load_cifar10(tmp_path, "test").class_names == CIFAR_NAMES


def test_cifar10_n_truncates(tmp_path):
    fake = make_cifar(tmp_path, n_test=5, n_train_per_batch=2)
    full = xd.load_cifar10(tmp_path, "test")
    three = xd.load_cifar10(tmp_path, "test", n=3)
    assert tuple(three.images.shape) == (3, 3, 32, 32)
    assert torch.equal(three.images, full.images[:3])
    assert three.labels.tolist() == fake["test"][1][:3]
    # n across batch boundaries of the train split
    tr = xd.load_cifar10(tmp_path, "train", n=5)
    assert tr.labels.tolist() == fake["train"][1][:5]
    np.testing.assert_array_equal((tr.images.numpy() * 255).round().astype(np.uint8),
                                  _cifar_expected(fake["train"][0][:5]))
    # n larger than the split: everything
    big = xd.load_cifar10(tmp_path, "test", n=100)
    assert len(big) == 5 and torch.equal(big.images, full.images)


def test_cifar10_missing_folder_names_the_file_and_how_to_get_it(tmp_path):
    with pytest.raises(MissingResourceError) as info:
        xd.load_cifar10(tmp_path / "nowhere", "test")
    msg = str(info.value)
    assert "batches.meta" in msg and "test_batch" in msg
    assert "cifar-10-python.tar.gz" in msg
    assert "cifar-10-batches-py" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_cifar10_missing_train_batch_is_named(tmp_path):
    fake = make_cifar(tmp_path, n_test=2)
    (fake["folder"] / "data_batch_3").unlink()
    xd.load_cifar10(tmp_path, "test")  # the test split is still complete
    with pytest.raises(MissingResourceError) as info:
        xd.load_cifar10(tmp_path, "train")
    msg = str(info.value)
    assert "data_batch_3" in msg
    assert "data_batch_1" not in msg and "batches.meta" not in msg
    assert "cifar-10-python.tar.gz" in msg


def test_cifar10_rejects_unknown_split(tmp_path):
    make_cifar(tmp_path, n_test=2)
    with pytest.raises(ParameterError, match="split"):
        xd.load_cifar10(tmp_path, "val")


# ============================================================================================
# ImageNet-style folders
# ============================================================================================

def save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8), "RGB").save(path)


def solid(w: int, h: int, rgb) -> np.ndarray:
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[...] = rgb
    return a


def write_xml(path: Path, width: int, height: int, objects) -> None:
    """ILSVRC/PASCAL-VOC style annotation; ``objects`` = [(wnid, xmin, ymin, xmax, ymax)]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    objs = "".join(
        f"<object><name>{w}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for w, x0, y0, x1, y1 in objects)
    path.write_text(
        f"<annotation><folder>val</folder><filename>{path.stem}</filename>"
        f"<source><database>ILSVRC_2012</database></source>"
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{objs}</annotation>")


def quiet_load(*args, **kwargs):
    """load_imagenet without the (expected) 'not 1000 classes' warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return xd.load_imagenet(*args, **kwargs)


def rect_mask(size, *rects) -> torch.Tensor:
    """Bool (size, size) mask, True on rows y0:y1, cols x0:x1 of each (x0, y0, x1, y1)."""
    m = torch.zeros(size, size, dtype=torch.bool)
    for x0, y0, x1, y1 in rects:
        m[y0:y1, x0:x1] = True
    return m


# ---- read_ilsvrc_boxes and boxes_to_mask ---------------------------------------------------

def test_read_ilsvrc_boxes_converts_1_based_inclusive_to_0_based_half_open(tmp_path):
    xml = tmp_path / "ILSVRC2012_val_00000001.xml"
    write_xml(xml, 500, 375, [(WNID_A, 1, 1, 500, 375), (WNID_B, 61, 11, 80, 30)])
    (w, h), objects = xd.read_ilsvrc_boxes(xml)
    assert (w, h) == (500, 375)
    assert [o[0] for o in objects] == [WNID_A, WNID_B]
    assert [list(o[1]) for o in objects] == [[0.0, 0.0, 500.0, 375.0], [60.0, 10.0, 80.0, 30.0]]


def test_read_ilsvrc_boxes_no_objects_and_str_path(tmp_path):
    xml = tmp_path / "empty.xml"
    write_xml(xml, 32, 16, [])
    assert xd.read_ilsvrc_boxes(str(xml)) == ((32, 16), [])


def test_boxes_to_mask_hand_cases():
    # one integer box [1, 2, 4, 3): row 2, columns 1..3
    m = xd.boxes_to_mask(torch.tensor([[1.0, 2.0, 4.0, 3.0]]), 5, 6)
    assert m.dtype == torch.bool and tuple(m.shape) == (5, 6)
    expected = torch.zeros(5, 6, dtype=torch.bool)
    expected[2, 1:4] = True
    assert torch.equal(m, expected)
    # union of two overlapping boxes
    m = xd.boxes_to_mask(torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0]]), 4, 4)
    expected = torch.tensor([[1, 1, 0, 0],
                             [1, 1, 1, 0],
                             [0, 1, 1, 0],
                             [0, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(m, expected)
    # pixel centres decide: [0.6, 1.4) holds no centre, [0.4, 1.6) holds centres 0.5 and 1.5
    assert not xd.boxes_to_mask(torch.tensor([[0.6, 0.0, 1.4, 3.0]]), 3, 3).any()
    m = xd.boxes_to_mask(torch.tensor([[0.4, 0.0, 1.6, 1.0]]), 3, 3)
    assert torch.equal(m, torch.tensor([[1, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=torch.bool))
    # half-open at pixel centres: [0.5, 1.5) holds centre 0.5 but not 1.5
    m = xd.boxes_to_mask(torch.tensor([[0.5, 0.5, 1.5, 1.5]]), 3, 3)
    assert torch.equal(m, torch.tensor([[1, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=torch.bool))
    # no boxes: empty mask
    assert not xd.boxes_to_mask(torch.zeros(0, 4), 3, 5).any()
    assert tuple(xd.boxes_to_mask(torch.zeros(0, 4), 3, 5).shape) == (3, 5)


# ---- class sub-folder layout --------------------------------------------------------------

def test_imagenet_subfolders_exact_pixels_labels_sorted_and_warning(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "val"
    # 12 wide x 8 tall -> resize=8 keeps it (scale 1), centre crop 8x8 starts at x=2
    arr_b = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    # 8 wide x 12 tall -> centre crop starts at y=2
    arr_a = rng.integers(0, 256, (12, 8, 3), dtype=np.uint8)
    save_png(root / WNID_B / "b0.png", arr_b)   # sorted later than A
    save_png(root / WNID_A / "a0.png", arr_a)
    with pytest.warns(UserWarning, match="2 classes"):
        ds = xd.load_imagenet(root, size=8, resize=8)
    assert tuple(ds.images.shape) == (2, 3, 8, 8)
    assert ds.images.dtype == torch.float32
    assert ds.class_names == [WNID_A, WNID_B]
    assert ds.labels.tolist() == [0, 1]           # files ordered by sorted wnid folder
    got = (ds.images.numpy() * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(got[0], arr_a[2:10, :, :])
    np.testing.assert_array_equal(got[1], arr_b[:, 2:10, :])
    assert ds.masks is None and ds.boxes is None   # no annotations given


def test_imagenet_default_resize_is_size_times_8_over_7(tmp_path):
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)   # 16 wide x 8 tall
    save_png(tmp_path / WNID_A / "x.png", arr)
    # size=7 -> resize=round(8.0)=8 = the shorter side, so no scaling; crop left=(16-7)//2=4,
    # top=(8-7)//2=0
    ds = quiet_load(tmp_path, size=7)
    got = (ds.images[0].numpy() * 255).round().astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(got, arr[0:7, 4:11, :])


def test_imagenet_jpeg_uppercase_extension_and_other_files_ignored(tmp_path):
    root = tmp_path / "val"
    (root / WNID_A).mkdir(parents=True)
    Image.fromarray(solid(16, 16, (200, 40, 90))).save(root / WNID_A / "img.JPEG", quality=95)
    (root / WNID_A / "notes.txt").write_text("not an image")
    save_png(root / "not_a_wnid" / "x.png", solid(16, 16, (0, 0, 0)))   # not a class folder
    ds = quiet_load(root, size=16, resize=16)
    assert len(ds) == 1 and ds.class_names == [WNID_A]
    mean = ds.images[0].mean(dim=(1, 2)) * 255
    assert torch.allclose(mean, torch.tensor([200.0, 40.0, 90.0]), atol=4)


def test_imagenet_synsets_file_sets_label_order_and_class_names(tmp_path):
    root = tmp_path / "val"
    save_png(root / WNID_A / "a.png", solid(8, 8, (10, 10, 10)))
    save_png(root / WNID_B / "b.png", solid(8, 8, (20, 20, 20)))
    synsets = tmp_path / "LOC_synset_mapping.txt"
    # class-index order puts B first, then an absent class, then A
    synsets.write_text(f"{WNID_B} tench, Tinca tinca\n{WNID_C} goldfish\n\n{WNID_A} shark\n")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = xd.load_imagenet(root, size=8, resize=8, synsets=synsets)
    assert not [w for w in rec if "classes found" in str(w.message)]
    assert ds.class_names == [WNID_B, WNID_C, WNID_A]
    # files come in sorted folder order (A, B); labels follow the synset file's order
    red = (ds.images[:, 0, 0, 0] * 255).round().tolist()
    assert red == [10.0, 20.0]
    assert ds.labels.tolist() == [2, 0]
    # the same file found beside the images (as ImageNet's localisation release ships it): the same
    # labels, no warning; inside the folder it wins over one beside it
    found = xd.load_imagenet(root, size=8, resize=8)
    assert found.labels.tolist() == [2, 0] and found.class_names == [WNID_B, WNID_C, WNID_A]
    (root / "LOC_synset_mapping.txt").write_text(f"{WNID_A} shark\n{WNID_B} tench\n")
    assert xd.load_imagenet(root, size=8, resize=8).labels.tolist() == [0, 1]


def test_imagenet_wnid_missing_from_synsets_is_a_parameter_error(tmp_path):
    root = tmp_path / "val"
    save_png(root / WNID_A / "a.png", solid(8, 8, (1, 2, 3)))
    save_png(root / WNID_B / "b.png", solid(8, 8, (1, 2, 3)))
    synsets = tmp_path / "syn.txt"
    synsets.write_text(f"{WNID_A}\n")
    with pytest.raises(ParameterError, match=WNID_B):
        xd.load_imagenet(root, size=8, resize=8, synsets=synsets)


def test_imagenet_missing_synsets_file(tmp_path):
    save_png(tmp_path / "val" / WNID_A / "a.png", solid(8, 8, (1, 2, 3)))
    with pytest.raises(MissingResourceError, match="nope.txt"):
        xd.load_imagenet(tmp_path / "val", size=8, synsets=tmp_path / "nope.txt")


def test_imagenet_subfolders_with_annotations_and_an_image_without_xml(tmp_path):
    root, ann = tmp_path / "val", tmp_path / "ann"
    save_png(root / WNID_A / "ILSVRC2012_val_00000001.png", solid(20, 20, (5, 5, 5)))
    save_png(root / WNID_A / "ILSVRC2012_val_00000002.png", solid(20, 20, (6, 6, 6)))
    # 20x20 image, resize=size=20: identity; box covers cols 2..5, rows 3..9 (1-based incl.)
    write_xml(ann / "ILSVRC2012_val_00000001.xml", 20, 20, [(WNID_A, 3, 4, 6, 10)])
    ds = quiet_load(root, annotations=ann, size=20, resize=20)
    assert tuple(ds.masks.shape) == (2, 20, 20) and ds.masks.dtype == torch.bool
    assert torch.equal(ds.masks[0], rect_mask(20, (2, 3, 6, 10)))
    assert ds.boxes[0].tolist() == [[2.0, 3.0, 6.0, 10.0]]
    assert not ds.masks[1].any()                 # no XML: no boxes, empty mask
    assert tuple(ds.boxes[1].shape) == (0, 4)


# ---- flat ILSVRC2012 validation layout with XML annotations ---------------------------------

def make_flat(tmp_path: Path):
    """Three annotated images with known box mappings (resize=100, size=100) and one without."""
    root, ann = tmp_path / "val", tmp_path / "bbox"
    # 1) 200 wide x 100 tall: scale 1.0, crop left 50, top 0
    save_png(root / "ILSVRC2012_val_00000001.png", solid(200, 100, (10, 20, 30)))
    write_xml(ann / "ILSVRC2012_val_00000001.xml", 200, 100, [
        (WNID_B, 61, 11, 80, 30),      # -> [60,10,80,30) -> minus left 50 -> [10,10,30,30)
        (WNID_A, 51, 1, 150, 100),     # another class: ignored (it would fill the crop)
        (WNID_B, 141, 81, 170, 100),   # -> [140,80,170,100) -> [90,80,120,100) -> clip [90,80,100,100)
        (WNID_B, 1, 1, 40, 50),        # -> [0,0,40,50) -> [-50,..,-10,..): left of the crop, dropped
        (WNID_B, 161, 1, 200, 100),    # -> [160,0,200,100) -> [110,..,150,..): right of it, dropped
    ])
    # 2) 400 wide x 200 tall: shorter side 200 -> 100, scale 0.5, resized 200x100, left 50
    save_png(root / "ILSVRC2012_val_00000002.png", solid(400, 200, (40, 50, 60)))
    write_xml(ann / "ILSVRC2012_val_00000002.xml", 400, 200, [
        (WNID_A, 121, 21, 160, 60),    # -> [120,20,160,60) * 0.5 = [60,10,80,30) -> [10,10,30,30)
    ])
    # 3) 50 wide x 100 tall: scale 2, resized 100x200, crop top 50
    save_png(root / "ILSVRC2012_val_00000003.png", solid(50, 100, (70, 80, 90)))
    write_xml(ann / "ILSVRC2012_val_00000003.xml", 50, 100, [
        (WNID_C, 11, 31, 20, 40),      # -> [10,30,20,40) * 2 = [20,60,40,80) -> [20,10,40,30)
        (WNID_A, 1, 1, 50, 100),       # another class: ignored
    ])
    # 4) no annotation file: skipped in the flat layout
    save_png(root / "ILSVRC2012_val_00000004.png", solid(100, 100, (0, 0, 0)))
    return root, ann


def test_imagenet_flat_layout_labels_boxes_and_masks_known_answers(tmp_path):
    root, ann = make_flat(tmp_path)
    with pytest.warns(UserWarning, match="3 classes"):
        ds = xd.load_imagenet(root, annotations=ann, size=100, resize=100)
    assert len(ds) == 3                              # image 4 has no XML
    assert tuple(ds.images.shape) == (3, 3, 100, 100)
    assert ds.class_names == [WNID_A, WNID_B, WNID_C]
    assert ds.labels.tolist() == [1, 0, 2]           # the first object's wnid of each file
    # the solid colours came through unchanged, in file order
    rgb = (ds.images[:, :, 50, 50] * 255).round().tolist()
    assert rgb == [[10, 20, 30], [40, 50, 60], [70, 80, 90]]
    # image 1: two target boxes survive (one clipped), other class and outside boxes dropped
    torch.testing.assert_close(ds.boxes[0], torch.tensor([[10.0, 10.0, 30.0, 30.0],
                                                          [90.0, 80.0, 100.0, 100.0]]))
    assert torch.equal(ds.masks[0], rect_mask(100, (10, 10, 30, 30), (90, 80, 100, 100)))
    assert int(ds.masks[0].sum()) == 20 * 20 + 10 * 20
    # image 2: downscaled by 2, then cropped
    torch.testing.assert_close(ds.boxes[1], torch.tensor([[10.0, 10.0, 30.0, 30.0]]))
    assert torch.equal(ds.masks[1], rect_mask(100, (10, 10, 30, 30)))
    # image 3: upscaled by 2, cropped from the top
    torch.testing.assert_close(ds.boxes[2], torch.tensor([[20.0, 10.0, 40.0, 30.0]]))
    assert torch.equal(ds.masks[2], rect_mask(100, (20, 10, 40, 30)))


def test_imagenet_flat_layout_without_annotations_is_a_parameter_error(tmp_path):
    root, _ = make_flat(tmp_path)
    with pytest.raises(ParameterError, match="annotations"):
        xd.load_imagenet(root, size=100)


def test_imagenet_missing_root_names_the_folder(tmp_path):
    missing = tmp_path / "no_such_imagenet"
    with pytest.raises(MissingResourceError) as info:
        xd.load_imagenet(missing)
    assert str(missing) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_imagenet_missing_annotation_folder_names_it(tmp_path):
    root, _ = make_flat(tmp_path)
    with pytest.raises(MissingResourceError) as info:
        xd.load_imagenet(root, annotations=tmp_path / "no_bbox", size=100)
    assert str(tmp_path / "no_bbox") in str(info.value)


def test_imagenet_folder_without_images(tmp_path):
    (tmp_path / "val" / WNID_A).mkdir(parents=True)
    with pytest.raises(MissingResourceError, match="no images"):
        xd.load_imagenet(tmp_path / "val", size=8)


# ---- the seeded subset ---------------------------------------------------------------------

def make_six(tmp_path: Path):
    """Six 10x10 images (3 per class); image k has red value 10*k and a box at column k."""
    root, ann = tmp_path / "val", tmp_path / "ann"
    for k in range(6):
        wnid = WNID_A if k < 3 else WNID_B
        name = f"ILSVRC2012_val_{k + 1:08d}"
        save_png(root / wnid / f"{name}.png", solid(10, 10, (10 * k, 0, 0)))
        write_xml(ann / f"{name}.xml", 10, 10, [(wnid, k + 1, 1, k + 1, 10)])  # column k
    return root, ann


def _ids(ds) -> list[int]:
    return [int(v) // 10 for v in (ds.images[:, 0, 0, 0] * 255).round().tolist()]


def test_imagenet_n_picks_a_seeded_deterministic_subset(tmp_path):
    root, ann = make_six(tmp_path)
    full = quiet_load(root, annotations=ann, size=10, resize=10)
    assert _ids(full) == [0, 1, 2, 3, 4, 5]
    a = quiet_load(root, annotations=ann, n=3, size=10, resize=10, seed=0)
    b = quiet_load(root, annotations=ann, n=3, size=10, resize=10, seed=0)
    ids = _ids(a)
    assert len(a) == 3 and len(set(ids)) == 3
    assert ids == sorted(ids)                      # file order kept
    assert ids == _ids(b) and torch.equal(a.images, b.images)
    # labels, masks and boxes travel with their image
    assert a.labels.tolist() == [0 if k < 3 else 1 for k in ids]
    for j, k in enumerate(ids):
        assert torch.equal(a.masks[j], rect_mask(10, (k, 0, k + 1, 10)))
        assert a.boxes[j].tolist() == [[float(k), 0.0, float(k + 1), 10.0]]
    # the seed matters
    subsets = {tuple(_ids(quiet_load(root, n=3, size=10, resize=10, seed=s))) for s in range(8)}
    assert len(subsets) > 1
    # n >= the number of images: all, in order
    assert _ids(quiet_load(root, n=6, size=10, resize=10)) == [0, 1, 2, 3, 4, 5]
    assert _ids(quiet_load(root, n=50, size=10, resize=10)) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ParameterError, match="n="):
        quiet_load(root, n=0, size=10)


# ============================================================================================
# load_dataset
# ============================================================================================

def test_load_dataset_unknown_name_names_accepted_values():
    with pytest.raises(ParameterError) as info:
        xd.load_dataset(dataset="mnist")
    msg = str(info.value)
    assert "mnist" in msg
    for name in ("shapes", "imagenet", "cifar10"):
        assert name in msg


@pytest.mark.parametrize("name", ["imagenet", "cifar10"])
def test_load_dataset_real_data_needs_data_root(name):
    with pytest.raises(ParameterError, match="data_root"):
        xd.load_dataset(dataset=name)


def test_load_dataset_routes_to_the_real_loaders(tmp_path):
    fake = make_cifar(tmp_path / "c", n_test=4)
    ds = xd.load_dataset(dataset="cifar10", split="val", data_root=tmp_path / "c", n=2)
    assert ds.labels.tolist() == fake["test"][1][:2] and ds.name == "cifar10/test"
    root, ann = make_flat(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        im = xd.load_dataset(dataset="imagenet", data_root=root, annotations=ann, size=56)
    assert tuple(im.images.shape) == (3, 3, 56, 56) and im.masks is not None
    assert im.labels.tolist() == [1, 0, 2]


# ============================================================================================
# torchvision models
# ============================================================================================

def _forward(model, x):
    with torch.no_grad():
        return model(x)


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()
    path = tmp_path_factory.mktemp("weights") / "random_resnet50.pth"
    torch.save(net.state_dict(), path)
    return path, net


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)  # no set_dir override
    assert Path(torch.hub.get_dir()) == home / "hub"
    return home


def test_load_model_unknown_name_names_accepted():
    with pytest.raises(ParameterError) as info:
        xm.load_model("nope")
    msg = str(info.value)
    assert "nope" in msg
    for name in ("resnet50", "vgg16", "inception_v3", "vgg_mini", "resnet_mini"):
        assert name in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_resolve_device_cuda_without_cuda_is_a_parameter_error():
    with pytest.raises(ParameterError, match="cuda"):
        xm.resolve_device("cuda")
    with pytest.raises(ParameterError, match="cuda"):
        xm.resolve_device("cuda:0")
    assert xm.resolve_device("cpu") == torch.device("cpu")
    assert xm.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ParameterError, match="device"):
        xm.resolve_device("tpu")


@pytest.mark.parametrize("name, fname", [
    ("resnet50", "resnet50-0676ba61.pth"),
    ("vgg16", "vgg16-397923af.pth"),
    ("inception_v3", "inception_v3_google-0cc3c7bd.pth"),
])
def test_missing_torchvision_weights_offline_is_a_clear_error(name, fname, empty_torch_home,
                                                             monkeypatch):
    import torchvision.models._api as tv_api
    calls = []
    monkeypatch.setattr(tv_api.WeightsEnum, "get_state_dict",
                        lambda self, *a, **k: calls.append(self.url) or {})
    with pytest.raises(MissingResourceError) as info:
        xm.load_model(name, download=False)
    assert calls == []                               # download=False: no download attempted
    msg = str(info.value)
    assert "download failed" not in msg
    expected_place = empty_torch_home / "hub" / "checkpoints" / fname
    assert fname in msg
    assert str(expected_place) in msg                # where to put it
    assert "weights=" in msg                         # or how to pass it
    assert "https://download.pytorch.org/models/" + fname in msg
    assert not expected_place.exists()               # nothing was fetched


def test_missing_weights_path_is_a_missing_resource_error(tmp_path):
    path = tmp_path / "nope" / "resnet50.pth"
    with pytest.raises(MissingResourceError) as info:
        xm.load_model("resnet50", weights=path)
    assert str(path) in str(info.value)


def test_weights_of_another_architecture_are_a_parameter_error(tmp_path):
    import torchvision
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ParameterError, match="resnet50"):
        xm.load_model("resnet50", weights=path)
    small = tmp_path / "mini.pth"
    torch.save(xm.build_benchmark_model("resnet_mini").state_dict(), small)
    with pytest.raises(ParameterError, match="architecture"):
        xm.load_model("resnet50", weights=small)


def test_resnet50_from_weights_file_matches_torchvision(resnet50_file):
    path, ref = resnet50_file
    model = xm.load_model("resnet50", weights=path, download=False)
    assert not model.training and all(not m.training for m in model.modules())
    assert all(not p.requires_grad for p in model.parameters())
    assert model.xai_name == "resnet50"
    assert tuple(model.xai_input_size) == (224, 224)
    assert model.xai_cam_layer == "net.layer4"
    layer = model.get_submodule(model.xai_cam_layer)
    assert layer is model.net.layer4
    assert len(model.xai_classes) == 1000
    assert not any(isinstance(m, torch.nn.ReLU) and m.inplace for m in model.modules())
    # the weights really were loaded
    torch.testing.assert_close(model.net.conv1.weight, ref.conv1.weight, rtol=0, atol=0)
    torch.manual_seed(1)
    x = torch.rand(2, 3, 224, 224)
    out = _forward(model, x)
    assert tuple(out.shape) == (2, 1000)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = _forward(ref, (x - mean) / std)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # normalisation is applied: the raw network on [0, 1] pixels gives other logits
    assert not torch.allclose(out, _forward(ref, x), rtol=1e-3, atol=1e-3)
    assert not torch.allclose(out[0], out[1])      # the two images differ
    # the fast path (batch norm folded by torch.fx) gives the same probabilities: the wrapper's
    # Inception check must not trace into the graph (a traced hasattr is always true)
    torch.testing.assert_close(xm.predict(model, x), torch.softmax(out, 1), rtol=0, atol=1e-5)


def test_resnet50_from_the_torch_hub_cache(resnet50_file, empty_torch_home):
    path, ref = resnet50_file
    ckpt = empty_torch_home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "resnet50-0676ba61.pth").symlink_to(path)
    model = xm.load_model("resnet50", download=False)
    assert not model.training
    torch.testing.assert_close(model.net.fc.weight, ref.fc.weight, rtol=0, atol=0)
    torch.manual_seed(2)
    x = torch.rand(1, 3, 224, 224)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(_forward(model, x), _forward(ref, (x - mean) / std),
                               rtol=1e-5, atol=1e-5)


def test_inception_v3_from_weights_file(tmp_path):
    import torchvision
    torch.manual_seed(3)
    ref = torchvision.models.inception_v3(weights=None, aux_logits=True, transform_input=True,
                                          init_weights=False).eval()
    path = tmp_path / "random_inception_v3.pth"
    torch.save(ref.state_dict(), path)
    model = xm.load_model("inception_v3", weights=path, download=False)
    assert not model.training
    assert tuple(model.xai_input_size) == (299, 299)
    layer = model.get_submodule(model.xai_cam_layer)
    assert layer is model.net.Mixed_7c
    x = torch.rand(1, 3, 299, 299)
    out = _forward(model, x)
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (1, 1000)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, _forward(ref, (x - mean) / std), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Regressions for defects found while writing these tests
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, -1])
def test_cifar10_rejects_non_positive_n(tmp_path, n):
    make_cifar(tmp_path)
    with pytest.raises(ParameterError, match=f"n={n} must be an integer >= 1"):
        xd.load_cifar10(tmp_path, n=n)


@pytest.mark.parametrize("w,h", [(300, 451), (451, 300), (500, 375), (257, 256)])
def test_imagenet_preprocessing_equals_torchvision_resize_and_centre_crop(tmp_path, w, h):
    import torchvision.transforms as T
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    save_png(tmp_path / "n01440764" / "a.png", arr)
    got = quiet_load(tmp_path, size=224, resize=256).images[0]
    want = T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()])(Image.fromarray(arr))
    torch.testing.assert_close(got, want.float() / 255)


def test_imagenet_flat_xml_without_object_is_a_clear_error(tmp_path):
    (tmp_path / "ann").mkdir()
    save_png(tmp_path / "val" / "ILSVRC2012_val_00000001.png", solid(40, 40, (1, 2, 3)))
    write_xml(tmp_path / "ann" / "ILSVRC2012_val_00000001.xml", 40, 40, [])
    with pytest.raises(ParameterError, match="has no <object>"):
        xd.load_imagenet(tmp_path / "val", tmp_path / "ann", size=32)


def test_imagenet_flat_images_without_any_matching_xml(tmp_path):
    (tmp_path / "ann").mkdir()
    save_png(tmp_path / "val" / "ILSVRC2012_val_00000001.png", solid(40, 40, (1, 2, 3)))
    with pytest.raises(MissingResourceError, match="no image under .* has an annotation file"):
        xd.load_imagenet(tmp_path / "val", tmp_path / "ann", size=32)


def test_weights_that_are_not_a_state_dict_are_a_parameter_error(tmp_path):
    (tmp_path / "garbage.pth").write_bytes(b"not a torch file")
    with pytest.raises(ParameterError, match="not a loadable state dict"):
        xm.load_model("resnet50", weights=tmp_path / "garbage.pth", download=False)
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(ParameterError, match="are a Tensor, not a state dict"):
        xm.load_model("resnet50", weights=tmp_path / "tensor.pth", download=False)


def test_shape_mismatch_message_says_what_does_not_fit(tmp_path):
    import torchvision
    torch.save(torchvision.models.resnet50(weights=None, num_classes=10).state_dict(), tmp_path / "r10.pth")
    with pytest.raises(ParameterError, match=r"do not fit its architecture: .*fc\.weight"):
        xm.load_model("resnet50", weights=tmp_path / "r10.pth", download=False)
