"""The notebooks themselves: structure, and clear errors for bad parameters under papermill."""
import json
from pathlib import Path

import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert all(c.get("outputs") is not None for c in code)
    assert any(c.get("outputs") for c in code), "committed with its outputs"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[:1]
    assert any("NBVAL_CHECK_OUTPUT" in "".join(c["source"]) for c in code), "checks a result cell"


BAD = [
    (dict(methods=["gradient", "rise_typo"]), "methods='rise_typo' is not accepted"),
    (dict(model_names=["alexnet"]), "model_names='alexnet' is not accepted"),
    (dict(image_size=48), "images are 48x48 but model 'vgg_mini' expects 64x64"),
    (dict(dataset="imagenet", data_root="/nonexistent/imagenet", model_names=["resnet50"],
          image_size=224), "ImageNet folder /nonexistent/imagenet does not exist"),
]


BAD = [("01_benchmark_and_methods", p, m) for p, m in BAD] + [
    ("02_rise", dict(n_masks={"vgg_mini": 500}), "n_masks has no entry for model 'resnet_mini'"),
    ("02_rise", dict(p_keep=1.5), "p_keep=1.5 must be a number in [0.0, 1.0]"),
    ("02_rise", dict(methods=["gradient", "occlusion", "lime"]), "must include the paper's three comparisons"),
    ("02_rise", dict(n_hard=-1), "n_hard=-1 must be an integer >= 0"),
    ("03_impact_score", dict(removal="mean", grid_removals=["zero", "blur"]), "must be a cell of the grid"),
    ("03_impact_score", dict(selection="threshold"), "selection='threshold' is not accepted"),
    ("04_adversarial_patch", dict(n_random=0), "n_random=0 must be an integer >= 1"),
]


@pytest.mark.parametrize("notebook,params,message", BAD, ids=[f"{n[:2]}-{m.split()[0]}" for n, _, m in BAD])
def test_bad_parameters_stop_with_a_clear_message(tmp_path, notebook, params, message):
    path = ROOT / "notebooks" / f"{notebook}.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(path), str(tmp_path / "out.ipynb"), parameters=params,
                            cwd=str(path.parent), kernel_name="python3", progress_bar=False)
    assert message in str(err.value)
    assert err.value.ename in ("ParameterError", "MissingResourceError")
