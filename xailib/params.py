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


def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment ending that line (tokenize, so a '#' inside a string is not one)."""
    import io
    import tokenize
    out = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return out


def declared(source: str) -> list[dict]:
    """The parameters a ``parameters`` cell declares: name, default (as written) and the comment
    on its line, in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    notes = _comments(source)
    rows = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            rows.append({"name": node.targets[0].id, "default": ast.get_source_segment(source, node.value),
                         "what it sets": notes.get(node.end_lineno, "")})
    return rows


def parameters_cell(history: list[str]) -> str:
    """The source of the ``parameters`` cell: the cell before papermill's injected one, or, when
    nothing was injected, the first cell the kernel ran."""
    for i in range(len(history) - 1, 0, -1):
        if history[i].lstrip().startswith(INJECTED):
            return history[i - 1]
    return next((h for h in history if h.strip()), "")


def table(namespace: dict | None = None, history: list[str] | None = None, width: int = 48):
    """This run's parameters beside their declared defaults and one-line docs (a DataFrame;
    "changed" marks the ones papermill set to something else)."""
    import pandas as pd
    if history is None or namespace is None:
        from IPython import get_ipython
        shell = get_ipython()
        history = list(shell.user_ns.get("In", [])) if history is None else history
        namespace = shell.user_ns if namespace is None else namespace
    given = {}
    for i in range(len(history) - 1, 0, -1):
        if history[i].lstrip().startswith(INJECTED):
            given = set(assigned_names(history[i]))
            break
    rows = declared(parameters_cell(history))
    short = lambda v: v if len(v) <= width else v[:width - 1] + "…"
    for r in rows:
        r["this run"] = short(repr(namespace.get(r["name"]))) if r["name"] in given else "(default)"
        r["default"] = short(r["default"])
    frame = pd.DataFrame(rows, columns=["name", "this run", "default", "what it sets"]).set_index("name")
    return frame
