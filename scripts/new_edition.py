"""Open a new edition of the book's verdicts: keep the verdict tables the book publishes now as
``results/<notebook>/previous_edition/``, so that the next build's chapters can list every verdict
that changed, and why (``xailib.verdicts.changes``). Run it once, before re-publishing the chapters
after a change to the rule or to a chapter's claims; a rebuild that changes no verdict needs no new
edition.

    .venv/bin/python scripts/new_edition.py [--only 02_rise ...] [--note "why this edition"]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from xailib.results import EDITION_TABLES  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="chapters (notebook names) to open a new edition for")
    ap.add_argument("--note", default="", help="what this edition changes, recorded beside the tables")
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    done = 0
    for folder in sorted((REPO / "results").iterdir()):
        if not folder.is_dir() or (args.only and folder.name not in args.only):
            continue
        tables = [folder / f"{t}.csv" for t in EDITION_TABLES if (folder / f"{t}.csv").exists()]
        if not tables:
            continue
        out = folder / "previous_edition"
        out.mkdir(exist_ok=True)
        for t in tables:
            shutil.copy2(t, out / t.name)
        (out / "edition.json").write_text(json.dumps({"commit": commit, "note": args.note,
                                                      "tables": [t.name for t in tables]}, indent=1) + "\n")
        print(f"{folder.name}: kept {', '.join(t.name for t in tables)} as the previous edition ({commit})")
        done += 1
    if not done:
        print("no published verdict tables found under results/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
