#!/usr/bin/env bash
# Command B: every test. Unit tests, nbval over the committed notebooks (re-executed and
# compared where a cell is marked # NBVAL_CHECK_OUTPUT), and a book build with Sphinx
# warnings as errors (tests/test_book.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# XAILIB_PUBLISH=0: re-executed notebooks must not rewrite the committed tables in results/.
XAILIB_PUBLISH=0 exec .venv/bin/python -m pytest "$@"
