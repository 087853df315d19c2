"""Every verdict that changed since the previous edition, over all chapters, as one Markdown table
(claim, model, setting, before, now, why): the table a note or a release lists.

    .venv/bin/python scripts/verdict_changes.py [--only 02_rise ...] [--counts]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from xailib import verdicts  # noqa: E402
from xailib.results import EDITION_TABLES, previous_edition  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="chapters (notebook names)")
    ap.add_argument("--counts", action="store_true", help="only the number of changes per chapter and table")
    args = ap.parse_args(argv)
    rows = []
    for folder in sorted((REPO / "results").iterdir()):
        if not folder.is_dir() or (args.only and folder.name not in args.only):
            continue
        for name in EDITION_TABLES:
            prev = previous_edition(folder.name, name)
            if prev is None or not (folder / f"{name}.csv").exists():
                continue
            now = pd.read_csv(folder / f"{name}.csv", keep_default_na=False, na_values=[""])
            ch = verdicts.changes(prev[0], now)
            rows.append(ch.assign(chapter=folder.name, table=name))
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    if table.empty:
        print("no verdict changed")
        return 0
    if args.counts:
        print(table.groupby(["chapter", "table", "before", "now"]).size().to_string())
        return 0
    cols = ["chapter", "table", "claim", "model", "setting", "before", "now", "why"]
    print(table[[c for c in cols if c in table]].to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
