"""xailib: the thin package behind the book on evaluating explanations of image classifiers.

Two layers. **The library**, what a researcher imports for their own work, one idea per module:

- data: ``data`` (image sets: the benchmark, the digits, ImageNet and CIFAR-10 folders),
  ``variants`` (benchmark variants with known truths), ``known_truth`` (the BAM pairs and the
  trojaned networks: images and scores against what the network is known to use), ``patches``
  (adversarial patches);
- models: ``models`` (classifiers, their checkpoints and input normalisation), ``train``
  (training the benchmark networks and the model zoo), ``inference`` (the fast path every no-grad
  model call takes);
- ``methods`` (explanation methods, one module per family, and ``explain``, the registry's entry
  point) and ``metrics`` (metrics, one module per family, and ``score``);
- statistics: ``verdicts`` (the shared rule for judging claims), ``agreement`` (rank correlation,
  Kendall's W, Krippendorff's alpha, split-half reliability), ``calibration`` (does a removal
  remove anything?), ``meta_evaluation`` (MetaQuantus's model perturbation test of a metric),
  ``carryover`` (does a finding on the benchmark carry over to the real network: the methods'
  rank agreement and each claim's direction, from two committed runs);
- stores and runs: ``results`` (the resumable results store), ``map_store`` (the book's one store
  of maps, keyed by what each map is computed from), ``map_cache`` (one image set's maps under many
  networks, through it), ``shards`` (Dask), ``params`` (a notebook's parameters checked), ``determinism`` (the
  kernels and batch size a published run pins), ``errors``; and ``plots``, the book's figures.

**The chapters' plumbing**, :mod:`xailib.chapters`: one module per chapter, named after it,
importing the library and nothing of another chapter. No library module imports a chapter.
"""
from . import _moved
from . import (agreement, calibration, carryover, data, determinism, errors, inference, known_truth, map_cache,  # noqa: F401
               map_store, meta_evaluation, methods, metrics, models, patches, results, variants, verdicts)

_moved.install()

__version__ = "0.1.0"


def __getattr__(name):
    """``xailib.faith`` and the other moved modules, for one more release (see :mod:`xailib._moved`)."""
    import importlib
    if f"{__name__}.{name}" in _moved.MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
