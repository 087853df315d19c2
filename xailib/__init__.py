"""xailib: the thin helper package behind the book on evaluating explanations of image classifiers.

Modules, one idea each: ``data`` (image sets), ``variants`` (benchmark variants with known
truths, and the digits), ``models`` (classifiers), ``train`` (training the benchmark networks and
the model zoo), ``inference`` (the fast path every no-grad model call takes), ``explain`` (one
interface to explain), ``metrics`` (one interface to score; ``metrics.similarity`` and
``metrics.randomisation`` for the sanity checks; ``metrics.localisation``, ``faithfulness``,
``robustness`` and ``complexity`` for the localisation and trustworthiness scores, with
sensitivity-n and the hyper-parameter sensitivity; ``metrics.removal``, the removal operator every
perturbation metric shares), ``verdicts`` (the shared rule for
judging claims), ``determinism`` (the kernels and batch size a published run pins, and how far
another machine moves a number), ``agreement`` (rank correlation, Kendall's W, Krippendorff's alpha, split-half reliability),
``meta_evaluation`` (MetaQuantus's model perturbation test of a metric), ``results`` (the resumable results store) and ``plots``; ``rise`` (RISE), ``methods`` (explanation methods by family, NeuroMask first), ``impact`` (Impact
Score and Impact Coverage), ``patches`` (adversarial patches), ``sanity`` (the randomisation
tests), ``wsol`` (weakly supervised localisation), ``trust`` (BAM, trojans, infidelity and
sensitivity) and ``faith`` (removal operators, ROAR, sensitivity-n, hyper-parameters) and ``leaderboard`` (every
method under every metric, the metrics' known-truth tests) belong to their chapters. Chapter modules register their methods
and metrics into the same registries when imported here.
"""
from . import (agreement, data, determinism, errors, explain, faith, impact, inference, methods, metrics, models,  # noqa: F401
               patches, results, rise, sanity, trust, variants, verdicts, wsol)
from . import leaderboard  # noqa: F401,E402 (imports the chapter modules above)

__version__ = "0.1.0"
