"""Time the whole book at its default parameters, this tree against another commit, in one run.

    python scripts/bench_book.py --baseline cb9fcf9          # both, from empty result caches
    python scripts/bench_book.py --baseline cb9fcf9 --json results/bench/book_cpu.json

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


def run_book(root: Path, cache: Path, out: Path) -> dict:
    """Execute every notebook of ``root`` with ``root``'s xailib; {notebook: seconds}."""
    env = {**os.environ, "PYTHONPATH": str(root), "XAILIB_CACHE": str(cache), "XAILIB_PUBLISH": "0"}
    for drawn in ("shapes", "variants"):                     # drawn data are not timed
        if (ROOT / ".cache" / drawn).exists() and not (cache / drawn).exists():
            shutil.copytree(ROOT / ".cache" / drawn, cache / drawn)
    subprocess.run([sys.executable, "-c", "from xailib.data import load_shapes; "
                    "[load_shapes(s) for s in ('test', 'val')]"], env=env, check=True, cwd=root)
    seconds = {}
    for nb in toc_notebooks(root):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "papermill", str(nb), str(out / nb.name),
                        "--cwd", str(nb.parent), "--no-progress-bar", "-k", "python3"],
                       env=env, check=True, cwd=root, capture_output=True)
        seconds[nb.stem] = round(time.perf_counter() - t0, 1)
        print(f"  {root.name}: {nb.stem} {seconds[nb.stem]:.0f} s", flush=True)
    return seconds


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
    ap.add_argument("--baseline", required=True, help="a git revision to time against")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wt = tmp / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), args.baseline],
                       check=True, capture_output=True)
        try:
            runs = {}
            for label, root in (("baseline", wt), ("this tree", ROOT)):
                print(f"== {label}", flush=True)
                (tmp / label / "out").mkdir(parents=True)
                runs[label] = dict(seconds=run_book(root, tmp / label / "cache", tmp / label / "out"),
                                   claims=claims(tmp / label / "cache"))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)],
                           capture_output=True)
    base, new = runs["baseline"]["seconds"], runs["this tree"]["seconds"]
    print("\n| notebook | baseline (s) | this tree (s) | speed-up |\n| --- | ---: | ---: | ---: |")
    for nb in new:
        b = base.get(nb)
        print(f"| {nb} | {b if b is not None else ''} | {new[nb]} | {b / new[nb]:.2f} |" if b else
              f"| {nb} | | {new[nb]} | |")
    tb, tn = sum(base.values()), sum(new[k] for k in base if k in new)
    print(f"| all | {tb:.0f} | {tn:.0f} | {tb / tn:.2f} |")
    same, verdicts = {}, {}
    for nb, (text, verdict) in runs["this tree"]["claims"].items():
        old = runs["baseline"]["claims"].get(nb, (None, None))
        same[nb], verdicts[nb] = old[0] == text, old[1] == verdict
    print("\nclaims tables identical to the baseline's: " +
          ", ".join(f"{nb} {'yes' if ok else 'no'}" for nb, ok in same.items()))
    print("verdicts identical to the baseline's: " +
          ", ".join(f"{nb} {'yes' if ok else 'NO'}" for nb, ok in verdicts.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(baseline=args.baseline,
                                             seconds={k: v["seconds"] for k, v in runs.items()},
                                             claims_identical=same, verdicts_identical=verdicts),
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
