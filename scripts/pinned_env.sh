# Source this file (`. scripts/pinned_env.sh`, from the repository's root) to run with the kernels
# and the model batch size every published number of the book is made with (xailib/determinism.py:
# PyTorch, oneDNN and OpenBLAS pinned to AVX2, XAILIB_BATCH_SIZE fixed). A variable already
# set in the environment is kept. scripts/test.sh and scripts/build_book.sh source it.
eval "$("${XAILIB_PYTHON:-.venv/bin/python}" -W ignore::RuntimeWarning -m xailib.determinism)"
