#!/usr/bin/env bash
# Command B: every test. Unit tests, nbval over the committed notebooks (re-executed and
# compared where a cell is marked # NBVAL_CHECK_OUTPUT), and a book build with Sphinx
# warnings as errors (tests/test_book.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
