"""The results store: per-image results and tables, keyed by an experiment's parameters.

``ResultStore(notebook, params)`` owns ``<cache>/results/<notebook>/<hash>/``, the hash being
of the parameters, of xailib's source code (so a change of code never reuses stale results) and of
the kernels in force (:func:`xailib.determinism.kernel_key`).
Long computations go through :meth:`ResultStore.batches`, which saves every finished batch
with an atomic write (temporary file, then rename), so an interrupted run resumes at the first
missing batch and loses nothing. Tables go through :meth:`ResultStore.save_table`: always into
the store, and for the published run also into ``results/<notebook>/`` in the repository, where
they are committed so that runs can be diffed. Publishing is explicit and nothing else
writes under ``results/``: the book's build publishes its default runs
(``scripts/run_notebooks.py --publish``, which ``scripts/build_book.sh`` calls, sets
``XAILIB_PUBLISH=1``), and a chapter's larger run is published by its script alone
(``scripts/larger_run.py`` sets ``XAILIB_LARGER_RUN=1``) into ``results/<notebook>/larger_run/``,
which :func:`larger_run` reads back, and its run on the real network by the same script
(``--real``: ``XAILIB_LARGER_RUN=real``) into ``results/<notebook>/real_network/``, which
:func:`real_network` reads back. Any other run, with the default parameters or not, writes
only to the cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch

from . import determinism
from .data import cache_dir

REAL_NETWORK = "real_network"   # the folder of a chapter's run on the real network (scripts/larger_run.py --real)

REPO = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """Hash of xailib's source, subpackages included: results computed by other code are not reused."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()[:12]


def _canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _shown(path: Path) -> str:
    """``path`` relative to the repository, the cache folder named by ``$XAILIB_CACHE`` or the
    home folder when it lies inside them: no machine's absolute path in a published output."""
    cache = os.environ.get("XAILIB_CACHE")
    bases = [(REPO, ".")] + ([(Path(cache), "$XAILIB_CACHE")] if cache else []) + [(Path.home(), "~")]
    for base, label in bases:
        try:
            return f"{label}/{path.resolve().relative_to(base.resolve())}"
        except ValueError:
            pass
    return str(path)


def code_key(fn) -> str:
    """A hash of the code that computes a batch: the whole source file (or notebook cell: IPython
    keeps each cell's source in ``linecache``) that defines ``fn``, so that editing a notebook's
    computing cell does not reuse batches computed by its earlier version. Empty for callables
    without Python source."""
    import linecache
    code = getattr(fn, "__code__", None)
    if code is None:
        return ""
    text = "".join(linecache.getlines(code.co_filename)) or code.co_code.hex()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _invalidate_if_code_changed(folder: Path, key: str) -> None:
    """Drop a folder's cached batches when the code that computed them has changed."""
    stamp = folder / "code.txt"
    if stamp.exists() and stamp.read_text().strip() != key:
        for old in folder.glob("*.pt"):
            old.unlink()
    if not stamp.exists() or stamp.read_text().strip() != key:
        atomic_write_text(stamp, key + "\n")


