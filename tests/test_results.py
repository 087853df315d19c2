"""The results store: resumes after an interruption, keys by parameters, publishes tables."""
import json

import pandas as pd
import pytest
import torch

from xailib import results
from xailib.results import ResultStore


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_and_loses_nothing(tmp_path):
    calls = []

    def fn(sl, fail_at=None):
        if sl.start == fail_at:
            raise Interrupt
        calls.append(sl.start)
        return torch.arange(sl.start, sl.stop, dtype=torch.float32) * 2

    store = ResultStore("nb", {"a": 1}, root=tmp_path, publish=False, verbose=False)
    with pytest.raises(Interrupt):
        store.batches("maps", 10, 3, lambda sl: fn(sl, fail_at=6), progress=False)
    assert calls == [0, 3]
    again = ResultStore("nb", {"a": 1}, root=tmp_path, publish=False, verbose=False)
    out = again.batches("maps", 10, 3, fn, progress=False)
    assert calls == [0, 3, 6, 9]              # only the missing batches were computed
    torch.testing.assert_close(out, torch.arange(10, dtype=torch.float32) * 2)
    assert again.seconds("maps") >= 0
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic writes leave no partial files


def test_results_are_keyed_by_parameters(tmp_path):
    a = ResultStore("nb", {"n": 1, "m": [1, 2]}, root=tmp_path, publish=False, verbose=False)
    b = ResultStore("nb", {"m": [1, 2], "n": 1}, root=tmp_path, publish=False, verbose=False)
    c = ResultStore("nb", {"n": 2, "m": [1, 2]}, root=tmp_path, publish=False, verbose=False)
    assert a.dir == b.dir != c.dir
    assert json.loads((c.dir / "params.json").read_text()) == {"n": 2, "m": [1, 2]}


def test_only_an_explicit_publish_writes_the_committed_tables(tmp_path, monkeypatch):
    monkeypatch.delenv("XAILIB_PUBLISH", raising=False)
    monkeypatch.delenv("XAILIB_LARGER_RUN", raising=False)
    table = pd.DataFrame({"acc": [0.5, 0.25]}, index=["x", "y"])
    pub = tmp_path / "results"
    first = ResultStore("nb", {"n": 1}, root=tmp_path / "cache", publish=True, publish_root=pub, verbose=False)
    first.save_table("t", table)
    assert (pub / "nb" / "t.csv").read_text() == ",acc\nx,0.5\ny,0.25\n"
    # a run with the published parameters (a default run, a device-only run) publishes nothing,
    # and nor does any other run: only XAILIB_PUBLISH=1 (the book's build) does
    for params in ({"n": 1}, {"n": 2}):
        run = ResultStore("nb", params, root=tmp_path / "cache", publish_root=pub, verbose=False)
        assert not run.publish
        run.save_table("t", table * 2)
        assert (pub / "nb" / "t.csv").read_text() == ",acc\nx,0.5\ny,0.25\n"
        assert (run.dir / "tables" / "t.csv").read_text() == ",acc\nx,1\ny,0.5\n"
    monkeypatch.setenv("XAILIB_PUBLISH", "1")
    assert ResultStore("nb", {"n": 3}, root=tmp_path / "cache", publish_root=pub, verbose=False).publish
    monkeypatch.setenv("XAILIB_PUBLISH", "0")
    assert not ResultStore("nb", {"n": 1}, root=tmp_path / "cache", publish_root=pub, verbose=False).publish
    monkeypatch.delenv("XAILIB_PUBLISH")
    monkeypatch.setenv("XAILIB_LARGER_RUN", "1")            # a larger run: its own folder only
    larger = ResultStore("nb", {"n": 4}, root=tmp_path / "cache", publish_root=pub, verbose=False)
    larger.save_table("t", table)
    assert larger.publish and (pub / "nb" / "larger_run" / "t.csv").exists()
    assert (pub / "nb" / "t.csv").read_text() == ",acc\nx,0.5\ny,0.25\n"
    monkeypatch.setenv("XAILIB_LARGER_RUN", "real")         # the run on the real network: its own folder
    real = ResultStore("nb", {"n": 5}, root=tmp_path / "cache", publish_root=pub, verbose=False)
    real.save_table("t", table * 3)
    assert (pub / "nb" / "real_network" / "t.csv").read_text() == ",acc\nx,1.5\ny,0.75\n"
    assert (pub / "nb" / "larger_run" / "t.csv").read_text() == ",acc\nx,0.5\ny,0.25\n"
    params, run, tables = results.real_network("nb", root=pub)
    assert params == {"n": 5} and run == {} and set(tables) == {"t"}
    assert results.real_network("other", root=pub) is None


