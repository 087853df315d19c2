"""Localisation scores (xailib.metrics.localisation): known boxes, IoUs, PxAP and region scores."""
import numpy as np
import pytest
import torch

from xailib.errors import ParameterError
from xailib.metrics import localisation as loc
from xailib.metrics import score

X = torch.zeros(1, 3, 64, 64)


def two_blocks():
    """A map with a 10 x 20 block at 1.0 and a 5 x 10 block at 0.5, apart; a negative corner."""
    m = torch.zeros(1, 64, 64)
    m[0, 10:20, 10:30] = 1.0
    m[0, 40:45, 40:50] = 0.5
    m[0, 60:, 60:] = -3.0
    return m


def test_boxes_follow_the_threshold_and_the_component_rule():
    m = two_blocks()
    np.testing.assert_array_equal(loc.boxes(m, 0.2, "largest"), [[10, 10, 30, 20]])
    np.testing.assert_array_equal(loc.boxes(m, 0.2, "all"), [[10, 10, 50, 45]])
    np.testing.assert_array_equal(loc.boxes(m, 0.6, "all"), [[10, 10, 30, 20]])
    # strictly above the threshold (Choe et al.'s cv2 threshold, CAM's "above 20 %"): at 0 the positive
    # pixels, not every pixel; the 0.5 block is not above 0.5
    np.testing.assert_array_equal(loc.boxes(m, 0.0, "all"), [[10, 10, 50, 45]])
    np.testing.assert_array_equal(loc.boxes(m, 0.5, "all"), [[10, 10, 30, 20]])
    np.testing.assert_array_equal(loc.boxes(torch.zeros(1, 64, 64), 0.5), [[0, 0, 0, 0]])   # nothing selected
    with pytest.raises(ParameterError, match="component"):
        loc.boxes(m, 0.2, "each")                     # one box per image only


def test_an_empty_or_negative_map_selects_nothing_at_any_threshold():
    """Issue 29: at threshold 0 a dead map (all zero, or all negative) once selected every pixel
    (">= 0") and a dead Grad-CAM map got IoU 0.375 on a box of that share; now it selects nothing."""
    gt = [torch.tensor([[0.0, 0, 64, 24]])] * 2                     # 24 / 64 = 0.375 of the image
    dead = torch.stack([torch.zeros(64, 64), -torch.rand(64, 64)])
    for c in loc.COMPONENTS:
        np.testing.assert_array_equal(loc.box_ious(dead, gt, [0.0, 0.2], c), np.zeros((2, 2)))


def test_known_ious_at_each_threshold():
    gt = [torch.tensor([[10.0, 10, 30, 20]])]
    ious = loc.box_ious(two_blocks(), gt, [0.2, 0.5, 0.6], "all")
    np.testing.assert_allclose(ious, [[200 / (40 * 35), 1.0, 1.0]])
    np.testing.assert_allclose(loc.box_ious(two_blocks(), gt, [0.2], "largest"), [[1.0]])
    # several ground-truth boxes: the best one counts (Choe et al.)
    two = [torch.tensor([[0.0, 0, 5, 5], [10, 10, 30, 20]])]
    np.testing.assert_allclose(loc.box_ious(two_blocks(), two, [0.6]), [[1.0]])
    # the max box (the whole image) scores the box's share of the image
    np.testing.assert_allclose(loc.box_ious(torch.ones(1, 64, 64), gt, [0.0, 0.5]), [[200 / 4096] * 2])


def test_iou_by_hand():
    np.testing.assert_allclose(loc.iou(np.array([0, 0, 10, 10]), np.array([[5, 5, 15, 15]])), [25 / 175])
    np.testing.assert_allclose(loc.iou(np.array([0, 0, 10, 10]), np.array([[20, 20, 30, 30]])), [0.0])


def test_box_accuracy_is_iou_at_least_half():
    gt = [torch.tensor([[10.0, 10, 30, 20]])]
    assert score(None, X, None, two_blocks(), "box_accuracy", boxes=gt).item() == 1.0
    assert score(None, X, None, two_blocks(), "box_accuracy", boxes=gt, component="all").item() == 0.0
    assert score(None, X, None, two_blocks(), "box_iou", boxes=gt, component="all").item() == pytest.approx(1 / 7)


def test_heldout_box_acc_chooses_the_threshold_on_the_held_out_split():
    val = np.array([[0.1, 0.9, 0.2], [0.2, 0.8, 0.1]])    # threshold 1 is best on the held-out images
    test = np.array([[0.9, 0.3, 0.9], [0.9, 0.6, 0.9]])   # ... though threshold 0 would be best here
    t, hits = loc.heldout_box_acc(val, test, 0.5, thresholds=[0.0, 0.1, 0.2])
    assert t == 0.1
    np.testing.assert_array_equal(hits, [0.0, 1.0])
    # Choe et al.'s MaxBoxAcc: the best threshold on the images scored (the lowest among ties)
    assert loc.max_box_acc(test, 0.5, thresholds=[0.0, 0.1, 0.2]) == (0.0, 1.0)
    assert loc.max_box_acc(val, 0.5, thresholds=[0.0, 0.1, 0.2]) == (0.1, 1.0)
    assert loc.max_box_acc(test, 0.95, thresholds=[0.0, 0.1, 0.2]) == (0.0, 0.0)


