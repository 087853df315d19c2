"""The ImageNet path on real weights, end to end (issue 32): the photographs written as a flat
ILSVRC2012-style validation folder (JPEG files, one bounding-box XML per image, the synset list
beside them), read back by ``data.load_imagenet`` (resize to 256, centre crop 224) and named by
EfficientNet-Lite0; then chapter 01 and chapter 10 (six of its columns, the pointing game among
them) run on that folder with ``dataset="imagenet"``. Until now the real path was tested on random weights only.

The wnids are the project's stand-ins (``n%08d`` of the class index: the real list cannot be
downloaded here); the synset file gives them ImageNet's class order, as the real
``LOC_synset_mapping.txt`` does."""
import json
from pathlib import Path

import numpy as np
import pytest

from kernels import Kernels
from xailib import data, models

ROOT = Path(__file__).resolve().parent.parent
CATS = set(range(281, 286))        # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _xml(name, wnid, w, h, box):
    x0, y0, x1, y1 = box
    return (f"<annotation><filename>{name}</filename><size><width>{w}</width><height>{h}</height>"
            f"<depth>3</depth></size><object><name>{wnid}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1 - 1}</xmax><ymax>{y1 - 1}</ymax></bndbox></object></annotation>")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """val/ILSVRC2012_val_0000000k.JPEG, bbox/<same>.xml, val/LOC_synset_mapping.txt."""
    from PIL import Image
    root = tmp_path_factory.mktemp("ilsvrc")
    val, bbox = root / "val", root / "bbox"
    val.mkdir(), bbox.mkdir()
    (val / data.SYNSET_FILE).write_text("".join(f"n{i:08d} class {i}\n" for i in range(1000)))
    names = []
    for k, r in enumerate(json.loads(data.PHOTOS.read_text())["photos"], start=1):
        img = np.array(data._photo(r["source"])[..., :3])
        if img.dtype != np.uint8:                          # matplotlib's JPEG reads as uint8; a PNG as float
            img = (img * 255).round().astype(np.uint8)
        name = f"ILSVRC2012_val_{k:08d}"
        Image.fromarray(img).save(val / f"{name}.JPEG", quality=95)
        h, w = img.shape[:2]
        (bbox / f"{name}.xml").write_text(_xml(f"{name}.JPEG", f"n{r['label']:08d}", w, h, r["box"]))
        names.append(r["name"])
    return val, bbox, names


@pytest.fixture(scope="module")
def read_back(folder):
    """The folder read back by the loader, and EfficientNet-Lite0's top-1 class on it."""
    val, bbox, _ = folder
    ps = data.load_dataset("imagenet", data_root=val, annotations=bbox, size=224)
    return ps, models.predict(models.load_model("efficientnet_lite0"), ps.images).argmax(1)


def test_the_folder_reads_back_and_the_network_names_the_photographs(folder, read_back):
    _, _, names = folder
    ps, top1 = read_back
    assert len(ps) == 8 and ps.images.shape == (8, 3, 224, 224)
    assert ps.labels.tolist() == [json.loads(data.PHOTOS.read_text())["photos"][i]["label"] for i in range(8)]
    assert all(len(b) == 1 for b in ps.boxes) and ps.masks.flatten(1).any(1).all()
    assert int(top1[names.index("chelsea")]) in CATS
    assert int(top1[names.index("coffee")]) == 967          # espresso


@pytest.fixture(scope="module")
def kernels():
    k = Kernels()
    yield k
    k.close()


RUNS = {
    "01_benchmark_and_methods": dict(n_eval=8, n_explain=2, n_show=1, methods=["gradient", "gradcam", "random"],
                                     n_masks=50),
    # six columns of four kinds (no model; the model on a map; the method re-run; the randomised
    # network): at 224 px all 36 take Lite0 about 7 min on 2 cores, 3.5 of them monotonicity correlation's
    "10_leaderboard": dict(n_images=3, n_truth=2, methods=["gradient", "gradcam", "random"], n_steps=4,
                           sensitivity_methods=["gradient", "random"], sensitivity_samples=2, n_bootstrap=200,
                           columns=["pointing game", "mask energy", "deletion", "insertion", "max-sensitivity",
                                    "randomisation similarity"]),
}


@pytest.mark.parametrize("notebook", sorted(RUNS))
def test_chapters_run_on_the_folder_with_the_real_network(notebook, folder, read_back, kernels, tmp_path):
    val, bbox, _ = folder
    parameters = {**RUNS[notebook], "dataset": "imagenet", "data_root": str(val), "annotations": str(bbox),
                  "image_size": 224, "model_names": ["efficientnet_lite0"]}
    kernels.run_or_fail(notebook, parameters, tmp_path, kernel="imagenet")
    tables = {p.stem: p for p in tmp_path.glob(f"results/{notebook}/*/tables/*.csv")}
    import pandas as pd
    if notebook == "01_benchmark_and_methods":
        acc = pd.read_csv(tables["model_accuracy"]).set_index("model")
        # top-1 the annotated class on the centre crops, as the loader-level fixture finds it
        ps, top1 = read_back
        right = top1 == ps.labels
        assert acc.loc["efficientnet_lite0", "accuracy"] == pytest.approx(right.float().mean().item())
    else:
        per_image = pd.read_csv(tables["per_image"])
        assert set(per_image.column) == set(RUNS[notebook]["columns"])      # those asked for, and only those
        assert set(pd.read_csv(tables["validity"]).column) == set(RUNS[notebook]["columns"])
        pointing = per_image[(per_image.column == "pointing game") & (per_image.images == "benchmark")]
        asked = pointing[pointing.method.isin(RUNS[notebook]["methods"])]
        assert asked.groupby("method").size().to_dict() == {"gradcam": 3, "gradient": 3, "random": 3}
        assert set(pointing.score) <= {0.0, 1.0}
        # the object's box, drawn by the project and read back from its XML, is its own best pointer
        assert pointing[pointing.method == "object mask"].score.tolist() == [1.0, 1.0, 1.0]
