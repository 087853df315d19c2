"""Time the whole book at its default parameters, this tree against another commit, in one run.

    python scripts/bench_book.py --baseline cb9fcf9          # both, from empty result caches
    python scripts/bench_book.py --baseline cb9fcf9 --json results/bench/book_cpu.json
    python scripts/bench_book.py --report results/bench/book_cpu.json   # its table again

Each notebook of ``_toc.yml`` is executed by papermill into a temporary file (the committed
notebooks and tables are not touched: ``XAILIB_PUBLISH=0``), first for the baseline commit (from a
temporary ``git worktree``, importing that commit's ``xailib``), then for this tree, each with
an empty results cache of its own; the drawn benchmark (and its variants, where this machine
has drawn them) is copied in beforehand, so drawing data is not timed. It prints seconds per chapter for both and the ratio, and compares the claims tables the
two runs produced (``claims.csv`` of each chapter's run), so a speed-up that changed a verdict
shows.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from run_notebooks import toc_notebooks  # noqa: E402


def run_book(root: Path, cache: Path, out: Path, jobs: int = 1) -> dict:
    """Execute every notebook of ``root`` with ``root``'s xailib, ``jobs`` at a time (as
    ``run_notebooks.py --jobs N`` does: in the book's order, each kernel with torch's default
    threads); {notebook: seconds, "wall": seconds from the first start to the last end}."""
    env = {**os.environ, "PYTHONPATH": str(root), "XAILIB_CACHE": str(cache), "XAILIB_PUBLISH": "0"}
    for drawn in ("shapes", "variants"):                     # drawn data are not timed
        if (ROOT / ".cache" / drawn).exists() and not (cache / drawn).exists():
            shutil.copytree(ROOT / ".cache" / drawn, cache / drawn)
    subprocess.run([sys.executable, "-c", "from xailib.data import load_shapes; "
                    "[load_shapes(s) for s in ('test', 'val')]"], env=env, check=True, cwd=root)
    seconds = {}

    def one(nb):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "papermill", str(nb), str(out / nb.name),
                        "--cwd", str(nb.parent), "--no-progress-bar", "-k", "python3"],
                       env=env, check=True, cwd=root, capture_output=True)
        seconds[nb.stem] = round(time.perf_counter() - t0, 1)
        print(f"  {root.name}: {nb.stem} {seconds[nb.stem]:.0f} s", flush=True)

    t0 = time.perf_counter()
    notebooks = toc_notebooks(root)
    if jobs > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(one, notebooks))
    else:
        for nb in notebooks:
            one(nb)
    return {**{nb.stem: seconds[nb.stem] for nb in notebooks}, "wall": round(time.perf_counter() - t0, 1)}


def claims(cache: Path) -> dict:
    """{notebook: (claims.csv text, its verdict column)} of the runs in ``cache``."""
    import pandas as pd
    found = {}
    for path in sorted((cache / "results").glob("*/*/tables/claims.csv")):
        table = pd.read_csv(path)
        verdict = [c for c in table.columns if c.startswith("holds")]
        found[path.parts[-4]] = (path.read_text(), table[verdict].to_csv(index=False))
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", help="a git revision to time against")
    ap.add_argument("--json", type=Path, default=None, help="write the result there (and its .md)")
    ap.add_argument("--report", type=Path, default=None, help="rewrite the .md of a saved result")
    ap.add_argument("--jobs", type=int, default=1, help="this tree's notebooks run N at a time, as the "
                    "book's build does (scripts/run_notebooks.py --jobs)")
    ap.add_argument("--part", choices=("baseline", "tree"), default=None,
                    help="run one side only, into --workdir (the other side is read from there)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the runs' caches and seconds are kept")
    args = ap.parse_args()
    if args.report:
        args.report.with_suffix(".md").write_text(report(json.loads(args.report.read_text())))
        return
    if not args.baseline:
        ap.error("--baseline REV is needed")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_book_"))
    saved = work / "runs.json"
    runs = json.loads(saved.read_text()) if saved.exists() else {}
    sides = [("baseline", None), ("this tree", ROOT)]
    if args.part:
        sides = [sides[0] if args.part == "baseline" else sides[1]]
    for label, root in sides:
        print(f"== {label}", flush=True)
        cache, out = work / label / "cache", work / label / "out"
        shutil.rmtree(work / label, ignore_errors=True)
        out.mkdir(parents=True)
        if root is None:                     # the baseline commit, from a temporary worktree
            wt = work / "baseline-tree"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), args.baseline],
                           check=True, capture_output=True)
            try:
                runs[label] = dict(seconds=run_book(wt, cache, out), claims=claims(cache), jobs=1)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)],
                               capture_output=True)
        else:
            runs[label] = dict(seconds=run_book(root, cache, out, jobs=args.jobs), claims=claims(cache), jobs=args.jobs)
        saved.write_text(json.dumps(runs) + "\n")           # a later --part reads the other side here
    if len(runs) < 2:
        print(f"saved in {saved}; run the other --part with --workdir {work} for the comparison")
        return
    same, verdicts = {}, {}
    for nb, (text, verdict) in runs["this tree"]["claims"].items():
        old = runs["baseline"]["claims"].get(nb, (None, None))
        same[nb], verdicts[nb] = old[0] == text, old[1] == verdict
    result = dict(baseline=args.baseline, date=time.strftime("%Y-%m-%d"),
                  seconds={k: v["seconds"] for k, v in runs.items()},
                  jobs={k: v.get("jobs", 1) for k, v in runs.items()},
                  claims_identical=same, verdicts_identical=verdicts)
    print("\n" + report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        args.json.with_suffix(".md").write_text(report(result))


def report(result: dict) -> str:
    """The Markdown table of a run (what the build record shows)."""
    base, new = dict(result["seconds"]["baseline"]), dict(result["seconds"]["this tree"])
    walls = {k: d.pop("wall", None) for k, d in (("baseline", base), ("this tree", new))}
    rev, jobs = result["baseline"], result.get("jobs", {})
    how = "one after the other (see below" if result.get("how") else \
        (f"in one run (`python scripts/bench_book.py --baseline {rev}"
         + (f" --jobs {jobs.get('this tree')}" if jobs.get("this tree", 1) > 1 else "") + "`")
    lines = [f"The whole book at its default parameters, from empty result caches and map stores, this tree "
             f"against commit `{rev}` {how}" + (f", {result['date']}" if result.get("date") else "")
             + "). A notebook's seconds are its own run's; with notebooks side by side they overlap, and the "
             "wall time is the build's:", "",
             "| notebook | baseline (s) | this tree (s) | speed-up |", "| --- | ---: | ---: | ---: |"]
    for nb in new:
        b = base.get(nb)
        lines.append(f"| {nb} | {b} | {new[nb]} | {b / new[nb]:.2f} |" if b else f"| {nb} | | {new[nb]} | |")
    tb, tn = sum(base.values()), sum(new[k] for k in base if k in new)
    lines.append(f"| all notebooks, summed | {tb:.0f} | {tn:.0f} | {tb / tn:.2f} |")
    if walls["this tree"]:
        wb = walls["baseline"] or tb
        side = {k: jobs.get(k, 1) for k in ("baseline", "this tree")}
        how = lambda k: "one at a time" if side[k] == 1 else f"{side[k]} at a time"  # noqa: E731
        lines.append(f"| the build, wall time ({how('baseline')} / {how('this tree')}) | {wb:.0f} | "
                     f"{walls['this tree']:.0f} | **{wb / walls['this tree']:.2f}** |")
    if result.get("how"):           # how a run not made by one command was made
        lines += ["", result["how"]]
    yes = lambda d: ", ".join(f"{nb} {'yes' if ok else 'no'}" for nb, ok in d.items())  # noqa: E731
    lines += ["", f"Claims tables identical to the baseline's: {yes(result['claims_identical'])}.",
              f"Verdicts identical to the baseline's: {yes(result['verdicts_identical'])}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
