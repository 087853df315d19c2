"""The same numbers on another machine: which kernels and batch size a published run uses.

On one CPU the book's numbers depend on the parameters and, for the learned masks only, on the
thread count. The model batch size (short chunks are padded, see :mod:`xailib.inference`) and
the thread count (1 or 2) leave every logit and gradient map bit-identical, and a short NeuroMask
optimisation too (``tests/test_determinism.py``); but chapter 05 run with one thread per kernel
gave other learned masks than with two (its NeuroMask deletion AUC under blur moved by up to 0.044,
measured in the book's build at stop 44). So the build keeps torch's default threads in every
kernel, and a Dask worker (one thread) may give other learned masks. Across CPUs even the
logits differ. PyTorch's own vectorised code, oneDNN (the convolutions), MKL (the matrix products)
and OpenBLAS (numpy's and scipy's linear algebra: LIME's and KernelSHAP's regressions) each pick
their kernels for the processor they find, and an Intel Xeon and an AMD EPYC round otherwise:
logits and gradients move in the 6th or 7th digit, and an optimisation amplifies it. Chapter
05's larger run, made on both before this module existed, shows how far: NeuroMask's per-image
deletion AUC moved by up to 0.35 and its mask energy by up to 0.74, a non-learned map's score
by at most 0.014 (LIME). Ties decided by float noise (near-tied maxima in the pointing game) and
ratios of near-zero norms (relative max-sensitivity of an almost empty map) do the same on a
smaller scale.

So every published run (the book's build, the larger runs) and the test suite run under
:func:`environment`: PyTorch, oneDNN and OpenBLAS held to their AVX2 kernels (OpenBLAS's
"Haswell"), which every x86-64 server of the last decade has and which an AVX2 machine runs
anyway, and one fixed model batch size instead of the one measured under the day's load. MKL is
not pinned (see :data:`KERNELS`): the small fully connected layers still round as the machine's
MKL does, which a learned mask can amplify. These are environment variables that each library
reads once, when it first runs, so they are set before a Python process or a notebook's kernel starts:
``scripts/test.sh`` and ``scripts/build_book.sh`` source ``scripts/pinned_env.sh``,
``scripts/run_notebooks.py`` and ``scripts/larger_run.py`` call :func:`apply`. A reader's own
runs keep their machine's fastest kernels unless they do the same.

What no setting reaches: MKL, a processor without AVX2, another architecture (Arm). For those,
:data:`TOLERANCES` says how far a number may move, as measured between the two machines, and
the replay tests of the larger runs use it.
"""
from __future__ import annotations

import os
import platform

# Read by PyTorch (its vectorised ATen kernels), oneDNN and OpenBLAS when each first runs.
# MKL (the fully connected layers' matrix products) is left to choose: its reproducible mode
# (MKL_CBWR=AVX2, also with STRICT) makes a NeuroMask mask depend on the thread count (measured:
# 1 against 2 threads differ after 20 steps), which is worse than a machine-dependent kernel.
KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
           "OPENBLAS_CORETYPE": "Haswell"}      # numpy's and scipy's BLAS (LIME's and KernelSHAP's regressions)
BATCH_SIZE = 64        # model rows per call in published runs (XAILIB_BATCH_SIZE); any value gives the same numbers

# How far a published number can move on a machine whose kernels differ all the same, measured by
# recomputing the larger runs' per-image values on an AMD EPYC against tables an Intel Xeon made
# before the kernels were pinned (tests/test_larger_runs.py compares with these).
TOLERANCES = {
    "map": 1e-4,                # similarities and scores of maps made without an optimisation
    "curve": 2e-3,              # deletion / insertion AUCs: a near-tied pixel crosses a step
    # NeuroMask, the mean over a batch of 16 images (the chapter's batches): the largest difference
    # of such means between the two machines' 05 larger runs (kept 0.0017, mask energy 0.054,
    # zero-fill deletion 0.051), rounded up; single images move far more (see the module's doc)
    "learned_mask": {"kept": 0.002, "mask energy": 0.06, "deletion, zero fill": 0.06},
}


