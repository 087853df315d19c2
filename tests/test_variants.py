"""Benchmark variants and the model zoo: ground truth known by construction, checked."""
import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

from xailib import data, models, variants
from xailib.errors import ParameterError
from xailib.train import ZOO_RECIPES, accuracy, train_zoo_model


def test_bam_object_and_scene_are_independent():
    bam = variants.load_variant("bam", "test", n=400)
    table = np.zeros((10, 4), dtype=int)
    for o, s in zip(bam.labels.tolist(), bam.info["scene_labels"].tolist()):
        table[o, s] += 1
    assert (table == 10).all()        # every pair equally often: the contingency is flat
    scene = variants.for_task(bam, "scene")
    assert scene.class_names == list(variants.SCENE_CLASSES)
    assert torch.equal(scene.labels, bam.info["scene_labels"])


def test_subsets_carry_their_per_image_ground_truth():
    bam = variants.load_variant("bam", "test", n=60)
    sub = bam.subset([0, 11, 22, 33])
    assert sub.info["scene_labels"].tolist() == [0, 1, 2, 3]
    troj = variants.load_variant("trojan", "test", n=10, trigger="random")
    assert torch.equal(troj.subset([3, 7]).info["trigger_masks"], troj.info["trigger_masks"][[3, 7]])


def test_bam_scene_is_the_drawn_background_kind():
    rng_img = variants.render_bam(0, "test", 13)
    assert variants.bam_labels(13) == (3, 1) and rng_img["scene"] == 1


@pytest.mark.parametrize("trigger", variants.TRIGGERS)
def test_trojan_trigger_sits_where_its_mask_says(trigger):
    clean = data.load_shapes("train", n=300)
    troj = variants.load_variant("trojan", "train", n=300, trigger=trigger)
    tm, poisoned = troj.info["trigger_masks"], troj.info["poisoned"]
    pattern = variants.trigger_pattern()
    assert 0.05 < poisoned.float().mean() < 0.15
    for i in torch.nonzero(poisoned)[:, 0].tolist():
        ys, xs = torch.nonzero(tm[i], as_tuple=True)
        r, c = int(ys.min()), int(xs.min())
        assert tm[i].sum() == variants.TRIGGER_SIZE ** 2
        assert torch.equal(troj.images[i, :, r:r + 6, c:c + 6], pattern)
        assert (r, c) == variants.trigger_corner(trigger, 0, "train", i)
        assert troj.labels[i] == variants.TROJAN_TARGET != clean.labels[i]
    outside = ~tm[:, None].expand_as(troj.images)
    assert torch.equal(troj.images[outside], clean.images[outside])      # nothing else touched
    assert torch.equal(troj.labels[~poisoned], clean.labels[~poisoned])
    corners = {variants.trigger_corner(trigger, 0, "train", i) for i in range(50)}
    assert (len(corners) == 1) == (trigger == "fixed")


def test_trojan_test_split_keeps_true_labels():
    troj = variants.load_variant("trojan", "test", n=50, trigger="random")
    assert troj.info["poisoned"].all()                    # poison defaults to 1.0 off the train split
    assert torch.equal(troj.labels, data.load_shapes("test", n=50).labels)


