"""Adversarial patches: exact placement, training that must move the patch the right way, files."""
import json
import math

import numpy as np
import pytest
import torch
from matplotlib.path import Path as Polygon
from torch import nn

from xailib import patches
from xailib.errors import MissingResourceError, ParameterError

SCALES = (0.3, 0.4, 0.5, 0.6, 0.7)
ANGLES = (0.0, 30.0, 45.0, 90.0, 137.0, -100.0)


def _placement(size, angle_deg, cx, cy):
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731
    return patches.Placement(t(size), t(math.radians(angle_deg)), t(cx), t(cy))


def _expected_square(size, angle_deg, cx, cy, side=64):
    """Pixels whose centres lie in the rotated square, by a polygon test (matplotlib)."""
    a = math.radians(angle_deg)
    h = size / 2
    # corners of the unrotated square, rotated counter-clockwise as displayed (y points down)
    corners = [(cx + x * math.cos(a) + y * math.sin(a), cy - x * math.sin(a) + y * math.cos(a))
               for x, y in ((-h, -h), (h, -h), (h, h), (-h, h))]
    jj, ii = np.meshgrid(np.arange(side) + 0.5, np.arange(side) + 0.5)
    inside = Polygon(corners).contains_points(np.c_[jj.ravel(), ii.ravel()])
    return torch.from_numpy(inside.reshape(side, side))


def _expected_disc(size, cx, cy, side=64):
    ii, jj = np.mgrid[0:side, 0:side]
    return torch.from_numpy((jj + 0.5 - cx) ** 2 + (ii + 0.5 - cy) ** 2 <= (size / 2) ** 2)


@pytest.mark.parametrize("scale", SCALES)
def test_footprint_is_exactly_the_expected_pixels(scale):
    size = float(patches.footprint_size(scale, (64, 64)))
    assert size == pytest.approx(64 * scale)
    img = torch.zeros(1, 3, 64, 64)
    patch = torch.ones(3, 8, 8)
    for angle in ANGLES:
        cx, cy = 31.37, 33.81  # no pixel centre on a boundary at these scales
        for shape, want in (("square", _expected_square(size, angle, cx, cy)),
                            ("circle", _expected_disc(size, cx, cy))):
            # (a large rotated square pokes out of the image: both sides clip it the same way)
            out, mask = patches.apply_patch(img, patch, _placement(size, angle, cx, cy), shape)
            assert torch.equal(mask[0], want), (shape, scale, angle)
            # the patch's pixels (all ones) are exactly the masked ones
            assert torch.equal(out[0, 0] > 0.999, want)


def test_axis_aligned_square_covers_an_exact_block_at_every_right_angle():
    img = torch.zeros(1, 3, 64, 64)
    for angle in (0, 90, 180, 270):
        _, mask = patches.apply_patch(img, torch.ones(3, 4, 4), _placement(32, angle, 32, 32), "square")
        block = torch.zeros(64, 64, dtype=torch.bool)
        block[16:48, 16:48] = True
        assert torch.equal(mask[0], block)


def test_patch_content_lands_unchanged_and_rotates():
    torch.manual_seed(0)
    P = torch.rand(3, 8, 8)
    img = torch.rand(1, 3, 32, 32)
    out, mask = patches.apply_patch(img, P, _placement(8, 0, 12, 20), "square")
    torch.testing.assert_close(out[0, :, 16:24, 8:16], P, atol=1e-6, rtol=0)   # rows 16-23, cols 8-15
    assert torch.equal(out[0][:, ~mask[0]], img[0][:, ~mask[0]])              # nothing else moves
    for k in (1, 2, 3):                                                       # 90, 180, 270 degrees
        out, _ = patches.apply_patch(img, P, _placement(8, 90 * k, 12, 20), "square")
        torch.testing.assert_close(out[0, :, 16:24, 8:16], torch.rot90(P, k, (1, 2)), atol=1e-5, rtol=0)


def test_area_mode_covers_the_requested_share_of_the_image():
    for scale in SCALES:
        for shape in ("circle", "square"):
            size = float(patches.footprint_size(scale, (64, 64), shape, "area"))
            _, mask = patches.apply_patch(torch.zeros(1, 3, 64, 64), torch.ones(3, 4, 4),
                                          _placement(size, 0, 32, 32), shape)
            if shape == "circle":
                assert mask.float().mean().item() == pytest.approx(scale, abs=0.01)
    with pytest.raises(ParameterError, match="does not fit"):    # a rotated square of area 0.7
        patches.random_placement(1, 0.7, (64, 64), torch.Generator(), "square", "area")


