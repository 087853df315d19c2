"""Metrics, one module per family, and one interface to score:
``score(model, images, targets, maps, metric, **params) -> (B,)``.

- :mod:`~xailib.metrics.registry`: the registry (:data:`METRICS`, :func:`register`) and
  :func:`score`, the thesis's *Evaluator*;
- :mod:`~xailib.metrics.causal`: deletion, insertion and ROAD (the output as pixels are removed);
- :mod:`~xailib.metrics.impact`: Impact Score and Impact Coverage (Lin et al. 2019);
- :mod:`~xailib.metrics.localisation`: boxes, masks, regions, mask energy and the pointing game,
  and relevance mass / rank accuracy and attribution localisation (Arras et al., Kohlbrenner et al.);
- :mod:`~xailib.metrics.faithfulness`: infidelity and sensitivity-n, faithfulness correlation,
  monotonicity correlation and region perturbation (MoRF, LeRF);
- :mod:`~xailib.metrics.robustness`: max- and average sensitivity, the local Lipschitz estimate,
  relative input / output stability, and the hyper-parameter sensitivity;
- :mod:`~xailib.metrics.complexity`: roughness, sparseness, complexity and effective complexity;
- :mod:`~xailib.metrics.similarity` and :mod:`~xailib.metrics.randomisation`: the sanity checks'
  comparisons of maps and randomised networks (not registered: they compare two maps), and the
  random logit test (registered);
- :mod:`~xailib.metrics.removal`, :mod:`~xailib.metrics.order`, :mod:`~xailib.metrics.draws`:
  what every perturbation metric shares (the removal operator, the order of tied pixels, the
  per-image random draws), and :mod:`~xailib.metrics.shared`: the work kept from one call to
  the next (the robustness metrics' perturbed explanations, monotonicity correlation's passes).
"""
from . import causal, complexity, faithfulness, impact, localisation, randomisation, robustness  # noqa: F401
from .causal import ROAD_PERCENTILES, causal_curves, road_scores  # noqa: F401
from .order import saliency_order  # noqa: F401
from ..methods.registry import reorder
from .registry import METRICS, Evaluator, Metric, register, score  # noqa: F401
from .removal import blur, blur_kernel, check_removal, fill_image, remove  # noqa: F401

# The order the book's tables list the metrics in: the order in which the chapters added them.
reorder(METRICS, ("mask_energy", "deletion", "insertion", "road_morf", "road_lerf", "road_combined", "pointing_game",
                  "roughness", "infidelity", "sensitivity_n", "box_iou", "box_accuracy", "pxap", "region_mean",
                  "top_k_iou", "max_sensitivity", "impact", "impact_strict", "impact_coverage"))
