"""The notebooks themselves: structure, and clear errors for bad parameters under papermill."""
import json
from pathlib import Path

import papermill as pm
import pytest

from kernels import Kernels      # one kept kernel per notebook for the bad-parameter cases (tests/kernels.py)

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
    # what a reader should never see: progress-bar widgets and their state, a machine's absolute paths
    outputs = json.dumps([c.get("outputs", []) for c in code])
    assert "widget-view+json" not in outputs and "widgets" not in nb["metadata"]
    assert str(Path.home()) not in outputs and "/work/" not in outputs and "/tmp/" not in outputs
    assert "PosixPath(" not in outputs, "a stray path repr"
    assert "<td>...</td>" not in outputs and "<th>...</th>" not in outputs, "a table shown with rows or columns cut"
    assert not str(nb["metadata"].get("papermill", {}).get("input_path", "")).startswith("/")


BAD = [
    (dict(methods=["gradient", "rise_typo"]), "methods='rise_typo' is not accepted"),
    (dict(model_names=["alexnet"]), "model_names='alexnet' is not accepted"),
    (dict(image_size=48), "images are 48x48 but model 'vgg_mini' expects 64x64"),
    (dict(dataset="imagenet", data_root="/nonexistent/imagenet", model_names=["resnet50"],
          image_size=224), "ImageNet folder /nonexistent/imagenet does not exist"),
]


BAD = [("01_benchmark_and_methods", p, m) for p, m in BAD] + [
    ("02_rise", dict(n_masks={"vgg_mini": 500}), "n_masks has no entry for model 'resnet_mini'"),
    ("02_rise", dict(p_keep=1.5), "p_keep=1.5 must be a number in [0, 1]"),
    ("02_rise", dict(methods=["gradient", "occlusion", "lime"], hard_methods=["occlusion"]),
     "must include the paper's three comparisons"),
    ("02_rise", dict(n_hard=-1), "n_hard=-1 must be an integer >= 0"),
    ("02_rise", dict(image_size=65), "images are 65x65 but model 'vgg_mini' expects 64x64"),
    ("03_impact_score", dict(image_size=65), "images are 65x65 but model 'vgg_mini' expects 64x64"),
    ("03_impact_score", dict(removal="mean", grid_removals=["zero", "blur"]), "must be a cell of the grid"),
    ("03_impact_score", dict(selection="threshold"), "selection='threshold' is not accepted"),
    ("03_impact_score", dict(method_params={"lime": {"num_sample": 10}}),
     "unknown parameter(s) for method 'lime' in method_params: num_sample"),
    ("05_neuromask", dict(setting="text"), "setting='text' is not accepted; choose one of: 'authors', 'paper'"),
    ("05_neuromask", dict(panel=["neuromask", "gradient"]), "leave neuromask out"),
    ("05_neuromask", dict(iterations=0), "iterations=0 must be an integer >= 1"),
    ("06_sanity_checks", dict(mode="zeros"), "mode='zeros' is not accepted"),
    ("07_localisation", dict(cam_threshold=0.205), "threshold=0.205 is not on the grid"),
    ("07_localisation", dict(n_heldout=0), "n_heldout=0 must be an integer >= 1"),
    ("08_trustworthiness", dict(bam_models=["vgg_mini_bam_object"]), "bam_models must name two networks"),
    ("08_trustworthiness", dict(trojans={"vgg_mini_trojan_fixed": "corner"}), "trojans['vgg_mini_trojan_fixed']='corner' is not accepted"),
    ("08_trustworthiness", dict(perturbations=["salt"]), "perturbations='salt' is not accepted"),
    ("09_faithfulness", dict(operators=["zero", "noise"]), "operators='noise' is not accepted"),
    ("09_faithfulness", dict(methods=["gradient", "constant"]), "methods must include 'random'"),
    ("09_faithfulness", dict(hyper_images=50), "hyper_images must not exceed n_images"),
    ("10_leaderboard", dict(methods=["gradient", "constant"]), "methods must include 'random'"),
    ("10_leaderboard", dict(n_truth=1), "n_truth=1 must be an integer >= 2"),
    ("10_leaderboard", dict(sensitivity_methods=["gradient", "gradcm"]), "sensitivity_methods='gradcm' is not accepted"),
    ("10_leaderboard", dict(scheduler="laptop"), "scheduler='laptop' is not accepted"),
    ("08_trustworthiness", dict(weights={"vgg_mini": "/nonexistent/vgg.pt"}),
     "weights['vgg_mini']: /nonexistent/vgg.pt does not exist"),      # before its BAM and trojan sections
    ("11_model_interpretability", dict(quantile=0.7), "quantile=0.7 must be a number in (0, 0.5]"),
    ("11_model_interpretability", dict(task_pair=["vgg_mini_bam_object"]), "task_pair must name two networks"),
    ("11_model_interpretability", dict(committee=["vgg_mini", "resnet_mini", "vgg16"]), "committee='vgg16' is not accepted"),
    ("11_model_interpretability", dict(real_model="inception_v3"), "real_model='inception_v3' is not accepted"),
    ("06_sanity_checks", dict(tests=["independent"]), "tests must include 'cascading'"),
    ("06_sanity_checks", dict(measure="ssim", measures=["spearman_abs"]), "must be one of measures"),
    ("06_sanity_checks", dict(alternatives=["reset/zero"]), "alternatives='reset/zero' is not accepted"),
    ("04_adversarial_patch", dict(n_random=0), "n_random=0 must be an integer >= 1"),
    ("04_adversarial_patch", dict(tau=2, scales=[0.3, 1.5]),
     "scales=1.5 must be a number in (0, 1]; tau=2 must be a number in [0, 1]"),   # every mistake at once
]


