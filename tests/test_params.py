"""A chapter's parameters: undeclared names are caught, the declared ones are tabulated."""
import pytest

from xailib import params
from xailib.errors import ParameterError

CELL = '''# Data
dataset = "shapes"        # "shapes", or "a # b" (a '#' inside a string is not a comment)
n_images = 16             # images per model
model_names = ["vgg_mini", "resnet_mini"]
'''


def test_undeclared_names_are_found_with_the_closest_declared_one():
    history = ["", CELL, "# Parameters\nn_imgs = 4\nmodel_names = ['vgg_mini']\n", "import x"]
    assert params.unknown_parameters(history) == {"n_imgs": "n_images"}
    with pytest.raises(ParameterError, match="unknown parameter 'n_imgs' \\(did you mean 'n_images'\\?\\)"):
        params.reject_unknown(history)
    assert params.unknown_parameters(["", CELL, "# Parameters\nzzz = 1\n"]) == {"zzz": None}
    params.reject_unknown(["", CELL, "# Parameters\nn_images = 4\n"])       # declared: no error
    params.reject_unknown(["", CELL, "import x"])                            # nothing injected: nothing to check


def test_the_parameter_table_reads_the_declaration():
    history = ["", CELL, "# Parameters\nn_images = 4\n", "x"]
    t = params.table(None, history)
    assert list(t.index) == ["dataset", "n_images", "model_names"]
    assert t.loc["n_images", "this run"] == "4" and t.loc["dataset", "this run"] == "(default)"
    assert t.loc["dataset", "default"] == '"shapes"'
    assert t.loc["dataset", "what it sets"].startswith('"shapes", or "a # b"')
    assert t.loc["n_images", "what it sets"] == "images per model"
    assert params.assigned_names("a, (b, c) = 1, (2, 3)\nd: int = 4\ne += 1\n") == ["a", "b", "c", "d", "e"]


RULES_CELL = '''dataset = "shapes"
n_images = 16             # images per model
methods = "all"
model_names = ["vgg_mini"]
n_masks = 1000
fraction = 0.1
'''


def _rules():
    return {"dataset": params.Choice(("shapes", "imagenet")), "n_images": params.Int(),
            "methods": params.ListOf(params.Choice(("a", "b", "c")), keywords={"all": ["a", "b", "c"]}),
            "model_names": params.ListOf(params.Choice(("vgg_mini", "resnet_mini"))),
            "n_masks": params.PerModel(params.Int()), "fraction": params.Number(0, 1, above=True)}


def test_check_reads_every_value_with_its_rule_and_writes_back_what_to_use():
    ns = dict(dataset="shapes", n_images=16, methods="all", model_names='["vgg_mini", "resnet_mini"]',
              n_masks=500, fraction=0.1)
    history = ["", RULES_CELL, "# Parameters\nmodel_names = '[\"vgg_mini\", \"resnet_mini\"]'\nn_masks = 500\n"]
    values = params.check(_rules(), ns, history)
    assert values["methods"] == ["a", "b", "c"]                        # the keyword expanded
    assert values["model_names"] == ["vgg_mini", "resnet_mini"]        # papermill's text read back
    assert values["n_masks"] == {"vgg_mini": 500, "resnet_mini": 500}  # one value for every model
    assert ns["methods"] == ["a", "b", "c"] and ns["n_masks"] == values["n_masks"]
    t = params.table(_rules(), history)
    assert t.loc["n_masks", "this run"] == "500" and t.loc["n_images", "this run"] == "(default)"
    assert t.loc["fraction", "accepts"] == "a number in (0, 1]"
    assert t.loc["methods", "accepts"] == "'all', or a list, each one of 'a', 'b', 'c'"


def test_check_names_every_bad_value_at_once_and_changes_nothing():
    ns = dict(dataset="mnist", n_images=0, methods=["a", "z"], model_names=["vgg_mini"],
              n_masks={"resnet_mini": 10}, fraction=0.0)
    with pytest.raises(ParameterError) as err:
        params.check(_rules(), ns, ["", RULES_CELL])
    msg = str(err.value)
    for part in ("dataset='mnist' is not accepted; choose one of: 'shapes', 'imagenet'",
                 "n_images=0 must be an integer >= 1", "methods='z' is not accepted",
                 "n_masks has no entry for model 'vgg_mini'", "fraction=0.0 must be a number in (0, 1]"):
        assert part in msg
    assert ns["methods"] == ["a", "z"]                 # nothing written back when anything is wrong
    with pytest.raises(ParameterError, match="unknown parameter 'n_imgs'"):     # before any value
        params.check(_rules(), dict(ns), ["", RULES_CELL, "# Parameters\nn_imgs = 3\n"])


def test_rules_and_the_parameters_cell_must_name_the_same_parameters():
    ns = dict(dataset="shapes", n_images=16, methods="all", model_names=["vgg_mini"], n_masks=1, fraction=0.1)
    rules = _rules()
    del rules["fraction"]
    for history in (["", RULES_CELL, "check(RULES)"],                  # run cell by cell (In[-1]: this cell)
                    ["", "%matplotlib inline", RULES_CELL, "x = 1", "check(RULES)"]):   # a runner's own cells too
        with pytest.raises(RuntimeError, match=r"no rule for \['fraction'\]"):
            params.check(rules, dict(ns), history)
        with pytest.raises(RuntimeError, match=r"no parameter for \['extra'\]"):
            params.check({**_rules(), "extra": params.Int()}, dict(ns), history)
        params.check(_rules(), dict(ns), history)                          # matching: no error


