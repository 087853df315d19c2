"""The score interface and its first metric, on hand-made cases with known answers."""
import pytest
import torch

from xailib import metrics
from xailib.errors import ParameterError


def _mask():
    m = torch.zeros(2, 4, 4, dtype=torch.bool)
    m[:, 1:3, 1:3] = True          # a 2 x 2 object: a quarter of the image
    return m


def test_mask_energy_known_answers():
    masks = _mask()
    images = torch.rand(2, 3, 4, 4)
    perfect = masks.float()
    assert metrics.score(None, images, 0, perfect, "mask_energy", masks=masks).tolist() == [1.0, 1.0]
    outside = (~masks).float()
    assert metrics.score(None, images, 0, outside, "mask_energy", masks=masks).tolist() == [0.0, 0.0]
    uniform = torch.ones(2, 4, 4)
    assert metrics.score(None, images, 0, uniform, "mask_energy", masks=masks).tolist() == [0.25, 0.25]
    # negative saliency is ignored; a map with nothing positive scores 0
    signed = perfect - 5 * outside
    mixed = torch.stack([signed[0], -torch.ones(4, 4)])
    assert metrics.score(None, images, 0, mixed, "mask_energy", masks=masks).tolist() == [1.0, 0.0]
    # 3 units inside, 1 outside -> 0.75
    hand = torch.zeros(2, 4, 4)
    hand[:, 1, 1], hand[:, 0, 0] = 3.0, 1.0
    torch.testing.assert_close(metrics.score(None, images, 0, hand, "mask_energy", masks=masks),
                               torch.tensor([0.75, 0.75], dtype=torch.float64))


def test_score_is_invariant_to_positive_scaling():
    masks = _mask()
    s = torch.rand(2, 4, 4)
    a = metrics.score(None, torch.rand(2, 3, 4, 4), 0, s, "mask_energy", masks=masks)
    b = metrics.score(None, torch.rand(2, 3, 4, 4), 0, 7.5 * s, "mask_energy", masks=masks)
    torch.testing.assert_close(a, b)


def test_evaluator_and_errors():
    masks = _mask()
    ev = metrics.Evaluator(None, "mask_energy", masks=masks)
    assert ev.higher_is_better
    assert ev(torch.rand(2, 3, 4, 4), 0, masks.float()).tolist() == [1.0, 1.0]
    with pytest.raises(ParameterError, match="metric='auc' is not accepted.*'mask_energy'"):
        metrics.score(None, torch.rand(2, 3, 4, 4), 0, masks.float(), "auc")
    with pytest.raises(ParameterError, match="needs masks="):
        metrics.score(None, torch.rand(2, 3, 4, 4), 0, masks.float(), "mask_energy")
    with pytest.raises(ParameterError, match="maps must be"):
        metrics.score(None, torch.rand(2, 3, 4, 4), 0, torch.rand(2, 5, 5), "mask_energy", masks=masks)
    with pytest.raises(ParameterError, match="unknown parameter"):
        metrics.Evaluator(None, "mask_energy", threshold=0.5)


def test_list_and_dict_parameters_from_papermill_text():
    from xailib.params import DictOf, Int, ListOf, Text
    assert ListOf(Text()).read("m", '["resnet50", "vgg16"]', {}) == ["resnet50", "vgg16"]
    assert ListOf(Text()).read("m", "vgg_mini", {}) == ["vgg_mini"] and ListOf(Text()).read("m", ("a", "b"), {}) == ["a", "b"]
    assert DictOf(Text(), Int()).read("n", '{"resnet50": 8000}', {}) == {"resnet50": 8000}
    with pytest.raises(ParameterError, match="is not a readable list"):
        ListOf(Text()).read("m", "[resnet50", {})
    with pytest.raises(ParameterError, match="must be a dict"):
        DictOf(Text(), Int()).read("n", 5, {})
