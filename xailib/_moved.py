"""The names the 2026-12 layout moved, importable from their old places for one more release.

``import xailib.faith`` (or ``from xailib.sanity import Maps``) still works: the old module name
gives a stand-in module that finds each name in the modules it moved to, with a
:class:`DeprecationWarning` saying where it lives now. The book's own code uses the new places
only (a test checks it); the stand-ins go with the next release.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

# old module -> (the modules its names moved to, in the order they are searched; renamed names)
MOVED = {
    "xailib.explain": (("xailib.methods", "xailib.methods.registry", "xailib.methods.gradients", "xailib.methods.path",
                        "xailib.methods.backprop", "xailib.methods.cam", "xailib.methods.occlusion",
                        "xailib.methods.surrogates"), {}),
    "xailib.rise": (("xailib.methods.rise", "xailib.models"), {}),
    "xailib.impact": (("xailib.metrics.impact", "xailib.chapters.impact_score"), {}),
    "xailib.faith": (("xailib.chapters.faithfulness",), {}),
    "xailib.wsol": (("xailib.chapters.localisation",), {}),
    "xailib.trust": (("xailib.known_truth", "xailib.chapters.trustworthiness"), {}),
    "xailib.sanity": (("xailib.map_cache", "xailib.chapters.sanity_checks"), {"_Lazy": "Lazy"}),
    "xailib.leaderboard": (("xailib.chapters.leaderboard",), {}),
    "xailib.methods.neuromask": (("xailib.methods.learned_masks",), {}),
    "xailib.methods.perturbation": (("xailib.methods.learned_masks",), {}),
}
# names that left a module that is still there: module -> {name: new module, or "module:new name"}
MOVED_NAMES = {
    "xailib.variants": {"load_digits": "xailib.data", "DIGIT_SPLITS": "xailib.data", "_box": "xailib.data:mask_box"},
    "xailib.plots": {"_hwc": "xailib.plots:to_hwc", "_image_grid": "xailib.plots:image_grid",
                     "_display_map": "xailib.plots:show_map",
                     **dict.fromkeys(("causal_curves", "example_curves", "mask_sweep"), "xailib.chapters.rise"),
                     "impact_examples": "xailib.chapters.impact_score",
                     "patch_regions": "xailib.chapters.adversarial_patch",
                     **dict.fromkeys(("learning_progress", "sweep_heatmaps"), "xailib.chapters.neuromask"),
                     **dict.fromkeys(("cascade_grid", "randomisation_curves"), "xailib.chapters.sanity_checks"),
                     **dict.fromkeys(("wsol_boxes", "threshold_curves"), "xailib.chapters.localisation"),
                     **dict.fromkeys(("roar_curves", "sensitivity_n_curves", "removal_row"), "xailib.chapters.faithfulness"),
                     **dict.fromkeys(("agreement_heatmaps", "cost_quality"), "xailib.chapters.leaderboard")},
}


def _where(old: str, name: str):
    targets, renamed = MOVED[old]
    new_name = renamed.get(name, name)
    for target in targets:
        module = importlib.import_module(target)
        if hasattr(module, new_name):
            return target, new_name, getattr(module, new_name)
    raise AttributeError(f"module {old!r} has no attribute {name!r} (it moved to {', '.join(targets)})")


def stand_in(old: str) -> types.ModuleType:
    """The stand-in module for ``old``: each name looked up where it moved to, with a warning."""
    module = types.ModuleType(old, f"Moved: see {', '.join(MOVED[old][0])}.")

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        target, new_name, value = _where(old, name)
        warnings.warn(f"{old}.{name} moved to {target}.{new_name}; the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return value
    module.__getattr__ = __getattr__
    return module


def names_getattr(module_name: str):
    """A module ``__getattr__`` (PEP 562) for :data:`MOVED_NAMES`: the moved name, with a warning."""
    def __getattr__(name):
        new = MOVED_NAMES[module_name].get(name)
        if new is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        module, _, new_name = new.partition(":")        # "module:new_name" where it was renamed
        warnings.warn(f"{module_name}.{name} moved to {module}.{new_name or name}; the old name goes in the next "
                      "release", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), new_name or name)
    return __getattr__


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module names of :data:`MOVED` and loads their stand-ins."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {', '.join(MOVED[spec.name][0])}; the old name goes in the next "
                      "release", DeprecationWarning, stacklevel=2)
        return stand_in(spec.name)

    def exec_module(self, module):
        pass


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
