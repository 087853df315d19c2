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
    t = params.table({"n_images": 4, "dataset": "shapes"}, history)
    assert list(t.index) == ["dataset", "n_images", "model_names"]
    assert t.loc["n_images", "this run"] == "4" and t.loc["dataset", "this run"] == "(default)"
    assert t.loc["dataset", "default"] == '"shapes"'
    assert t.loc["dataset", "what it sets"].startswith('"shapes", or "a # b"')
    assert t.loc["n_images", "what it sets"] == "images per model"
    assert params.assigned_names("a, (b, c) = 1, (2, 3)\nd: int = 4\ne += 1\n") == ["a", "b", "c", "d", "e"]
