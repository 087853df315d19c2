"""Clear errors for bad parameters and missing resources.

Every public entry point of xailib validates its arguments with these helpers, so that a
notebook run with a wrong parameter stops with one sentence naming the parameter and the
accepted values instead of a traceback from deep inside torch.
"""
from __future__ import annotations

from typing import Iterable


class ParameterError(ValueError):
    """A parameter has a value xailib does not accept."""


class MissingResourceError(FileNotFoundError):
    """A file a real-data path needs (weights, an image folder, annotations) is absent."""


def check_choice(name: str, value, choices: Iterable) -> None:
    choices = list(choices)
    if value not in choices:
        import difflib
        close = difflib.get_close_matches(value, [c for c in choices if isinstance(c, str)], n=1, cutoff=0.6) \
            if isinstance(value, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(
            f"{name}={value!r} is not accepted{hint}; choose one of: {', '.join(map(repr, choices))}"
        )


def check_positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(f"{name}={value!r} must be an integer >= {minimum}")


def check_fraction(name: str, value, low: float = 0.0, high: float = 1.0) -> None:
    if not isinstance(value, (int, float)) or not (low <= float(value) <= high):
        raise ParameterError(f"{name}={value!r} must be a number in [{low}, {high}]")


def check_unknown_keys(what: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        acc = ", ".join(sorted(accepted)) or "(none)"
        raise ParameterError(f"unknown parameter(s) for {what}: {', '.join(unknown)}; accepted: {acc}")