@pytest.fixture(scope="module")
def kernels():
    k = Kernels()
    yield k
    k.close()


@pytest.mark.parametrize("notebook,params,message", BAD, ids=[f"{n[:2]}-{m.split()[0]}" for n, _, m in BAD])
def test_bad_parameters_stop_with_a_clear_message(kernels, notebook, params, message):
    failed, code = kernels.run(notebook, params)
    assert failed is not None, "the run went through"
    index, ename, evalue = failed
    assert message in evalue, evalue
    assert ename in ("ParameterError", "MissingResourceError")
    if ename == "ParameterError":       # caught by the validation cell, before any work
        tags = [c.metadata.get("tags", []) for c in code]
        first = next(i for i, t in enumerate(tags) if "injected-parameters" not in t and "parameters" not in t)
        assert index == first, "a bad parameter must stop the first cell after the parameters"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_an_undeclared_parameter_stops_the_run_before_any_work(tmp_path, path, monkeypatch, kernels):
    """A misspelled -p name used to run the whole chapter at its defaults; now the first cell
    after papermill's injected one stops, names the closest declared parameter, and nothing is
    written to the results cache or under results/. Chapter 01 runs under papermill itself (its
    error as papermill reports it); the others in the shared kernels, as papermill would run them."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XAILIB_CACHE", str(cache))
    before = sorted(p.relative_to(ROOT) for p in (ROOT / "results").rglob("*") if p.is_file())
    stamp = {p: p.stat().st_mtime_ns for p in (ROOT / "results").rglob("*") if p.is_file()}
    if path.stem == "01_benchmark_and_methods":
        with pytest.raises(pm.PapermillExecutionError) as err:
            pm.execute_notebook(str(path), str(tmp_path / "out.ipynb"), parameters={"n_imgs": 4},
                                cwd=str(path.parent), kernel_name="python3", progress_bar=False)
        ename, evalue = err.value.ename, err.value.evalue
        out = json.loads((tmp_path / "out.ipynb").read_text())
        cells = [c for c in out["cells"] if c["cell_type"] == "code"]
        failed = next(i for i, c in enumerate(cells) if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
        tags = [c["metadata"].get("tags", []) for c in cells]
    else:
        (failed, ename, evalue), cells = kernels.run(path.stem, {"n_imgs": 4}, env={"XAILIB_CACHE": str(cache)})
        tags = [c.metadata.get("tags", []) for c in cells]
    assert ename == "ParameterError"
    assert "unknown parameter 'n_imgs'" in evalue
    close = "n_images" if "n_images" in pm.inspect_notebook(str(path)) else None
    if close:
        assert f"did you mean {close!r}" in evalue
    injected = next(i for i, t in enumerate(tags) if "injected-parameters" in t)
    assert failed == injected + 1, "the first code cell after the injected one must stop the run"
    assert not (cache / "results").exists()
    after = sorted(p.relative_to(ROOT) for p in (ROOT / "results").rglob("*") if p.is_file())
    assert after == before and all(p.stat().st_mtime_ns == t for p, t in stamp.items())


def test_the_runner_prints_the_one_sentence_that_matters(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "scripts/run_notebooks.py", "--only", "03_impact_score", "-p", "n_imgs", "4"],
                       cwd=ROOT, capture_output=True, text=True, env={**__import__("os").environ,
                                                                      "XAILIB_CACHE": str(tmp_path)})
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()
    assert any(line.startswith("03_impact_score: cell ") and "ParameterError: unknown parameter 'n_imgs'" in line
               for line in last), r.stderr
    assert "Traceback" not in r.stderr
    refused = subprocess.run([sys.executable, "scripts/run_notebooks.py", "--publish", "-p", "n_images", "4"],
                             cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode != 0 and "never published" in refused.stderr
    # two at a time (the build's way): the first failure stops the run with the same one line
    two = subprocess.run([sys.executable, "scripts/run_notebooks.py", "--jobs", "2", "--only", "03_impact_score",
                          "04_adversarial_patch", "-p", "n_imgs", "4"], cwd=ROOT, capture_output=True, text=True,
                         env={**__import__("os").environ, "XAILIB_CACHE": str(tmp_path)})
    assert two.returncode != 0 and "2 at a time" in two.stdout
    assert any(line.startswith(("03_impact_score: cell ", "04_adversarial_patch: cell "))
               and "unknown parameter 'n_imgs'" in line for line in two.stderr.strip().splitlines()), two.stderr
    assert "Traceback" not in two.stderr


@pytest.mark.parametrize("notebook", ["02_rise", "03_impact_score", "04_adversarial_patch", "05_neuromask",
                                      "06_sanity_checks", "07_localisation", "08_trustworthiness",
                                      "09_faithfulness", "10_leaderboard"])
def test_every_committed_verdict_names_its_rule_n_and_an_interval_of_some_width(notebook):
    """The issue's 'must show': every verdict a chapter states names its rule, n and interval, and
    no interval collapses to a point (0 / 1 outcomes get exact intervals, not a bootstrap)."""
    import csv
    import re
    from xailib import verdicts
    tables = [p for p in (ROOT / "results" / notebook).glob("*verdicts.csv")]
    assert tables, "the chapter publishes its verdicts"
    for path in tables:
        rows = list(csv.DictReader(path.open()))
        assert rows, path
        for r in rows:
            assert r["verdict"] in (verdicts.HOLDS, verdicts.FAILS, verdicts.OPEN, verdicts.UNJUDGED), r
            assert r["rule"] and r["n"], r
            low, high = re.search(r"\[([^,]+), ([^\]]+)\]", r["difference [95 % CI]"]).groups()
            if "the interval is that point" in r["rule"]:
                continue          # a continuous score with no spread at all, said in its rule
            assert low.strip() != high.strip(), (path.name, r["claim"], r["model"], r["difference [95 % CI]"])


def test_a_kernel_that_lost_a_port_race_is_started_again_and_nothing_else_is():
    """tests/conftest.py: a kernel start-up that died on a taken port is retried (up to three
    times); any other error, and a failed cell, goes through at once."""
    from conftest import ATTEMPTS, _retried
    calls = []

    def flaky(fails, error):
        def start():
            calls.append(1)
            if len(calls) <= fails:
                raise error
            return "kernel"
        return _retried(start)

    died = RuntimeError("Kernel died before replying to kernel_info")
    assert flaky(ATTEMPTS - 1, died)() == "kernel" and len(calls) == ATTEMPTS
    calls.clear()
    with pytest.raises(RuntimeError, match="Kernel died"):
        flaky(ATTEMPTS, died)()
    assert len(calls) == ATTEMPTS
    calls.clear()
    with pytest.raises(RuntimeError, match="something else"):
        flaky(1, RuntimeError("something else"))()
    assert len(calls) == 1
    calls.clear()
    cell = pm.PapermillExecutionError(0, 1, "x = 1", "ZMQError", "Address already in use", [])
    with pytest.raises(pm.PapermillExecutionError):
        flaky(1, cell)()
    assert len(calls) == 1
    assert getattr(pm.execute_notebook, "retries_kernel_start", False)
