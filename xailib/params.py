"""A chapter's parameters: the names a run may set, checked before any work is done.

papermill hands a notebook its parameters by inserting a cell, headed ``# Parameters``, right
after the cell tagged ``parameters``. A misspelled name (``-p n_imgs 4``) then only defines a
variable nobody reads, papermill prints one warning, and the chapter runs at its defaults. Each
chapter calls :func:`reject_unknown` first, which compares the names papermill injected with
the names the parameters cell declares and stops on any other, naming the closest declared one.

The parameters cell stays plain assignments with a one-line comment each (what papermill reads
and the reader sees). What each name accepts is declared once, next to it, as a dict of
:class:`Rule` objects handed to :func:`check`, which rejects unknown names, reads papermill's
text lists back, validates every value in one pass (all mistakes named at once) and writes the
values to use back into the notebook. :func:`table` shows the run's parameters with what each
accepts. Written by hand: papermill only warns, and the validation libraries we could use
(pydantic, attrs) would make the reader learn a schema language for twenty names.
"""
from __future__ import annotations

import ast
import difflib
from typing import Callable, Iterable

from .errors import ParameterError, check_choice, check_positive_int

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


def _injected_index(history: list[str]) -> int | None:
    """Where papermill's injected cell sits in the kernel's history (the last one), or None."""
    return next((i for i in range(len(history) - 1, 0, -1) if history[i].lstrip().startswith(INJECTED)), None)


def unknown_parameters(history: list[str]) -> dict[str, str | None]:
    """{injected name: closest declared name or None} for every name in papermill's injected
    cell that the cell before it (the ``parameters`` cell) does not declare. ``history`` is the
    kernel's executed cell sources in order (IPython's ``In``)."""
    i = _injected_index(history)
    if i is None:
        return {}
    declared = assigned_names(history[i - 1])
    unknown = [n for n in assigned_names(history[i]) if n not in declared]
    return {n: next(iter(difflib.get_close_matches(n, declared, n=1, cutoff=0.5)), None) for n in unknown}


def _history(history):
    """The running kernel's executed cells when ``history`` is None (None outside IPython)."""
    if history is not None:
        return history
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        shell = None
    return None if shell is None else list(shell.user_ns.get("In", []))


def reject_unknown(history: list[str] | None = None) -> None:
    """Stop with one sentence if the run was given a parameter the chapter does not declare.
    Without ``history``, reads the running kernel's (outside IPython there is nothing to check)."""
    history = _history(history)
    if history is None:
        return
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


def parameters_cell(history: list[str], names=None) -> str | None:
    """The source of the ``parameters`` cell: the cell before papermill's injected one. When
    nothing was injected (``history[-1]`` is the running cell): the earlier cell that assigns
    most of ``names``, the latest of equals (a runner such as nbval runs cells of its own
    first), or without ``names`` the first cell the kernel ran; None when no cell assigns any."""
    i = _injected_index(history)
    if i is not None:
        return history[i - 1]
    earlier = [h for h in history[:-1] if h.strip()]
    if names is None:
        return earlier[0] if earlier else ""
    overlap = [(len(set(names) & set(assigned_names(h))), k) for k, h in enumerate(earlier)]
    best = max(overlap, default=(0, None))
    return earlier[best[1]] if best[0] else None


def table(rules: dict | None = None, history: list[str] | None = None, width: int = 48):
    """This run's parameters (as papermill set them, or "(default)") beside their declared
    defaults, what each accepts (from ``rules``) and its one-line doc (a DataFrame)."""
    import pandas as pd
    history = _history(history) or []
    i = _injected_index(history)
    given = {r["name"]: r["default"] for r in declared(history[i])} if i is not None else {}
    rows = declared(parameters_cell(history, rules) or "")
    short = lambda v: v if len(v) <= width else v[:width - 1] + "…"
    for r in rows:
        r["this run"] = short(given[r["name"]]) if r["name"] in given else "(default)"
        r["default"] = short(r["default"])
        r["accepts"] = rules[r["name"]].accepts if rules and r["name"] in rules else ""
    columns = ["name", "this run", "default"] + (["accepts"] if rules else []) + ["what it sets"]
    return pd.DataFrame(rows, columns=columns).set_index("name")


# --- what each parameter accepts ------------------------------------------------------------

def _literal(name, value):
    """papermill's ``-p`` hands a list or dict over as its text: read it back."""
    if isinstance(value, str) and value.strip().startswith(("[", "{")):
        try:
            return ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            hint = (f"; lists and dicts go with papermill's -y as YAML, e.g. -y \"{name}: {value.strip()}\""
                    if "'" not in value and '"' not in value else "")
            raise ParameterError(f"{name}={value!r} is not a readable list or dict{hint}") from None
    return value


class Rule:
    """What one parameter accepts: ``accepts`` says it in words (the parameter table shows it);
    ``read(name, value, ns)`` returns the value to use, or raises :class:`ParameterError`.
    ``ns`` holds the values already read, in the order of the rules, so a rule may depend on an
    earlier parameter (``image_size`` on ``model_names``)."""
    accepts = "anything"

    def read(self, name, value, ns):
        return value


