"""Execute the book's notebooks with papermill; with --publish, as the book's own build.

    python scripts/run_notebooks.py --publish            # the book's build: every notebook in _toc.yml order
    python scripts/run_notebooks.py --publish --only 01_benchmark_and_methods
    python scripts/run_notebooks.py --only 01_benchmark_and_methods -p n_explain 32   # your own run
    python scripts/run_notebooks.py --jobs 2 --only 06_sanity_checks 07_localisation   # two at a time here
    python scripts/run_notebooks.py --scheduler tcp://host:8786      # side by side on a Dask cluster

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
from importlib import metadata
from pathlib import Path

import nbformat
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


WIDGET = "application/vnd.jupyter.widget-view+json"


def clean_outputs(nb) -> None:
    """No progress bars in a committed notebook: tqdm draws them as widgets (tqdm.notebook ignores
    TQDM_DISABLE), whose outputs and saved state would show as dead "0%" bars in the book."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET not in o.get("data", {})]


def machine() -> dict:
    """Where a notebook ran: OS, CPU model and cores, the GPU if torch sees one, Python, packages."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    from xailib import determinism
    return {"os": f"{platform.system()} {platform.machine()}", "cpu": cpu, "cpus": os.cpu_count(), "gpu": gpu,
            "python": platform.python_version(), "packages": {p: metadata.version(p) for p in PACKAGES},
            "kernels": determinism.in_force()}


def stored_run(path: Path) -> dict:
    """A notebook's own record of its last published run: papermill's metadata (duration, end
    time, parameters given) with the declared defaults, and the machine run_notebooks stored."""
    nb = json.loads(path.read_text())
    pmeta = nb["metadata"].get("papermill", {})
    declared = {k: parse_value(v["default"]) for k, v in pm.inspect_notebook(str(path)).items()}
    return {"seconds": pmeta.get("duration"), "finished": pmeta.get("end_time"),
            "parameters": {**declared, **pmeta.get("parameters", {})},
            "machine": nb["metadata"].get("xailib_run", {})}


def write_page(notebooks):
    """book/build_record.md (and results/build_record.json) rewritten from every notebook's own
    stored run, so a page never lists a run that is not the one the book shows."""
    runs = {p.stem: stored_run(p) for p in notebooks}
    RECORD.write_text(json.dumps(runs, indent=1, default=str) + "\n")
    lines = ["# How this book was built", "",
             "Every chapter is a notebook executed by papermill with its default parameters; the HTML "
             "shows the stored outputs of that run. This page is generated from the notebooks' own "
             "records of that run (`scripts/run_notebooks.py --publish` rewrites it): run time as "
             "papermill measured it, from an empty results cache unless a row says otherwise, and "
             "the machine and package versions the run used. Maps come from the book's map store "
             "(`xailib.map_store`): a map an earlier chapter of the build computed is read, not "
             "computed again, so a row's time depends on the chapters before it; the machine column "
             "says how many maps the store held when the build started, and whether the notebooks "
             "ran side by side (then each shared the cores with another, keeping torch's default threads so "
             "that its numbers are those of a run alone, and took longer than it would alone).", "",
             "| notebook | run time (s) | finished (UTC) | machine |", "| --- | ---: | --- | --- |"]
    for name, run in runs.items():
        m = run["machine"]
        where = f"{m.get('cpu', '?')}, {m.get('cpus', '?')} cores" + (f", {m['gpu']}" if m.get("gpu") else "") \
            if m else "(not recorded)"
        if m.get("kernels"):          # xailib.determinism: the kernels the run was pinned to, if any
            k = m["kernels"]
            pinned = k.get("ONEDNN_MAX_CPU_ISA") and k.get("ATEN_CPU_CAPABILITY")
            where += f"; kernels {k.get('torch kernels')}" + (" (pinned)" if pinned else " (the machine's own)") \
                + f", batch {k.get('XAILIB_BATCH_SIZE') or 'measured'}"
        if m.get("notebooks at a time"):       # side by side, and what the map store held at the start
            where += f"; {m['notebooks at a time']}; {m.get('maps stored at the start', '?')} maps stored at the start"
        secs = f"{run['seconds']:.0f}" if run["seconds"] is not None else "?"
        done = (run["finished"] or "?")[:16].replace("T", " ")
        lines.append(f"| {name} | {secs} | {done} | {where} |")
    versions = {}
    for name, run in runs.items():
        for pkg, v in run["machine"].get("packages", {}).items():
            versions.setdefault(pkg, {}).setdefault(v, []).append(name)
    lines += ["", "## Packages", "", "| package | version |", "| --- | --- |"]
    for pkg, by in versions.items():
        text = "; ".join(v if len(by) == 1 else f"{v} ({', '.join(n[:2] for n in names)})" for v, names in by.items())
        lines.append(f"| {pkg} | {text} |")
    pythons = sorted({run["machine"].get("python") for run in runs.values() if run["machine"]})
    lines += ["", f"Python {', '.join(pythons) or '?'}.", "", "## Parameters of each run", ""]
    for name, run in runs.items():
        lines += [f"**{name}**: " + ", ".join(f"`{k}={v!r}`" for k, v in run["parameters"].items()), ""]
    larger = sorted((ROOT / "results").glob("*/larger_run/run.json"))
    if larger:
        lines += ["## Larger runs", "",
                  "Each chapter's verdicts are read from its larger run, made by its own script and "
                  "published to `results/<notebook>/larger_run/`; `tests/test_larger_runs.py` "
                  "recomputes a random slice of each.", "",
                  "| notebook | command | wall time (min) | finished | machine |",
                  "| --- | --- | ---: | --- | --- |"]
        params = []
        for path in larger:
            run = json.loads(path.read_text())
            lines.append(f"| {path.parent.parent.name} | `{run['command']}` | {run['seconds'] / 60:.1f} | "
                         f"{run['finished']} | {run['machine']} |")
            params += [f"**{path.parent.parent.name}**, larger run: "
                       + ", ".join(f"`{k}={v!r}`" for k, v in run["parameters"].items()), ""]
        lines += [""] + params
    for bench in sorted((ROOT / "results" / "bench").glob("*.md")):
        lines += ["", f"## Speed ({bench.stem})", "", bench.read_text().strip()]
    PAGE.write_text("\n".join(lines).rstrip() + "\n")


def execute(path: str, out: str, overrides: dict, publish: bool):
    """Run one notebook with papermill (here or on a worker): (seconds, None) or (seconds, the
    one-line error)."""
    os.environ["XAILIB_PUBLISH"] = "1" if publish else "0"
    # a Dask worker's environment trims freed memory at once (MALLOC_TRIM_THRESHOLD_), which made a
    # notebook's kernel started from it run twice as slow here: the kernel does not inherit it
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(path, out, parameters=overrides, cwd=str(Path(path).parent),
                            kernel_name="python3", progress_bar=False, request_save_on_cell_execute=True)
    except pm.PapermillExecutionError as e:
        return time.perf_counter() - t0, (f"cell {e.cell_index} (execution {e.exec_count}) stopped with "
                                          f"{e.ename}: {e.evalue}")
    return time.perf_counter() - t0, None


def report(path: Path, out: Path, outcome, publish: bool, where) -> None:
    """Stop on a failed notebook with one line; else print its time and, when publishing, keep
    the record of its run (machine and packages) in the notebook."""
    seconds, error = outcome
    if error:
        sys.exit(f"{path.stem}: {error}\n(the executed notebook, with the full traceback: {out})")
    print(f"   {path.stem}: {seconds:.0f} s", flush=True)
    if publish:
        nb = nbformat.read(out, as_version=4)
        nb.metadata["xailib_run"] = where
        clean_outputs(nb)
        for key in ("input_path", "output_path"):      # no machine's absolute path in the notebook
            nb.metadata.get("papermill", {})[key] = str(path.relative_to(ROOT))
        nbformat.write(nb, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", help="notebook names (without .ipynb)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a parameter override (Python literal), may repeat; not with --publish")
    ap.add_argument("--publish", action="store_true",
                    help="the book's build: execute in place, publish tables to results/, rewrite the build record")
    ap.add_argument("--jobs", type=int, default=1,
                    help="run N notebooks at a time on this machine, each kernel with torch's default threads "
                         "(so the same numbers as one at a time), sharing the map store (scripts/build_book.sh: 2)")
    ap.add_argument("--scheduler", default=None,
                    help="run the notebooks side by side on a Dask cluster: 'local:N' (N worker processes) or "
                         "a scheduler address 'tcp://host:8786' whose workers share this folder "
                         "(default: $XAILIB_SCHEDULER when set, else one after the other here)")
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
    from xailib import determinism
    determinism.apply()           # the pinned kernels and batch size, for every notebook's kernel
    os.environ["XAILIB_PUBLISH"] = "1" if args.publish else "0"
    runs = Path(os.environ.get("XAILIB_CACHE") or ROOT / ".cache") / "runs"
    where = machine() if args.publish else None
    jobs = [(path, path if args.publish else runs / path.name) for path in notebooks]
    from xailib import map_store, shards
    scheduler = shards.resolve_scheduler(args.scheduler)
    if args.jobs < 1:
        sys.exit(f"--jobs {args.jobs}: give 1 or more notebooks at a time")
    if where is not None:         # how the build ran: side by side or not, and what the map store held
        where["notebooks at a time"] = (f"side by side on {scheduler} (Dask)" if scheduler else
                                        f"{args.jobs} at a time" if args.jobs > 1 else "one at a time")
        where["maps stored at the start"] = map_store.stored_count()
    t0 = time.perf_counter()
    if scheduler is None and args.jobs > 1:      # side by side here, each kernel with the default threads
        from concurrent.futures import ProcessPoolExecutor, as_completed
        import multiprocessing
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(execute, str(path), str(out), overrides, args.publish): (path, out)
                       for path, out in jobs}
            print(f"-- {len(jobs)} notebooks, {args.jobs} at a time", flush=True)
            try:
                for future in as_completed(futures):       # each as it finishes; a failure stops the build
                    report(*futures[future], future.result(), args.publish, where)
            except SystemExit:                              # no notebook starts after a failure
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        print(f"-- all {len(jobs)} in {time.perf_counter() - t0:.0f} s", flush=True)
    elif scheduler is None:
        outcomes = []
        for path, out in jobs:
            print(f"-- {path.stem}" + ("" if args.publish else f" -> {out}"), flush=True)
            outcomes.append(execute(str(path), str(out), overrides, args.publish))
            report(path, out, outcomes[-1], args.publish, where)
    else:      # side by side on a cluster, each on one worker, sharing the map store (a Dask worker runs one
        # thread: chapter 05's learned masks then differ from a run here, see book/rerun.md)
        from dask.distributed import as_completed
        with shards.client(scheduler) as c:
            print(f"-- {len(jobs)} notebooks on {scheduler} ({len(c.scheduler_info()['workers'])} workers)", flush=True)
            futures = {c.submit(execute, str(path), str(out), overrides, args.publish, key=f"notebook-{path.stem}",
                                pure=False): (path, out) for path, out in jobs}
            for future in as_completed(futures):       # each as it finishes; a failure stops the build
                report(*futures[future], future.result(), args.publish, where)
            print(f"-- all {len(jobs)} in {time.perf_counter() - t0:.0f} s", flush=True)
    if args.publish:
        write_page(toc_notebooks())


if __name__ == "__main__":
    main()
