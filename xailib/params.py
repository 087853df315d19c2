"""A chapter's parameters: the names a run may set, checked before any work is done.

papermill hands a notebook its parameters by inserting a cell, headed ``# Parameters``, right
after the cell tagged ``parameters``. A misspelled name (``-p n_imgs 4``) then only defines a
variable nobody reads, papermill prints one warning, and the chapter runs at its defaults. Each
chapter calls :func:`reject_unknown` first, which compares the names papermill injected with
the names the parameters cell declares and stops on any other, naming the closest declared one.
"""
from __future__ import annotations

import ast
import difflib

from .errors import ParameterError

INJECTED = "# Parameters"        # the first line of the cell papermill inserts


def assigned_names(source: str) -> list[str]:
    """The names a cell assigns at its top level (``a = 1``, ``a: int = 1``, ``a, b = ...``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return names


def unknown_parameters(history: list[str]) -> dict[str, str | None]:
    """{injected name: closest declared name or None} for every name in papermill's injected
    cell that the cell before it (the ``parameters`` cell) does not declare. ``history`` is the
    kernel's executed cell sources in order (IPython's ``In``)."""
    for i in range(len(history) - 1, 0, -1):
        if history[i].lstrip().startswith(INJECTED):
            declared = assigned_names(history[i - 1])
            unknown = [n for n in assigned_names(history[i]) if n not in declared]
            return {n: next(iter(difflib.get_close_matches(n, declared, n=1, cutoff=0.5)), None) for n in unknown}
    return {}


def reject_unknown(history: list[str] | None = None) -> None:
    """Stop with one sentence if the run was given a parameter the chapter does not declare.
    Without ``history``, reads the running kernel's (outside IPython there is nothing to check)."""
    if history is None:
        try:
            from IPython import get_ipython
            shell = get_ipython()
        except ImportError:
            shell = None
        if shell is None:
            return
        history = list(shell.user_ns.get("In", []))
    unknown = unknown_parameters(history)
    if unknown:
        parts = [f"{n!r}" + (f" (did you mean {close!r}?)" if close else "") for n, close in unknown.items()]
        raise ParameterError(f"unknown parameter{'s' if len(parts) > 1 else ''} {', '.join(parts)}: "
                             "this notebook does not declare it; its parameters are in its first code cell")