@pytest.mark.parametrize("rule,good,bad", [
    (params.Int(minimum=0), [0, 5], [-1, 1.5, True, "3"]),
    (params.Number(0, 1), [0, 0.5, 1], [-0.1, 1.01, "0.5", False]),
    (params.Flag(), [True, False], [1, "True"]),
    (params.Maybe(params.Int()), [None, 3], [0]),
    (params.DictOf(params.Choice("ab"), params.Int()), [{"a": 1}, "{'b': 2}"], [{"c": 1}, {"a": 0}, [1]]),
    (params.ListOf(params.Int(), minimum=2), [[1, 2], "[3, 4]"], [[1], [1, 0], "[1, "]),
])
def test_each_rule_accepts_what_it_says_and_rejects_the_rest(rule, good, bad):
    for v in good:
        rule.read("x", v, {})
    for v in bad:
        with pytest.raises(ParameterError, match="x"):
            rule.read("x", v, {})


def test_what_a_new_user_mistypes_gets_a_remedy(tmp_path):
    """A misspelled method or model name gets the closest one; a list passed with -p is told to go
    with -y; an empty list is accepted where the chapter can skip the comparison; a weights path
    that does not exist stops at the parameters, before any work."""
    with pytest.raises(ParameterError, match=r"methods='gradcm' is not accepted \(did you mean 'gradcam'\?\)"):
        params.methods_rule().read("methods", ["gradient", "gradcm"], {})
    rules = params.common_rules()
    with pytest.raises(ParameterError, match=r"model_names='vgg_mni' is not accepted \(did you mean 'vgg_mini'\?\)"):
        rules["model_names"].read("model_names", "vgg_mni", {})
    with pytest.raises(ParameterError, match=r"is not a readable list or dict; lists and dicts go with papermill's -y "
                                             r"as YAML, e.g. -y \"methods: \[gradient, lime\]\""):
        params.methods_rule().read("methods", "[gradient, lime]", {})
    assert params.ListOf(params.Int(), minimum=0).read("alternatives", [], {}) == []
    ns = {"model_names": ["vgg_mini"]}
    with pytest.raises(ParameterError, match=r"weights\['vgg_mini'\]: /nonexistent/vgg.pt does not exist"):
        rules["weights"].read("weights", {"vgg_mini": "/nonexistent/vgg.pt"}, ns)
    real = tmp_path / "vgg.pt"
    real.write_bytes(b"x")
    assert rules["weights"].read("weights", {"vgg_mini": str(real)}, ns) == {"vgg_mini": str(real)}
    # -p model_names vgg_mini and -y "model_names: [vgg_mini]" are read alike (one cache key)
    assert rules["model_names"].read("model_names", "vgg_mini", {}) == \
        rules["model_names"].read("model_names", ["vgg_mini"], {})


def test_papermill_reads_every_declared_parameter_of_every_chapter():
    """papermill parses the parameters cell to name what it injects; a comment it cannot parse
    ("(0 = all)", "N = 8000") made it warn "Unable to parse line" and "unknown parameter" for a
    parameter the chapter declares."""
    import json
    from pathlib import Path

    from papermill.translators import PythonTranslator
    for nb in sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb")):
        cell = next(c for c in json.loads(nb.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
        source = "".join(cell["source"])
        read = [p.name for p in PythonTranslator.inspect({"source": source})]
        assert read == [d["name"] for d in params.declared(source)], nb.name


def _committed_runs():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "scripts" / "larger_run.py"
    spec = importlib.util.spec_from_file_location("larger_run", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return ([(f"larger {nb}", nb, p) for nb, p in mod.LARGER.items()]
            + [(f"real {nb}", nb, {**mod.PHOTOS, **p}) for nb, p in mod.REAL.items()])


@pytest.mark.parametrize("label,notebook,overrides", _committed_runs(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_committed_runs_parameters_pass_their_chapters_rules(label, notebook, overrides):
    """scripts/larger_run.py's parameters for each committed run (larger, and on the real network)
    are read by the chapter's own rules before any work: a value the chapter refuses is found here
    in a second, not after an hour's run (08's ``bam_models=[]`` was refused by its rule while the
    chapter's own message said it skips BAM)."""
    import json
    from pathlib import Path
    nb = json.loads((Path(__file__).resolve().parent.parent / "notebooks" / f"{notebook}.ipynb").read_text())
    cells = [("".join(c["source"]), c["metadata"].get("tags", [])) for c in nb["cells"] if c["cell_type"] == "code"]
    parameters = next(s for s, tags in cells if "parameters" in tags)
    setup = next(s for s, tags in cells if "RULES = {" in s)
    upto = setup.index("check(RULES)") + len("check(RULES)")
    line_start = setup.rfind("\n", 0, setup.index("check(RULES)")) + 1
    ns = {}
    exec(parameters, ns)
    ns.update(overrides)
    exec(setup[:line_start], ns)                 # imports and the rules, no work
    params.check(ns["RULES"], ns)
    assert setup[line_start:upto].strip().endswith("check(RULES)")
