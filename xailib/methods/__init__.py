"""Explanation methods, one module per family, as Captum lays them out.

The registry is :data:`METHODS` (with :func:`register` and :func:`method_names`); the interface
that runs any of them is :func:`xailib.explain.explain`. The methods of chapters 01-04 are still
defined in :mod:`xailib.explain` (captum, lime and shap wrappers) and :mod:`xailib.rise`; the
chapters from NeuroMask on add theirs here, and the older ones move here as they are touched.
"""
from ..explain import METHODS, method_names, register  # noqa: F401
from . import controls, neuromask, perturbation  # noqa: F401  (register "edge", "neuromask", "extremal_perturbation")
