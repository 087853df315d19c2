"""Known-answer and property tests for the shapes benchmark."""
import numpy as np
import pytest
import torch

from xailib import data
from xailib.errors import ParameterError


def test_axis_aligned_square_covers_exactly_its_pixels():
    # The square's corners sit on the unit circle at 45 degrees: radius 10*sqrt(2) and no
    # rotation give a 20 x 20 square whose edges fall on pixel boundaries.
    cov = data.object_coverage(data.SHAPE_CLASSES.index("square"), 32, 32, 10 * np.sqrt(2), 0.0, 64)
    mask = cov >= 0.5
    assert mask.sum() == 400
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (22, 41, 22, 41)
    assert cov[23:41, 23:41].min() == 1.0 and cov[:21].max() == 0.0


@pytest.mark.parametrize("radius", [10.0, 15.5])
def test_circle_area_matches_pi_r_squared(radius):
    # PIL fills boundary sub-pixels too, so a small circle comes out ~1 % large at 4x supersampling
    cov = data.object_coverage(data.SHAPE_CLASSES.index("circle"), 32.3, 30.7, radius, 0.3, 64)
    assert cov.sum() == pytest.approx(np.pi * radius ** 2, rel=0.02)


def test_ring_has_a_hole_and_rotation_keeps_area():
    ring = data.object_coverage(data.SHAPE_CLASSES.index("ring"), 32, 32, 14, 0.0, 64)
    assert ring[32, 32] == 0 and ring[32, 32 + 12] == 1
    assert ring.sum() == pytest.approx(np.pi * 14 ** 2 * (1 - 0.55 ** 2), rel=0.02)
    star = data.SHAPE_CLASSES.index("star")
    a0 = data.object_coverage(star, 32, 32, 15, 0.0, 64).sum()
    a1 = data.object_coverage(star, 32, 32, 15, 1.0, 64).sum()
    assert a0 == pytest.approx(a1, rel=0.01)


def test_rendered_mask_box_and_colour_match_the_drawn_object():
    for index in range(20):
        s = data.render_shape_image(0, "test", index)
        spec = s["spec"]
        cov = data.object_coverage(s["label"], spec["cx"], spec["cy"], spec["radius"], spec["angle"], 64)
        np.testing.assert_array_equal(s["mask"], cov >= 0.5)
        ys, xs = np.nonzero(s["mask"])
        np.testing.assert_array_equal(s["box"], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        # the box lies within the object's bounding circle
        r = spec["radius"]
        assert s["box"][0] >= spec["cx"] - r - 1 and s["box"][2] <= spec["cx"] + r + 1
        # fully covered pixels show the object colour (up to the 0.03 pixel noise)
        inside = s["image"][cov == 1.0] / 255.0
        np.testing.assert_allclose(inside.mean(0), spec["colour"], atol=0.02)


def test_images_are_a_pure_function_of_seed_split_index():
    a = data.render_shape_image(3, "train", 7)
    b = data.render_shape_image(3, "train", 7)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert not np.array_equal(a["image"], data.render_shape_image(3, "train", 8)["image"])
    assert not np.array_equal(a["image"], data.render_shape_image(3, "val", 7)["image"])
    assert not np.array_equal(a["image"], data.render_shape_image(4, "train", 7)["image"])


def test_load_shapes_split_is_fixed_and_consistent(tmp_path, monkeypatch):
    monkeypatch.setenv("XAILIB_CACHE", str(tmp_path))
    full = data.load_shapes("val")
    head = data.load_shapes("val", n=10)
    assert len(full) == data.SPLITS["val"] and len(head) == 10
    torch.testing.assert_close(full.images[:10], head.images)
    assert full.images.dtype == torch.float32 and 0 <= full.images.min() and full.images.max() <= 1
    assert set(full.labels.tolist()) == set(range(10))
    # the cached copy equals a fresh drawing
    s = data.render_shape_image(0, "val", 5)
    np.testing.assert_array_equal((full.images[5].permute(1, 2, 0) * 255).round().byte().numpy(), s["image"])
    np.testing.assert_array_equal(full.masks[5].numpy(), s["mask"])
    for m, b in zip(full.masks[:50], full.boxes[:50]):
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert b[0].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    sub = full.subset([3, 1])
    assert sub.labels.tolist() == [full.labels[3].item(), full.labels[1].item()]


def test_load_shapes_rejects_bad_parameters():
    with pytest.raises(ParameterError, match="split='dev'.*'train', 'val', 'test'"):
        data.load_shapes("dev")
    with pytest.raises(ParameterError, match="n=5000 is larger than the test split"):
        data.load_shapes("test", n=5000)
    with pytest.raises(ParameterError, match="size=8 must be an integer >= 32"):
        data.load_shapes("test", size=8)


def test_the_photographs_carry_their_drawn_labels_and_boxes():
    import json
    ps = data.load_dataset("photos", size=112)
    notes = json.loads(data.PHOTOS.read_text())["photos"]
    assert len(ps) == len(notes) == 8 and ps.images.shape == (8, 3, 112, 112)
    assert 0 <= ps.images.min() and ps.images.max() <= 1 and len(ps.class_names) == 1000
    for i, r in enumerate(notes):
        assert int(ps.labels[i]) == r["label"] in r["accepted"]
        x0, y0, x1, y1 = ps.boxes[i][0].tolist()
        assert 0 <= x0 < x1 <= 112 and 0 <= y0 < y1 <= 112
        ys, xs = torch.nonzero(ps.masks[i], as_tuple=True)          # the mask is the box
        assert abs(xs.min() - x0) <= 1 and abs(xs.max() + 1 - x1) <= 1 and abs(ys.min() - y0) <= 1
    assert ps.info["photos"][0] == "chelsea" and ps.class_names[int(ps.labels[0])] == "tabby"
    assert len(data.load_dataset("photos", n=3)) == 3
    # a class naming the same object counts as right (the annotation's accepted list), no other does
    predicted = ps.labels.clone()
    predicted[0], predicted[1] = 285, 285                    # chelsea an Egyptian cat; the coffee too
    assert ps.correct(predicted).tolist() == [True, False] + [True] * 6
    assert ps.correct(ps.labels).all()
    sub = ps.subset([2, 0])                                  # per-image lists and rows follow a subset
    assert sub.info["photos"] == ["rocket", "chelsea"] and sub.correct(torch.tensor([657, 283])).tolist() == [True, True]
    shapes = data.load_shapes("test", n=4)
    assert shapes.correct(shapes.labels).all() and not shapes.correct((shapes.labels + 1) % 10).any()
    with pytest.raises(ParameterError, match="size"):
        data.load_photos(size=4)
