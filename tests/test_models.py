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
