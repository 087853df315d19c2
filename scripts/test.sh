#!/usr/bin/env bash
# Command B: every test. Unit tests, nbval over the committed notebooks (re-executed and
# compared where a cell is marked # NBVAL_CHECK_OUTPUT), and a book build with Sphinx
# warnings as errors (tests/test_book.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The kernels and batch size every published number was made with (xailib/determinism.py), so the
# re-executed notebooks and the replays of the larger runs give the committed numbers on any
# x86-64 CPU; a variable already set in the environment is kept.
. scripts/pinned_env.sh
# XAILIB_PUBLISH=0: re-executed notebooks must not rewrite the committed tables in results/.
# Two pytest-xdist workers, each taking whole files (a notebook's cells stay in order in one
# kernel): LIME's Python loops, SLIC, the bootstrap and the kernels' start-up leave a core idle
# that the other worker uses. Each worker keeps torch's default threads, so the numbers nbval
# compares are those of a serial run; OMP_WAIT_POLICY=PASSIVE keeps idle OpenMP threads from
# spinning on the other worker's core. The workers take the longest files first (the order is in
# tests/conftest.py; xdist's own reordering by test count is off). XAILIB_TEST_WORKERS=0 runs
# serially (and -p no:xdist too).
WORKERS=${XAILIB_TEST_WORKERS:-2}
PAR=()
if [ "$WORKERS" != 0 ]; then PAR=(-n "$WORKERS" --dist loadfile --no-loadscope-reorder); fi
XAILIB_PUBLISH=0 OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} exec .venv/bin/python -m pytest "${PAR[@]}" --durations=40 "$@"