def test_a_change_of_code_gets_a_fresh_store(tmp_path, monkeypatch):
    import xailib.results as r
    a = ResultStore("nb", {"n": 1}, root=tmp_path, publish=False, verbose=False)
    monkeypatch.setattr(r, "code_version", lambda: "other-code")
    b = ResultStore("nb", {"n": 1}, root=tmp_path, publish=False, verbose=False)
    assert a.dir != b.dir


def test_a_truncated_cache_file_is_named_and_recomputed(tmp_path):
    calls = []

    def fn(sl):
        calls.append(sl.start)
        return torch.arange(sl.start, sl.stop, dtype=torch.float32)

    store = ResultStore("nb", {"a": 1}, root=tmp_path, publish=False, verbose=False)
    store.batches("maps", 6, 3, fn, progress=False)
    path = store.dir / "maps" / "000003-000006.pt"
    path.write_bytes(path.read_bytes()[:20])          # a kill in mid-write of a non-atomic copy
    with pytest.warns(UserWarning, match="000003-000006.pt could not be read"):
        out = store.batches("maps", 6, 3, fn, progress=False)
    assert calls == [0, 3, 3]                          # only the corrupt batch again
    torch.testing.assert_close(out, torch.arange(6, dtype=torch.float32))


def _cell(source: str, name: str, calls=None):
    """A function defined by a 'notebook cell': IPython keeps cell sources in linecache."""
    import linecache
    filename = f"/tmp/ipykernel_0/{name}.py"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    scope = {"torch": torch, "calls": calls if calls is not None else []}
    exec(compile(source, filename, "exec"), scope)
    return scope["fn"]


def test_editing_the_computing_cell_invalidates_its_batches(tmp_path):
    store = ResultStore("nb", {"a": 1}, root=tmp_path, publish=False, verbose=False)
    calls = []
    body = "def fn(sl):\n    calls.append(sl.start)\n    return {} * torch.ones(sl.stop - sl.start)\n"
    v1 = _cell(body.format(1), "cell_a", calls)
    torch.testing.assert_close(store.batches("maps", 4, 2, v1, progress=False), torch.ones(4))
    assert calls == [0, 2]
    rerun = _cell(body.format(1), "cell_b", calls)             # the same cell run again: loaded
    torch.testing.assert_close(store.batches("maps", 4, 2, rerun, progress=False), torch.ones(4))
    assert calls == [0, 2]
    edited = _cell(body.format(2), "cell_c", calls)            # the computation edited: recomputed
    torch.testing.assert_close(store.batches("maps", 4, 2, edited, progress=False), 2 * torch.ones(4))
    assert calls == [0, 2, 0, 2]


def test_a_larger_run_speaks_only_for_the_default_run(tmp_path):
    """A chapter re-run on one network showed the committed larger run's two networks and 20
    methods as its own; the larger run is now read only by the run it was made beside."""
    import json

    from xailib import results
    (tmp_path / "nb" / "larger_run").mkdir(parents=True)
    (tmp_path / "nb" / "params.json").write_text(json.dumps({"model_names": ["a", "b"], "n": 4}))
    (tmp_path / "nb" / "larger_run" / "params.json").write_text(json.dumps({"model_names": ["a", "b"], "n": 20}))
    (tmp_path / "nb" / "larger_run" / "per_image.csv").write_text("x\n1\n")
    default = {"model_names": ("a", "b"), "n": 4}          # a tuple reads as the committed list
    assert results.larger_run("nb", root=tmp_path, this_run=default)[2].keys() == {"per_image"}
    assert results.larger_run("nb", root=tmp_path) is not None            # (the scripts that replay it)
    mine = {"model_names": ["a"], "n": 4}
    assert results.larger_run("nb", root=tmp_path, this_run=mine) is None
    assert results.differs_from_default("nb", mine, root=tmp_path) == ["model_names"]
    note = results.larger_run_note("nb", mine, root=tmp_path)
    assert note.startswith("Tables and verdicts from this run") and "model_names" in note
    assert results.larger_run_note("nb", default, root=tmp_path).startswith("This is the book's default run")
    assert results.larger_run_note("other", mine, root=tmp_path).startswith("No larger run committed")


