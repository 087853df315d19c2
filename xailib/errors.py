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


def check_values(name: str, values, *, low: float | None = None, high: float | None = None,
                 ndim: int | tuple | None = None, empty: bool = False, missing: bool = False):
    """``values`` (a number, array or tensor) as a float64 numpy array, or one ParameterError that
    names the argument and its first bad value: NaN (unless ``missing``: NaN then stands for a
    missing value and passes), an infinity, a value outside [``low``, ``high``], a wrong number of
    dimensions (``ndim``: one int or a tuple of them), or no value at all (unless ``empty``)."""
    import numpy as np
    if hasattr(values, "detach"):                  # a torch tensor, on any device
        values = values.detach().cpu().double().numpy()
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ParameterError(f"{name} must be numbers, got {type(values).__name__}: {err}") from None
    if ndim is not None and v.ndim not in ((ndim,) if isinstance(ndim, int) else tuple(ndim)):
        raise ParameterError(f"{name} must have {ndim} dimension(s), got shape {v.shape}")
    if not empty and v.size == 0:
        raise ParameterError(f"{name} is empty")
    bad = np.isinf(v) if missing else ~np.isfinite(v)
    if low is not None:
        bad |= np.isfinite(v) & (v < low)
    if high is not None:
        bad |= np.isfinite(v) & (v > high)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0]) if v.ndim else ()
        value = float(v[where]) if v.ndim else float(v)
        limits = ("" if low is None and high is None else
                  f" (values must lie in [{'-inf' if low is None else low}, {'inf' if high is None else high}])")
        at = f" at index {where if len(where) > 1 else where[0]}" if where else ""
        shown = "NaN" if np.isnan(value) else repr(value)
        raise ParameterError(f"{name} has the value {shown}{at}{limits}; "
                             f"{int(bad.sum())} of {v.size} value(s) are not accepted")
    return v
