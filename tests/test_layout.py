"""The package's layout: two layers, no circles, the book's code on the new places only.

The import graph is read from the source (every ``import`` and ``from ... import`` of xailib,
inside functions too), not from what happens to be loaded, so a lazy import that closes a circle
or reaches up into a chapter's plumbing fails here.
"""
import ast
import json
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xailib"
CHAPTERS = "xailib.chapters"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(name: str) -> bool:
    p = ROOT / name.replace(".", "/")
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def imports_of(path: Path) -> set:
    """The xailib modules ``path`` imports (a name imported from a package counts as the module
    of that name when there is one, else as the package)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "xailib":
                continue
            for alias in node.names:
                out.add(f"{mod}.{alias.name}" if _exists(f"{mod}.{alias.name}") else mod)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "xailib"}
    out.discard(name)
    return out


def import_graph() -> dict:
    """{module: the xailib modules it imports} for every module of the package."""
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan), or a self-loop."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def is_chapter(module: str) -> bool:
    return module.startswith(CHAPTERS + ".")


def test_the_graph_reader_sees_a_circle_and_an_upward_arrow():
    """The checks below can fail: a made-up graph with both faults is caught."""
    graph = {"xailib.a": {"xailib.b"}, "xailib.b": {"xailib.a", "xailib.chapters.x"}, "xailib.chapters.x": set()}
    assert cycles(graph) == [["xailib.a", "xailib.b"]]
    assert [m for m, deps in graph.items() if not is_chapter(m) and any(map(is_chapter, deps))] == ["xailib.b"]


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert len(graph) > 40                    # it read the package, subpackages included
    assert "xailib.metrics.causal" in graph["xailib.metrics"]
    assert sorted({d for deps in graph.values() for d in deps} - set(graph)) == []   # every import resolves
    assert cycles(graph) == []


def test_no_library_module_imports_a_chapters_plumbing():
    graph = import_graph()
    upward = {m: sorted(d for d in deps if is_chapter(d)) for m, deps in graph.items()
              if not is_chapter(m) and m != CHAPTERS}
    assert {m: d for m, d in upward.items() if d} == {}


def test_no_chapter_imports_another_chapters_plumbing():
    graph = import_graph()
    chapters = [m for m in graph if is_chapter(m)]
    assert len(chapters) >= 8
    assert {m: sorted(d for d in graph[m] if is_chapter(d)) for m in chapters
            if any(is_chapter(d) for d in graph[m])} == {}


def _book_code():
    """(file, code) of every notebook (its code cells, and the examples in its text), script,
    test and page but this file and the one that holds the old names."""
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        yield nb.name, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] in ("code", "markdown"))
    for page in sorted([*(ROOT / "book").rglob("*.md"), ROOT / "README.md"]):
        yield page.name, page.read_text()
    for py in sorted([*(ROOT / "scripts").glob("*.py"), *(ROOT / "tests").glob("*.py"), *PACKAGE.rglob("*.py")]):
        if py.name not in ("test_layout.py", "_moved.py"):
            yield py.name, py.read_text()


BASELINE = "# noqa: E402  baseline layout"   # bench.py's import of a commit from before the layout


def test_the_book_uses_the_new_places_only():
    from xailib._moved import MOVED, MOVED_NAMES
    old = {m.split(".")[-1] for m in MOVED if m.count(".") == 1}
    found = []
    for name, code in _book_code():
        code = "\n".join(line for line in code.splitlines() if not line.endswith(BASELINE))
        for m in re.finditer(r"from xailib import \(?([^)\n]*)", code):
            names = {n.strip().split(" ")[0] for n in m.group(1).split(",")}
            found += [f"{name}: xailib.{n}" for n in names & old]
        found += [f"{name}: {m.group(1)}" for m in re.finditer(r"(?:from|import) (xailib\.[\w.]+)", code)
                  if m.group(1) in MOVED or any(m.group(1).startswith(k + ".") for k in MOVED)]
        found += [f"{name}: xailib.methods.{m.group(1)}"
                  for m in re.finditer(r"from xailib\.methods import [^\n]*?\b(neuromask|perturbation)\b", code)]
        for module, names in MOVED_NAMES.items():
            found += [f"{name}: {module}.{n}" for n in names if re.search(rf"\b{module.split('.')[-1]}\.{n}\b", code)]
    assert found == []


@pytest.mark.parametrize("old, name, new", [
    ("xailib.explain", "explain", "xailib.methods"),
    ("xailib.faith", "roar_comparison", "xailib.chapters.faithfulness"),
    ("xailib.sanity", "_Lazy", "xailib.map_cache"),
    ("xailib.sanity", "model_tests", "xailib.chapters.sanity_checks"),
    ("xailib.trust", "bam_rows", "xailib.known_truth"),
    ("xailib.rise", "find_normalization", "xailib.models"),
    ("xailib.methods.neuromask", "get_setting", "xailib.methods.learned_masks"),
])
def test_an_old_place_still_gives_the_name_with_a_warning(old, name, new):
    import importlib
    import sys
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=re.escape(old)):
        module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=re.escape(f"{old}.{name}")):
        value = getattr(module, name)
    target = importlib.import_module(new)
    assert value is getattr(target, "Lazy" if name == "_Lazy" else name)


def test_a_moved_name_of_a_kept_module_warns_and_an_unknown_one_is_an_error():
    from xailib import data, variants
    with pytest.warns(DeprecationWarning, match="xailib.variants.load_digits moved to xailib.data"):
        assert variants.load_digits is data.load_digits
    from xailib import plots
    from xailib.chapters import rise
    with pytest.warns(DeprecationWarning, match="xailib.plots.causal_curves moved to xailib.chapters.rise"):
        assert plots.causal_curves is rise.causal_curves
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        variants.nothing
    import xailib.explain as old
    with pytest.raises(AttributeError, match="moved to"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old.nothing


def test_the_registries_keep_the_books_order():
    """Splitting the methods and metrics into families leaves the order every table lists them in."""
    from xailib import methods, metrics
    assert list(methods.METHODS)[:14] == [
        "gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "guided_backprop", "deconvolution",
        "deeplift", "expected_gradients", "lrp_epsilon", "gradcam", "guided_gradcam", "occlusion", "lime",
        "kernel_shap"]
    assert list(metrics.METRICS)[:3] == ["mask_energy", "deletion", "insertion"]
    families = {m.fn.__module__.rsplit(".", 1)[-1] for m in methods.METHODS.values()}
    assert families == {"gradients", "path", "backprop", "cam", "occlusion", "surrogates", "controls",
                        "learned_masks", "rise"}
