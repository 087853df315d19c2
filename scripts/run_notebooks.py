"""Execute the book's notebooks with papermill; with --publish, as the book's own build.

    python scripts/run_notebooks.py --publish            # the book's build: every notebook in _toc.yml order
    python scripts/run_notebooks.py --publish --only 01_benchmark_and_methods
    python scripts/run_notebooks.py --only 01_benchmark_and_methods -p n_explain 32   # your own run

With --publish each notebook runs with its own default parameters *in place* in notebooks/ (its
outputs are stored in the .ipynb: the book renders them, nbval compares them), its tables are
published to results/<notebook>/ and book/build_record.md records package versions, parameters
and run time. --publish takes no -p overrides: a build publishes the default runs only. Without
--publish (the default) nothing committed is written: each executed notebook goes to
.cache/runs/<notebook>.ipynb and its tables to the results cache. A failing notebook stops the
run with one line: the notebook, the cell and the error's own sentence.
"""
import argparse
import ast
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import papermill as pm
import yaml

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "results" / "build_record.json"
PAGE = ROOT / "book" / "build_record.md"
PACKAGES = ["torch", "torchvision", "numpy", "captum", "lime", "shap", "scikit-image", "pandas",
            "matplotlib", "papermill", "nbval", "jupyter-book", "Sphinx"]


def toc_notebooks(root: Path = ROOT):
    """The notebooks of ``root``'s ``_toc.yml``, in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("file", "")).startswith("notebooks/"):
                files.append(root / f"{node['file']}.ipynb")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(toc)
    return files


def parse_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def write_page(record):
    lines = ["# How this book was built", "",
             "Every chapter is a notebook executed by papermill with the parameters below; the "
             "HTML shows the stored outputs of that run. `scripts/run_notebooks.py --publish` rewrites this "
             "page each time it runs.", "",
             f"- Built: {record['built']} on {record['machine']}",
             f"- Python {record['python']}, {record['cpus']} CPU cores, device used by default: CPU",
             "", "## Packages", "", "| package | version |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in record["packages"].items()]
    lines += ["", "## Notebooks", "", "| notebook | run time (s) | parameters |", "| --- | ---: | --- |"]
    for name, nb in record["notebooks"].items():
        params = ", ".join(f"`{k}={v!r}`" for k, v in nb["parameters"].items())
        lines.append(f"| {name} | {nb['seconds']:.0f} | {params} |")
    larger = sorted((ROOT / "results").glob("*/larger_run/run.json"))
    if larger:
        lines += ["", "## Larger runs", "",
                  "Each chapter's verdicts are read from its larger run, made by its own script and "
                  "published to `results/<notebook>/larger_run/`; `tests/test_larger_runs.py` "
                  "recomputes a random slice of each.", "",
                  "| notebook | command | wall time (min) | finished | machine | parameters |",
                  "| --- | --- | ---: | --- | --- | --- |"]
        for path in larger:
            run = json.loads(path.read_text())
            params = ", ".join(f"`{k}={v!r}`" for k, v in run["parameters"].items())
            lines.append(f"| {path.parent.parent.name} | `{run['command']}` | {run['seconds'] / 60:.1f} | "
                         f"{run['finished']} | {run['machine']} | {params} |")
    for bench in sorted((ROOT / "results" / "bench").glob("*.md")):
        lines += ["", f"## Speed ({bench.stem})", "", bench.read_text().strip()]
    PAGE.write_text("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", help="notebook names (without .ipynb)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a parameter override (Python literal), may repeat; not with --publish")
    ap.add_argument("--publish", action="store_true",
                    help="the book's build: execute in place, publish tables to results/, rewrite the build record")
    args = ap.parse_args()
    if args.publish and args.p:
        sys.exit("--publish writes the book's default runs, and -p overrides are never published: "
                 "drop -p, or drop --publish to run into .cache/runs/")
    notebooks = toc_notebooks()
    if args.only:
        known = {p.stem: p for p in notebooks}
        bad = [n for n in args.only if n not in known]
        if bad:
            sys.exit(f"unknown notebook(s) {bad}; choose from {sorted(known)}")
        notebooks = [known[n] for n in args.only]
    overrides = {k: parse_value(v) for k, v in args.p}
    os.environ["XAILIB_PUBLISH"] = "1" if args.publish else "0"
    runs = Path(os.environ.get("XAILIB_CACHE") or ROOT / ".cache") / "runs"
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {"notebooks": {}}
    for path in notebooks:
        out = path if args.publish else runs / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"-- {path.stem}" + ("" if args.publish else f" -> {out}"), flush=True)
        declared = {k: parse_value(v["default"]) for k, v in pm.inspect_notebook(str(path)).items()}
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(path), str(out), parameters=overrides, cwd=str(path.parent),
                                kernel_name="python3", progress_bar=False, request_save_on_cell_execute=True)
        except pm.PapermillExecutionError as e:
            sys.exit(f"{path.stem}: cell {e.cell_index} (execution {e.exec_count}) stopped with "
                     f"{e.ename}: {e.evalue}\n(the executed notebook, with the full traceback: {out})")
        seconds = time.perf_counter() - t0
        print(f"   {seconds:.0f} s", flush=True)
        record["notebooks"][path.stem] = {"seconds": round(seconds, 1),
                                          "parameters": {**declared, **overrides}}
    if not args.publish:
        return
    record.update(
        built=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{platform.system()} {platform.machine()}", python=platform.python_version(),
        cpus=os.cpu_count(),
        packages={p: metadata.version(p) for p in PACKAGES})
    RECORD.parent.mkdir(exist_ok=True)
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    write_page(record)


if __name__ == "__main__":
    main()