def x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "x86-64")


def environment() -> dict:
    """The variables a published run sets on this machine: the kernels (x86-64 only) and the
    batch size."""
    env = dict(KERNELS) if x86() else {}
    env["XAILIB_BATCH_SIZE"] = str(BATCH_SIZE)
    return env


def apply(override: bool = False) -> dict:
    """Set :func:`environment` in ``os.environ`` (a variable already set is kept unless
    ``override``) for this process's children: call it before any kernel starts. Returns what
    is in force."""
    for k, v in environment().items():
        if override or k not in os.environ:
            os.environ[k] = v
    return in_force()


def in_force() -> dict:
    """What this process runs under: the variables above as set, and the instruction set
    PyTorch's kernels use."""
    out = {k: os.environ.get(k) for k in environment()}
    try:
        import torch
        out["torch kernels"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - no torch, or a build without the query
        out["torch kernels"] = None
    return out


def kernel_key() -> str:
    """One line naming the kernels this process runs: part of the results store's key, so that a
    batch computed under other kernels is not reused by a pinned run, nor the reverse."""
    f = in_force()
    return "/".join(str(v) for v in (platform.machine(), f["torch kernels"],
                                     *(os.environ.get(k) for k in sorted(KERNELS) if k != "ATEN_CPU_CAPABILITY")))


def pinned() -> bool:
    """True when every variable of :func:`environment` is set to its value here."""
    return all(os.environ.get(k) == v for k, v in environment().items())


def machine_gap(here, there, keys=("model", "method", "image"), columns=None, by=("model", "method")):
    """How far two runs of the same per-image table (two machines, same parameters) lie apart:
    per ``by`` group and score column, the median, 95th percentile and largest absolute
    difference per image, and the absolute difference of the means. ``here`` and ``there`` are
    DataFrames with ``keys`` and the score ``columns`` (default: every numeric column they share)."""
    import pandas as pd
    keys, by = list(keys), list(by)
    missing = [k for k in keys if k not in here.columns or k not in there.columns]
    if missing:
        raise ValueError(f"both tables need the key columns {keys}; missing: {missing}")
    if columns is None:
        columns = [c for c in here.columns if c in there.columns and c not in keys
                   and pd.api.types.is_numeric_dtype(here[c])]
    both = here.merge(there, on=keys, suffixes=("", " (there)"), validate="one_to_one")
    if len(both) < max(len(here), len(there)):
        raise ValueError(f"the tables hold other rows: {len(here)} and {len(there)} rows, {len(both)} shared")
    rows = []
    for group, g in both.groupby(by, sort=False):
        for c in columns:
            d = (g[c] - g[f"{c} (there)"]).abs().dropna()
            if d.empty:
                continue
            rows.append({**dict(zip(by, group if isinstance(group, tuple) else (group,))), "score": c,
                         "images": len(d), "median |difference|": d.median(),
                         "95th percentile": d.quantile(0.95), "largest": d.max(),
                         "difference of means": abs(g[c].mean() - g[f"{c} (there)"].mean())})
    return pd.DataFrame(rows)


def verdict_flips(here, there, on=("claim", "model"), verdict="verdict"):
    """The claims whose verdict differs between two claims tables (the same claims judged on two
    machines' runs): the ``on`` columns with both verdicts."""
    on = list(on)
    both = here[on + [verdict]].merge(there[on + [verdict]], on=on, suffixes=("", " (there)"))
    return both[both[verdict] != both[f"{verdict} (there)"]].reset_index(drop=True)


if __name__ == "__main__":        # for shells: eval "$(python -m xailib.determinism)" (a value set already is kept)
    for k, v in environment().items():
        print(f'export {k}="${{{k}:-{v}}}"')
