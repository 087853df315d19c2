"""Known answers for the calibration of a removal (xailib.calibration)."""
import pytest
import torch
from torch import nn

from xailib import calibration
from xailib.errors import ParameterError


class Brightness(nn.Module):
    """Class 1 when the image's mean is above 0.25, else class 0: zero fill always gives class 0,
    and any blur keeps the mean, so it never changes the decision."""
    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([0.25 - m, m - 0.25], 1) * 10


def test_a_blur_that_keeps_the_decision_is_degenerate_and_zero_fill_is_not():
    torch.manual_seed(0)
    x = torch.rand(20, 3, 16, 16) * 0.2 + torch.arange(20).view(20, 1, 1, 1) % 2 * 0.5   # means 0.1 and 0.6
    y = (x.mean((1, 2, 3)) > 0.25).long()
    t = calibration.full_removal({"net": Brightness().eval()}, x, y, removals=("zero", "blur"),
                                 blur_sigmas=(None, 3.0)).set_index("removal")
    assert t.loc["zero", "accuracy, all removed"] == pytest.approx(0.5)       # every image becomes class 0
    assert t.loc["zero", "clean accuracy"] == 1.0 and t.loc["zero", "chance"] == 0.5
    blurs = t[t.index.str.startswith("blur")]
    assert len(blurs) == 2 and (blurs["accuracy, all removed"] == 1.0).all() and blurs.degenerate.all()
    assert "sigma 3" in " ".join(blurs.index)
    assert bool(t.loc["zero", "degenerate"])        # 50 % correct is the threshold itself
    strict = calibration.full_removal({"net": Brightness().eval()}, x, y, removals=("zero",), threshold=0.6)
    assert not strict.degenerate.any()


def test_bad_input():
    net = {"net": Brightness().eval()}
    with pytest.raises(ParameterError, match="road"):
        calibration.full_removal(net, torch.rand(2, 3, 8, 8), torch.tensor([0, 1]), removals=("road",))
    with pytest.raises(ParameterError, match="labels"):
        calibration.full_removal(net, torch.rand(2, 3, 8, 8), torch.tensor([0]))
    with pytest.raises(ParameterError, match="no images"):
        calibration.full_removal(net, torch.rand(0, 3, 8, 8), torch.tensor([], dtype=torch.long))
    with pytest.raises(ParameterError):
        calibration.full_removal(net, torch.rand(2, 3, 8, 8), torch.tensor([0, 1]), removals=("smudge",))


def test_a_degenerate_setting_names_its_reason_for_the_claims_on_it():
    torch.manual_seed(0)
    x = torch.rand(20, 3, 16, 16) * 0.2 + torch.arange(20).view(20, 1, 1, 1) % 2 * 0.5
    y = (x.mean((1, 2, 3)) > 0.25).long()
    t = calibration.full_removal({"net": Brightness().eval()}, x, y, removals=("zero", "blur"), threshold=0.6)
    why = calibration.reasons(t)
    assert set(why) == {("net", "blur")}                                   # zero fill removes; the blur does not
    assert why["net", "blur"].startswith("full removal (blur") and "100 % of net's test images" in why["net", "blur"]
    assert calibration.summary(t).startswith("Degenerate, no verdict rests on them: blur")
    assert calibration.summary(t[~t.degenerate]).startswith("Every operator removes what it should")