def test_random_placement_stays_inside_and_is_seeded():
    for scale in SCALES:
        pl = patches.random_placement(200, scale, (64, 64), torch.Generator().manual_seed(1))
        r = pl.size / 2
        assert torch.all(pl.cx - r >= 0) and torch.all(pl.cx + r <= 64)
        assert torch.all(pl.cy - r >= 0) and torch.all(pl.cy + r <= 64)
        assert pl.angle.min() < -2.5 and pl.angle.max() > 2.5           # rotations all round
        mask = patches.footprint(pl, (64, 64))
        # a disc fully inside covers the same number of pixels wherever it is (up to the grid)
        area = math.pi * (scale * 32) ** 2
        assert (mask.flatten(1).sum(1).double() - area).abs().max() < 2 * math.pi * scale * 32
    a = patches.random_placement(5, (0.3, 0.7), (64, 64), torch.Generator().manual_seed(3))
    b = patches.random_placement(5, (0.3, 0.7), (64, 64), torch.Generator().manual_seed(3))
    assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("size", "angle", "cx", "cy"))
    assert (a.size >= 0.3 * 64).all() and (a.size <= 0.7 * 64).all()


class RedVsGreen(nn.Module):
    """Class 1's logit is 20 * mean(red - green) over the image; class 0's is 0. A patch pushes
    the decision to class 1 only if training makes it red and not green."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x):
        d = 20 * (x[:, 0] - x[:, 1]).flatten(1).mean(1)
        return torch.stack([torch.zeros_like(d), d], 1)


def test_training_moves_the_patch_towards_the_target():
    torch.manual_seed(0)
    model = RedVsGreen()
    images = torch.full((64, 3, 32, 32), 0.5)
    images[:, 1] = 0.6                                    # slightly green: class 0 everywhere
    labels = torch.zeros(64, dtype=torch.long)
    cfg = patches.PatchConfig(target=1, patch_size=8, steps=40, batch_size=8, lr=0.1,
                              scale_range=(0.5, 0.7), shape="square")
    patch, log = patches.train_patch(model, images, labels, cfg)
    assert patch.shape == (3, 8, 8) and patch.min() >= 0 and patch.max() <= 1
    assert patch[0].mean() > 0.95 and patch[1].mean() < 0.05     # red up, green down
    _, masks, pred, _ = patches.attack(model, images, patch, 0.6, seed=0, shape="square")
    assert (pred == 1).all() and masks.any()
    # the same seed gives the same patch
    again, _ = patches.train_patch(model, images, labels, cfg)
    assert torch.equal(patch, again)
    with pytest.raises(ParameterError, match="target=5 is not a class"):
        patches.train_patch(model, images, labels, patches.PatchConfig(target=5, steps=1))


def test_save_and_load_round_trip(tmp_path):
    patch = torch.rand(3, 16, 16)
    patches.save_patch(patch, {"model": "toy", "target": 3}, tmp_path / "toy")
    back, card = patches.load_patch(tmp_path / "toy")
    assert torch.equal(back, patch) and card["target"] == 3 and len(card["sha256"]) == 64
    card_file = tmp_path / "toy.json"
    assert json.loads(card_file.read_text())["file"] == "toy.pt"
    torch.save(torch.zeros(3, 16, 16), tmp_path / "toy.pt")           # tampered
    with pytest.raises(MissingResourceError, match="does not match the sha256"):
        patches.load_patch(tmp_path / "toy")
    with pytest.raises(MissingResourceError, match="train_patches.py"):
        patches.load_patch("no_such_model", directory=tmp_path)


def test_drawn_object_is_the_first_named_target_object_cropped_to_its_box():
    from torch import nn

    from xailib import patches as P

    class SaysOne(nn.Module):
        def forward(self, x):
            return torch.stack([torch.zeros(len(x)), torch.ones(len(x))], 1)
    images = torch.zeros(3, 3, 8, 8)
    images[2, :, 2:6, 3:5] = 1.0                         # the object of the second class-1 image
    masks = images[:, 0] > 0
    labels = torch.tensor([0, 1, 1])
    masks[1] = False
    masks[1, 0, 0] = True                                # the first class-1 image: a one-pixel object
    images[1, :, 0, 0] = 0.5
    d = P.drawn_object(SaysOne(), images, labels, masks, 1, (4, 4))
    assert d.shape == (3, 4, 4) and torch.allclose(d, torch.full((3, 4, 4), 0.5))   # image 1's box, resized
    assert P.drawn_object(SaysOne(), images, labels, None, 1, (4, 4)) is None
    assert P.drawn_object(SaysOne(), images, labels, masks, 0, (4, 4)) is None        # never named class 0
