"""xailib: the thin helper package behind the book on evaluating explanations of image classifiers.

Modules, one idea each: ``data`` (image sets), ``models`` (classifiers), ``train`` (training the
benchmark networks), ``explain`` (one interface to explain), ``metrics`` (one interface to score),
``results`` (the resumable results store) and ``plots``; ``rise`` (RISE), ``impact`` (Impact
Score and Impact Coverage) and ``patches`` (adversarial patches) belong to their chapters. Chapter modules register their methods
and metrics into the same registries when imported here.
"""
from . import data, errors, explain, impact, inference, metrics, models, patches, results, rise  # noqa: F401

__version__ = "0.1.0"