class Any(Rule):
    def __init__(self, accepts="anything"):
        self.accepts = accepts


class Int(Rule):
    def __init__(self, minimum=1):
        self.minimum, self.accepts = minimum, f"an integer >= {minimum}"

    def read(self, name, value, ns):
        check_positive_int(name, value, self.minimum)
        return value


class Number(Rule):
    """A number in [low, high]; ``above=True`` excludes ``low`` (a fraction of 0 removes nothing)."""
    def __init__(self, low=0.0, high=1.0, above=False):
        self.low, self.high, self.above = low, high, above
        self.accepts = f"a number in {'(' if above else '['}{low}, {high}]"

    def read(self, name, value, ns):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
            (value > self.low if self.above else value >= self.low) and value <= self.high
        if not ok:
            raise ParameterError(f"{name}={value!r} must be {self.accepts}")
        return value


class Flag(Rule):
    accepts = "True or False"

    def read(self, name, value, ns):
        if not isinstance(value, bool):
            raise ParameterError(f"{name}={value!r} must be True or False")
        return value


class Text(Rule):
    accepts = "a path or name (text)"

    def read(self, name, value, ns):
        if not isinstance(value, str):
            raise ParameterError(f"{name}={value!r} must be text")
        return value


class File(Rule):
    """The path of a file that exists, checked with the parameters so that a mistyped path stops
    the run before any work, not after minutes of it."""
    accepts = "the path of an existing file"

    def read(self, name, value, ns):
        Text().read(name, value, ns)
        from pathlib import Path
        if not Path(value).expanduser().is_file():
            raise ParameterError(f"{name}: {value} does not exist (no such file; check the path you gave)")
        return value


class Choice(Rule):
    """One of ``values`` (a collection, or a function of the values read so far)."""
    def __init__(self, values: Iterable | Callable, accepts: str | None = None):
        self.values = values
        self.accepts = accepts or ("one of " + ", ".join(map(repr, values)))

    def read(self, name, value, ns):
        check_choice(name, value, self.values(ns) if callable(self.values) else self.values)
        return value


class Maybe(Rule):
    """None, or what ``rule`` accepts."""
    def __init__(self, rule: Rule, none: str = "None"):
        self.rule, self.accepts = rule, f"{none}, or {rule.accepts}"

    def read(self, name, value, ns):
        return None if value is None else self.rule.read(name, value, ns)


class ListOf(Rule):
    """A list whose items ``rule`` accepts; one item alone is a list of one. ``keywords`` are
    words that stand for a list ({"all": [...]}, or a function of the values read so far)."""
    def __init__(self, rule: Rule, keywords: dict | None = None, minimum: int = 1):
        self.rule, self.keywords, self.minimum = rule, keywords or {}, minimum
        words = " or ".join(map(repr, self.keywords))
        self.accepts = (f"{words}, or " if words else "") + f"a list, each {rule.accepts}"

    def read(self, name, value, ns):
        value = _literal(name, value)
        if isinstance(value, str) and value in self.keywords:
            value = self.keywords[value]
            value = value(ns) if callable(value) else value
        if not isinstance(value, (list, tuple)):
            value = [value]
        value = [self.rule.read(name, v, ns) for v in value]
        if len(value) < self.minimum:
            raise ParameterError(f"{name}={value!r} must name at least {self.minimum}")
        return value


class DictOf(Rule):
    """A dict whose keys and values the two rules accept."""
    def __init__(self, keys: Rule, values: Rule):
        self.keys, self.values = keys, values
        self.accepts = f"a dict {{{keys.accepts}: {values.accepts}}}"

    def read(self, name, value, ns):
        value = _literal(name, value)
        if not isinstance(value, dict):
            raise ParameterError(f"{name}={value!r} must be a dict")
        return {self.keys.read(name, k, ns): self.values.read(f"{name}[{k!r}]", v, ns) for k, v in value.items()}


class PerModel(Rule):
    """One value for every model, or a dict {model name: value} with an entry for each of
    ``model_names``; read as the dict."""
    def __init__(self, rule: Rule):
        self.rule, self.accepts = rule, f"{rule.accepts}, or a dict of one per model"

    def read(self, name, value, ns):
        value = _literal(name, value)
        models = ns.get("model_names", [])
        if not isinstance(value, dict):
            value = {m: value for m in models}
        for m in models:
            if m not in value:
                raise ParameterError(f"{name} has no entry for model {m!r}: {value}")
        return {k: self.rule.read(f"{name}[{k!r}]", v, ns) for k, v in value.items()}


class Check(Rule):
    """Anything else: ``fn(name, value, ns)`` returns the value to use or raises."""
    def __init__(self, fn: Callable, accepts: str):
        self.fn, self.accepts = fn, accepts

    def read(self, name, value, ns):
        return self.fn(name, _literal(name, value), ns)