class ResultStore:
    def __init__(self, notebook: str, params: dict, root: Path | None = None,
                 publish: bool | None = None, publish_root: Path | None = None,
                 verbose: bool = True):
        self.notebook, self.params = notebook, dict(params)
        # results made under other kernels round otherwise (xailib.determinism): not reused either
        keyed = {**self.params, "_xailib": code_version(), "_kernels": determinism.kernel_key()}
        self.key = hashlib.sha256(_canonical(keyed).encode()).hexdigest()[:12]
        self.dir = Path(root or cache_dir() / "results") / notebook / self.key
        self.publish_dir = Path(publish_root or REPO / "results") / notebook
        atomic_write_text(self.dir / "params.json", _canonical(self.params) + "\n")
        run = os.environ.get("XAILIB_LARGER_RUN")
        if publish is None and run in ("1", "real"):   # scripts/larger_run.py [--real]
            self.publish_dir, publish = self.publish_dir / ("larger_run" if run == "1" else REAL_NETWORK), True
        if publish is None:  # only the book's build (XAILIB_PUBLISH=1) publishes
            publish = os.environ.get("XAILIB_PUBLISH") == "1"
        self.publish = publish
        if publish:   # before any cell asks whether this run is the default one (results.larger_run)
            self._write_params()
        if verbose:   # relative paths: no machine's absolute cache path in a committed output
            sub = self.publish_dir.name if self.publish_dir.name in ("larger_run", REAL_NETWORK) else ""
            where = "published to results/" + self.notebook + ("/" + sub if sub else "") \
                if publish else "cache only; only the book's build publishes to results/"
            print(f"results: {_shown(self.dir)}  [{where}]")

    # -- per-image results, saved batch by batch ------------------------------------------------
    def batches(self, name: str, n: int, batch_size: int, fn: Callable[[slice], torch.Tensor],
                progress: bool = True) -> torch.Tensor:
        """``torch.cat([fn(slice) for each batch of range(n)])``, every batch saved as it finishes.

        Batches already on disk are loaded, not recomputed, unless the code that computes them
        (:func:`code_key` of ``fn``) has changed since, or the file is unreadable (truncated by a
        kill): then they are computed again. The seconds each batch took are kept beside it;
        :meth:`seconds` adds them up.
        """
        folder = self.dir / name
        _invalidate_if_code_changed(folder, code_key(fn))
        starts = list(range(0, n, batch_size))
        it = starts
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(starts, desc=name, leave=False)
        parts = []
        for i in it:
            path = folder / f"{i:06d}-{min(i + batch_size, n):06d}.pt"
            if path.exists():
                try:
                    parts.append(torch.load(path, weights_only=True)["value"])
                    continue
                except Exception as e:        # truncated or corrupt: a corrupt batch is a missing batch
                    import warnings
                    warnings.warn(f"cached batch {_shown(path)} could not be read ({type(e).__name__}); "
                                  "recomputing it", stacklevel=2)
                    path.unlink(missing_ok=True)
            t0 = time.perf_counter()
            value = fn(slice(i, min(i + batch_size, n)))
            atomic_torch_save({"value": value.cpu(), "seconds": time.perf_counter() - t0}, path)
            parts.append(value.cpu())
        return torch.cat(parts)

    def batch_seconds(self, name: str) -> list[float]:
        """The seconds of each batch saved under ``name``, in order (per image when batches hold one)."""
        return [torch.load(p, weights_only=True)["seconds"] for p in sorted((self.dir / name).glob("*.pt"))]

    def seconds(self, name: str) -> float:
        """Total compute time of the batches saved under ``name`` (the first run's, if resumed)."""
        return sum(self.batch_seconds(name))

    # -- tables -----------------------------------------------------------------------------------
    def save_table(self, name: str, table, float_format: str = "%.6g") -> None:
        """Write a pandas DataFrame as ``<name>.csv`` (into the store, and into ``results/`` when
        publishing). Returns nothing, so a chapter cell that ends with it shows no stray path."""
        text = table.to_csv(float_format=float_format)
        path = self.dir / "tables" / f"{name}.csv"
        atomic_write_text(path, text)
        if self.publish:
            atomic_write_text(self.publish_dir / f"{name}.csv", text)
            self._write_params()

    def _write_params(self) -> None:
        atomic_write_text(self.publish_dir / "params.json",
                          json.dumps(json.loads(_canonical(self.params)), indent=1, sort_keys=True) + "\n")


def larger_run(notebook: str, root: Path | None = None, part: str | None = None, this_run: dict | None = None):
    """The committed larger run of a chapter: ``(params, run record, {table name: path})``, or None
    when the chapter has none. ``run`` holds the script's command and wall time. ``part`` names a
    sub-folder of it (``"other_cpu"``: the same run made on another processor, kept to measure
    how far the machine moves its numbers).

    ``this_run``: the parameters of the run that asks (its store's). A larger run speaks only for
    the book's own default run (the same data set, networks and parameters it was made beside,
    ``results/<notebook>/params.json``); for any other run this returns None, so that the run shows
    its own tables and verdicts. :func:`larger_run_note` says which of the two a run reads."""
    folder = Path(root or REPO / "results") / notebook / "larger_run" / (part or "")
    if not (folder / "params.json").exists():
        return None
    if this_run is not None and differs_from_default(notebook, this_run, root):
        return None
    params = json.loads((folder / "params.json").read_text())
    run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").exists() else {}
    return params, run, {p.stem: p for p in sorted(folder.glob("*.csv"))}


def real_network(notebook: str, root: Path | None = None):
    """The chapter's committed run on the real ImageNet network and the photographs
    (``results/<notebook>/real_network/``, made by ``scripts/larger_run.py --real``):
    ``(params, run record, {table name: path})``, or None when there is none."""
    folder = Path(root or REPO / "results") / notebook / REAL_NETWORK
    if not (folder / "params.json").exists():
        return None
    run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").exists() else {}
    return json.loads((folder / "params.json").read_text()), run, {p.stem: p for p in sorted(folder.glob("*.csv"))}


