#!/usr/bin/env bash
# Command A: build the whole book from scratch on the embedded benchmark.
#   set up .venv -> draw the benchmark data -> execute every notebook with papermill
#   -> compile the HTML book into _build/html.
# Options are passed to scripts/run_notebooks.py --publish (e.g. --only 01_benchmark_and_methods);
# a build publishes the default runs only, so it takes no -p overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The kernels and batch size every published number is made with (xailib/determinism.py).
. scripts/pinned_env.sh
echo "== drawing the shapes benchmark (cached in .cache/ after the first time)"
.venv/bin/python -c "from xailib.data import load_shapes; [load_shapes(s, progress=True) for s in ('test', 'val')]"
# Two notebooks at a time on two or more cores (each kernel keeps torch's default threads, so the
# numbers are those of one at a time), sharing the map store so that a map is computed once for
# the whole book; XAILIB_BUILD_JOBS=1 runs them one after the other.
JOBS=${XAILIB_BUILD_JOBS:-$(( $(nproc) < 2 ? 1 : 2 ))}
echo "== executing the notebooks with papermill"
.venv/bin/python scripts/run_notebooks.py --publish --jobs "$JOBS" "$@"
echo "== compiling the book"
.venv/bin/jupyter-book build . --builder html
echo
echo "The book is at $(pwd)/_build/html/index.html"