def test_a_larger_run_made_under_the_old_tie_rule_says_so(tmp_path):
    import json

    from xailib import results
    for nb in ("02_rise", "06_sanity_checks"):
        (tmp_path / nb / "larger_run").mkdir(parents=True)
        (tmp_path / nb / "params.json").write_text(json.dumps({"n": 4}))
        (tmp_path / nb / "larger_run" / "params.json").write_text(json.dumps({"n": 20}))
        (tmp_path / nb / "larger_run" / "run.json").write_text(json.dumps({"seconds": 1.0}))
    stale = results.larger_run_note("02_rise", {"n": 4}, root=tmp_path)
    assert "before ties in a map were broken at random" in stale
    # a chapter that ranks no pixels is not affected by the rule
    assert "ties" not in results.larger_run_note("06_sanity_checks", {"n": 4}, root=tmp_path)
    (tmp_path / "02_rise" / "larger_run" / "run.json").write_text(json.dumps({"seconds": 1.0, "ties": "random"}))
    assert "ties" not in results.larger_run_note("02_rise", {"n": 4}, root=tmp_path)
    assert results.larger_run_caveat("02_rise", root=tmp_path) == ""
    (tmp_path / "02_rise" / "larger_run" / "run.json").write_text(json.dumps({"seconds": 1.0}))
    assert results.larger_run_caveat("02_rise", root=tmp_path).startswith("That larger run was made before ties")
    assert results.tie_rule_of({}) == "index" and results.tie_rule_of({"ties": "random"}) == "random"


def test_a_publishing_run_records_its_parameters_before_any_cell_reads_them(tmp_path):
    """A chapter whose defaults had changed did not read its larger run on its first publish: the
    committed params.json was still the old one when the chapter asked whether it is the default run."""
    import json

    from xailib import results
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "params.json").write_text(json.dumps({"methods": ["a"]}))
    results.ResultStore("nb", {"methods": ["a", "b"]}, root=tmp_path / "cache", publish=True,
                        publish_root=tmp_path, verbose=False)
    assert json.loads((tmp_path / "nb" / "params.json").read_text()) == {"methods": ["a", "b"]}
    assert results.differs_from_default("nb", {"methods": ["a", "b"]}, root=tmp_path) == []


def test_larger_run_summary_names_what_the_verdicts_were_read_from():
    from xailib import results
    params = {"n_images": 200, "n_masks": {"vgg_mini": 4000, "resnet_mini": 8000}, "rise_seeds": [0, 1, 2],
              "seed_images": None, "pixel_masks": True}
    run = {"command": "python scripts/larger_run.py 02_rise", "seconds": 4392.7}
    line = results.larger_run_summary(params, run, {
        "n_images": "{} images", "n_masks": "N = {}", "rise_seeds": "seeds {}",
        "seed_images": "extra seeds on {} images", "pixel_masks": "per-pixel: {}", "n_hard": "{} hard"})
    assert line == ("verdicts from the larger run: 200 images; N = vgg_mini 4000, resnet_mini 8000; seeds 0, 1, 2; "
                    "per-pixel: yes; made by `python scripts/larger_run.py 02_rise` in 73 min")
    # a parameter set in the run is named; one absent or None is not
    assert "extra seeds on 50 images" in results.larger_run_summary({**params, "seed_images": 50}, run,
                                                                    {"seed_images": "extra seeds on {} images"})


def test_a_store_in_a_cache_outside_the_repository_shows_no_absolute_path(tmp_path, monkeypatch, capsys):
    """A run whose $XAILIB_CACHE lies outside the repository and the home folder (a scratch disk)
    prints its store as $XAILIB_CACHE/...: a published notebook must not carry a machine's path."""
    cache = tmp_path / "scratch"
    monkeypatch.setenv("XAILIB_CACHE", str(cache))
    monkeypatch.setattr(results.Path, "home", classmethod(lambda cls: tmp_path / "nobody"))
    results.ResultStore("nb", {"n": 1}, root=cache / "results", publish=False)
    shown = capsys.readouterr().out
    assert "results: $XAILIB_CACHE/results/nb/" in shown and str(tmp_path) not in shown