def differs_from_default(notebook: str, this_run: dict, root: Path | None = None) -> list[str]:
    """The parameters in which ``this_run`` differs from the book's committed default run of
    ``notebook`` (all of them, ``["(no default run committed)"]``, when there is none)."""
    path = Path(root or REPO / "results") / notebook / "params.json"
    if not path.exists():
        return ["(no default run committed)"]
    default, mine = json.loads(path.read_text()), json.loads(_canonical(this_run))
    return sorted(k for k in set(default) | set(mine) if default.get(k, "<absent>") != mine.get(k, "<absent>"))


# The chapters whose scores rank a map's pixels (deletion, insertion, ROAD, critical regions, top-k):
# their numbers depend on how ties are broken (xailib.metrics.order).
RANKS_PIXELS = frozenset({"02_rise", "03_impact_score", "04_adversarial_patch", "05_neuromask",
                          "07_localisation", "08_trustworthiness", "09_faithfulness", "10_leaderboard"})


def tie_rule_of(run: dict) -> str:
    """The tie rule (:data:`xailib.metrics.order.TIE_RULES`) a larger run was made with: its
    ``run.json`` records it; runs made before it did broke ties by pixel index."""
    return run.get("ties", "index")


def larger_run_caveat(notebook: str, root: Path | None = None) -> str:
    """What a chapter reading its committed larger run must say about it: that the run was made
    under the old tie rule (a chapter that ranks pixels only), else nothing."""
    run = Path(root or REPO / "results") / notebook / "larger_run" / "run.json"
    if notebook not in RANKS_PIXELS or not run.exists() or tie_rule_of(json.loads(run.read_text())) == "random":
        return ""
    return ("That larger run was made before ties in a map were broken at random and before the smooth random "
            "null was added: it took tied pixels by their index, top rows first, which moves the scores of "
            "maps with flat regions (Grad-CAM's zeros, LIME's and occlusion's patches, the constant map; up "
            "to 0.04 of an AUC) and leaves the others as they were. It is re-made in the next edition.")


def larger_run_summary(params: dict, run: dict, fields: dict[str, str]) -> str:
    """One line naming what a chapter's verdicts were read from: ``fields`` maps a parameter of the
    larger run to a format with one ``{}`` (parameters absent or None are left out), then the
    command and the wall time from its run record. Generated, so that the text never goes stale."""
    def show(v):
        if isinstance(v, dict):
            return ", ".join(f"{k} {show(x)}" for k, x in v.items())
        if isinstance(v, (list, tuple)):
            return ", ".join(show(x) for x in v)
        if isinstance(v, bool):
            return "yes" if v else "no"
        return str(v)
    parts = [fmt.format(show(params[k])) for k, fmt in fields.items() if params.get(k) is not None]
    minutes = run.get("seconds", float("nan")) / 60
    return (f"verdicts from the larger run: {'; '.join(parts)}; made by "
            f"`{run.get('command', 'scripts/larger_run.py')}` in {minutes:.0f} min")


def larger_run_note(notebook: str, this_run: dict, root: Path | None = None) -> str:
    """One sentence: whether this run's tables and verdicts are its own, and why."""
    lr = Path(root or REPO / "results") / notebook / "larger_run" / "params.json"
    if not lr.exists():
        return f"No larger run committed in results/{notebook}/larger_run/: tables and verdicts from this run"
    changed = differs_from_default(notebook, this_run, root)
    if not changed:
        caveat = larger_run_caveat(notebook, root)
        return ("This is the book's default run: its verdicts are read from the committed larger run"
                + (". " + caveat.rstrip(".") if caveat else ""))
    names = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
    return (f"Tables and verdicts from this run: its parameters differ from the book's default run in {names}, "
            "and the committed larger run speaks only for that one")


# The verdict tables a chapter publishes; scripts/new_edition.py keeps them as the previous edition.
EDITION_TABLES = ("verdicts", "claims", "grid_verdicts", "validity_verdicts")


def previous_edition(notebook: str, name: str = "verdicts", root: Path | None = None):
    """The verdict table ``name`` as the book published it in its previous edition
    (``results/<notebook>/previous_edition/``, kept by ``scripts/new_edition.py``) and that
    edition's record (commit, note), or None when there is none."""
    import pandas as pd
    folder = Path(root or REPO / "results") / notebook / "previous_edition"
    if not (folder / f"{name}.csv").exists():
        return None
    record = json.loads((folder / "edition.json").read_text()) if (folder / "edition.json").exists() else {}
    return pd.read_csv(folder / f"{name}.csv", keep_default_na=False, na_values=[""]), record