def test_each_component_keeps_the_best_matching_box():
    """MaxBoxAccV2's multi-contour rule: a box per connected component, the best match counts."""
    small = [torch.tensor([[40.0, 40, 50, 45]])]                    # the ground truth is the small block
    m = two_blocks()
    assert loc.box_ious(m, small, [0.2], "largest")[0, 0] == 0.0     # CAM's rule boxes the big block
    assert loc.box_ious(m, small, [0.2], "each")[0, 0] == 1.0
    assert loc.box_ious(m, small, [0.2], "all")[0, 0] == pytest.approx(50 / 1400)


def test_half_open_boxes_give_choes_inclusive_iou():
    """Choe et al.'s IoU takes inclusive pixel boxes with areas (x1 - x0 + 1)(y1 - y0 + 1); the
    book's half-open boxes of the same pixels give the same IoU (their formula, written out)."""
    def choe(a, b):                       # wsolevaluation's calculate_multiple_iou, for one pair
        x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
        inter = max(0, x1 - x0 + 1) * max(0, y1 - y0 + 1)
        area = lambda c: (c[2] - c[0] + 1) * (c[3] - c[1] + 1)   # noqa: E731
        return inter / (area(a) + area(b) - inter)
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b = (np.sort(rng.integers(0, 64, (2, 2)), 0).T.ravel()[[0, 2, 1, 3]] for _ in range(2))
        half_open = lambda c: np.array([c[0], c[1], c[2] + 1, c[3] + 1], float)   # noqa: E731
        assert loc.iou(half_open(a), half_open(b)[None])[0] == pytest.approx(choe(a, b))


def test_pxap_of_the_mask_is_one_and_of_a_constant_map_the_object_share():
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, 10:20, 10:30] = True
    masks[1, :32] = True
    x = torch.zeros(2, 3, 64, 64)
    np.testing.assert_allclose(score(None, x, None, masks.float(), "pxap", masks=masks), [1.0, 1.0])
    np.testing.assert_allclose(score(None, x, None, torch.ones(2, 64, 64), "pxap", masks=masks), [200 / 4096, 0.5])
    assert loc.pxap_pooled(torch.ones(2, 64, 64), masks) == pytest.approx((200 + 2048) / 8192)
    assert loc.pxap_pooled(masks.float() * 5, masks) == pytest.approx(1.0)


def test_pxap_ignores_the_negative_part_and_the_scale():
    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 10:20, 10:30] = True
    m = two_blocks()
    a = score(None, X, None, m, "pxap", masks=masks)
    assert score(None, X, None, m * 7, "pxap", masks=masks) == pytest.approx(a.item())
    assert a.item() == pytest.approx(1.0)


def test_region_scores():
    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 40:45, 40:50] = True
    assert score(None, X, None, two_blocks(), "region_mean", masks=masks).item() == pytest.approx(0.5)
    assert score(None, X, None, torch.zeros(1, 64, 64), "region_mean", masks=masks).item() == 0.0
    # the 50 highest pixels of the map are the big block's first 50 (ties by index): no overlap
    assert score(None, X, None, two_blocks(), "top_k_iou", masks=masks).item() == 0.0
    m = torch.zeros(1, 64, 64)
    m[0, 40:45, 40:50] = 1
    assert score(None, X, None, m, "top_k_iou", masks=masks).item() == 1.0
    assert score(None, X, None, m, "top_k_iou", masks=masks, k=100).item() == pytest.approx(0.5)


def test_normalise_is_positive_part_min_max():
    out = loc.normalise(torch.tensor([[[-2.0, 0.0], [1.0, 3.0]]]))
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.0], [1 / 3, 1.0]]], dtype=torch.float64))
    assert loc.normalise(torch.full((1, 2, 2), -1.0)).abs().sum() == 0
    assert (loc.normalise(torch.full((1, 2, 2), 2.0)) == 1).all()      # flat: every pixel at the maximum


@pytest.mark.parametrize("metric, kw, match", [
    ("box_iou", dict(boxes=[torch.zeros(1, 4)] * 2), "one \\(k, 4\\) box array per image"),
    ("box_iou", dict(boxes=[torch.tensor([[0.0, 0, 5, 5]])], threshold=1.5), "threshold"),
    ("box_iou", dict(boxes=[torch.tensor([[0.0, 0, 5, 5]])], component="biggest"), "component"),
    ("box_accuracy", dict(boxes=[torch.tensor([[0.0, 0, 5, 5]])], iou=0), "iou"),
    ("pxap", dict(masks=torch.zeros(1, 64, 64, dtype=torch.bool)), "an object in every image"),
    ("pxap", dict(masks=torch.zeros(1, 32, 32, dtype=torch.bool)), "must match maps"),
    ("region_mean", dict(masks=torch.zeros(1, 64, 64, dtype=torch.bool)), "at least one pixel"),
    ("top_k_iou", dict(masks=torch.ones(1, 64, 64, dtype=torch.bool), k=0), "k=0"),
    ("pxap", dict(), "needs masks="),
])
def test_bad_input(metric, kw, match):
    with pytest.raises(ParameterError, match=match):
        score(None, X, None, two_blocks(), metric, **kw)


def test_roughness_known_answers():
    flat = torch.ones(1, 64, 64)
    ramp = torch.linspace(0, 1, 64, dtype=torch.float64).expand(1, 64, 64)      # linear: its Laplacian is 0
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None]) % 2).float()[None]
    r = lambda m: score(None, X, None, m, "roughness").item()    # noqa: E731
    assert r(flat) == 0 and r(ramp) == pytest.approx(0, abs=1e-9)
    assert r(checker) == pytest.approx(4.0)              # each interior pixel: |4 * (+-1)|
    assert r(3 * checker + 1) == pytest.approx(4.0)       # the scale does not count