def test_multi_object_masks_and_boxes_match_the_drawn_objects():
    multi = variants.load_variant("multi", "test", n=60)
    other = multi.info["other_masks"]
    assert (multi.labels != multi.info["other_labels"]).all()
    for i in range(len(multi)):
        m = multi.masks[i]
        assert m.any() and other[i].any() and not (m & other[i]).any()
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert multi.boxes[i][0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        # inside the target, one colour plus the drawing noise (sigma 0.03): the object is there
        inner = torch.from_numpy(binary_erosion(m.numpy(), iterations=1))
        if inner.sum() > 4:
            assert multi.images[i][:, inner].std(1).max() < 0.06


def test_small_objects_cover_one_to_three_percent():
    small = variants.load_variant("small", "test", n=200)
    share = small.masks.flatten(1).float().mean(1)
    assert share.min() >= 0.005 and share.max() <= 0.035
    assert 0.012 < share.mean() < 0.028


def test_permuted_labels_are_a_permutation():
    perm = variants.load_variant("permuted", "train", n=500)
    true = perm.info["true_labels"]
    assert torch.equal(perm.labels.sort().values, true.sort().values)
    assert torch.equal(perm.labels, true[perm.info["permutation"]])
    assert (perm.labels == true).float().mean() < 0.3
    assert torch.equal(variants.load_variant("permuted", "train", n=500).labels, perm.labels)


def test_digits_load_with_the_right_shape_and_labels():
    from sklearn.datasets import load_digits
    sk = load_digits()
    sets = {s: data.load_digits(s) for s in data.DIGIT_SPLITS}
    assert sets["test"].images.shape == (300, 3, 64, 64)
    assert sum(len(s) for s in sets.values()) == len(sk.target)
    assert sorted(torch.cat([s.labels for s in sets.values()]).tolist()) == sorted(sk.target.tolist())
    idx = np.random.default_rng(0).permutation(len(sk.target))[0]     # the first training image
    back = torch.nn.functional.avg_pool2d(sets["train"].images[:1, :1], 8).flatten()  # to 8 x 8
    orig = torch.from_numpy(sk.images[idx] / 16).float().flatten()
    assert torch.corrcoef(torch.stack([back, orig]))[0, 1] > 0.9
    assert sets["train"].labels[0] == sk.target[idx]


def test_bad_variant_parameters():
    with pytest.raises(ParameterError, match="variant"):
        variants.load_variant("mosaic")
    with pytest.raises(ParameterError, match="trigger"):
        variants.load_variant("trojan", "test", n=4, trigger="corner")
    with pytest.raises(ParameterError, match="poison"):
        variants.load_variant("trojan", "test", n=4, poison=1.5)
    with pytest.raises(ParameterError, match="larger"):
        variants.load_variant("bam", "test", n=5000)


# --- the zoo's committed checkpoints ---------------------------------------------------------

@pytest.mark.parametrize("name", list(models.ZOO_MODELS))
def test_zoo_cards_meet_their_promises(name):
    card = models.model_card(name)
    net = models.load_model(name)                     # checksum verified on load
    assert card["train_command"].startswith("python scripts/train_zoo.py")
    if name.startswith("vgg_mini_trojan"):
        assert card["attack_success"] >= 0.9
        assert card["clean_model_test_accuracy"] - card["clean_test_accuracy"] <= 0.02
    elif "permuted" in name:
        assert card["train_accuracy"] >= 0.9          # fitted to the permuted labels
        assert card["test_accuracy"] < 0.35           # and so nothing to generalise
    else:
        assert card["test_accuracy"] >= 0.9
    assert net.xai_name == name


def test_retraining_reproduces_the_committed_digits_model():
    """The recipe in ZOO_RECIPES retrains the committed model to within one test image in a hundred.
    Not bit for bit: seeded training on another CPU takes other float paths (measured: 1.0 test
    accuracy on one of this book's machines, 0.9967 on the one that trained the committed model)."""
    name = "vgg_mini_digits"
    model, _, sets = train_zoo_model(name, progress=False)
    card = models.model_card(name)
    assert abs(accuracy(model, sets["test"]) - card["test_accuracy"]) <= 0.01
    assert abs(accuracy(model, sets["train"]) - card["train_accuracy"]) <= 0.01
    assert ZOO_RECIPES[name]["epochs"] == card["epochs"]


def test_bam_images_drawn_again_without_their_objects_differ_only_where_the_object_was():
    from scipy import ndimage
    pool = variants.load_variant("bam", "test", n=30)
    sub = pool.subset(torch.tensor([4, 11, 29]))
    empty = variants.bam_without_objects(sub)
    assert empty.shape == sub.images.shape
    for i in range(3):
        footprint = torch.from_numpy(ndimage.binary_dilation(sub.masks[i].numpy(), iterations=2))   # antialiased rim
        diff = (empty[i] - sub.images[i]).abs().amax(0)
        assert diff[~footprint].max() == 0                      # the same background, clutter and noise
        assert diff[sub.masks[i]].mean() > 0.05                 # the object is gone
    with pytest.raises(ParameterError, match="BAM variant"):
        variants.bam_without_objects(variants.load_variant("multi", "test", n=2))


def test_mosaics_hold_two_images_of_their_class_in_the_quadrants_their_masks_name():
    pool = data.load_shapes("test", n=60)
    mos = variants.mosaics(pool, 5, seed=1)
    assert mos.images.shape == (5, 3, 128, 128) and mos.masks.shape == (5, 128, 128)
    for i in range(5):
        labels, sources = mos.info["quadrant_labels"][i], mos.info["sources"][i]
        assert int((labels == mos.labels[i]).sum()) == 2 and len(set(labels.tolist())) == 3
        assert len(set(sources.tolist())) == 4                            # four different images
        for k in range(4):
            r, c = divmod(k, 2)
            quad = mos.images[i, :, r * 64:(r + 1) * 64, c * 64:(c + 1) * 64]
            assert torch.equal(quad, pool.images[int(sources[k])])
            assert bool(mos.masks[i, r * 64, c * 64]) == (int(labels[k]) == int(mos.labels[i]))
        assert int(mos.masks[i].sum()) == 2 * 64 * 64
    assert torch.equal(variants.mosaics(pool, 5, seed=1).images, mos.images)       # seeded
    with pytest.raises(ParameterError, match="three classes"):
        variants.mosaics(pool.subset(torch.nonzero(pool.labels < 2)[:, 0]), 2)