def check(rules: dict[str, Rule], namespace: dict | None = None, history: list[str] | None = None) -> dict:
    """Check a chapter's parameters before any work: stop on a name the chapter does not declare
    (:func:`reject_unknown`), then read every declared parameter with its rule, in the order of
    ``rules``, and stop with every mistake named at once. The values to use (lists read from
    papermill's text, keywords expanded) are written back into ``namespace`` (the notebook's,
    by default) and returned as a dict.

    Every name of the ``parameters`` cell must have a rule and every rule a declared name: a
    chapter cannot add a parameter that nothing checks."""
    history = _history(history)
    if namespace is None:
        from IPython import get_ipython
        namespace = get_ipython().user_ns
    if history is not None:
        reject_unknown(history)
        cell = parameters_cell(history, rules)
        names = [r["name"] for r in declared(cell)] if cell is not None else list(rules)
        unruled = [n for n in names if n not in rules]
        undeclared = [n for n in rules if n not in names]
        if unruled or undeclared:
            raise RuntimeError(f"the chapter's rules do not match its parameters cell: no rule for "
                               f"{unruled}, no parameter for {undeclared}")
    values, problems = {}, []
    for name, rule in rules.items():
        try:
            values[name] = rule.read(name, namespace[name], values)
        except ParameterError as e:
            problems.append(str(e))
        except KeyError:
            problems.append(f"{name} is not set")
    if problems:
        raise ParameterError("; ".join(problems))
    namespace.update(values)
    return values


def require(condition: bool, message: str) -> None:
    """A rule between parameters (``n_show`` at most ``n_explain``): stop with ``message``."""
    if not condition:
        raise ParameterError(message)


def common_rules() -> dict[str, Rule]:
    """The parameters every chapter shares: the data, the models, the device and where missing maps
    are computed (:mod:`xailib.map_store`), in the order they are read (``image_size`` after ``model_names``, which it is checked against)."""
    from . import data, inference, models

    def image_size(name, value, ns):
        Int(minimum=1).read(name, value, ns)
        for model in ns.get("model_names", []):
            models.check_image_size(model, value)
        return value

    def device(name, value, ns):
        return models.resolve_device(value)

    return {
        "dataset": Choice(data.DATASETS),
        "data_root": Maybe(Text(), none="None (the embedded benchmark)"),
        "annotations": Maybe(Text()),
        "model_names": ListOf(Choice(models.MODEL_NAMES, accepts="a name in xailib.models.MODEL_NAMES")),
        "image_size": Check(image_size, "the side the models expect (64 for the benchmark's)"),
        "weights": DictOf(Choice(lambda ns: ns.get("model_names", []), accepts="one of model_names"), File()),
        "device": Check(device, "'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"),
        "precision": Choice(inference.PRECISIONS),
        "scheduler": scheduler_rule(),
        "seed": Int(minimum=0),
    }


def methods_rule(keywords: dict | None = None) -> ListOf:
    """A list of registered explanation methods, with "all" for every one of them but the
    learned masks (:func:`xailib.methods.method_names`)."""
    from .methods import METHODS, method_names
    return ListOf(Choice(METHODS, accepts="a method of xailib.methods' registry"),
                  keywords={"all": lambda ns: method_names(), **(keywords or {})})


def method_params_rule() -> Check:
    """{method: {its parameter: value}}, every method registered and every parameter its own."""
    from .methods import METHODS
    from .errors import check_unknown_keys
    methods = DictOf(Choice(METHODS, accepts="a registered method"), Any())

    def read(name, value, ns):
        value = methods.read(name, value, ns)
        for method, given in value.items():
            if not isinstance(given, dict):
                raise ParameterError(f"{name}[{method!r}]={given!r} must be a dict of the method's parameters")
            check_unknown_keys(f"method {method!r} in {name}", given, METHODS[method].defaults)
        return value
    return Check(read, "a dict {method: {its parameter: value}}")


def removal_rule() -> Check:
    """What "removing" pixels does: one of the shared operators (:mod:`xailib.metrics.removal`)."""
    from .metrics import removal

    def read(name, value, ns):
        try:
            removal.check_removal(value)
        except ParameterError as e:
            raise ParameterError(str(e).replace("removal=", f"{name}=", 1)) from None
        return value
    return Check(read, f"{', '.join(map(repr, sorted(removal.OPERATORS)))}, or a grey value in [0, 1]")


def scheduler_rule() -> Check:
    """Where a chapter's missing maps and scores, its shards and its independent tasks are computed
    (:mod:`xailib.map_store`, :mod:`xailib.shards`): None (``$XAILIB_SCHEDULER``, else this
    process), 'local:N' or a scheduler address."""
    from .shards import resolve_scheduler

    def read(name, value, ns):
        if value is not None and not isinstance(value, str):
            raise ParameterError(f"{name}={value!r} is not accepted; use None, 'local:N' or 'tcp://host:port'")
        return resolve_scheduler(value)
    return Check(read, accepts="None ($XAILIB_SCHEDULER, else this process), 'local:N' or 'tcp://host:port'")
