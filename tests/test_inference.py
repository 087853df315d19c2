"""The fast inference path: faithful to the eager model, invalidated when it must be, switchable."""
import time

import pytest
import torch
from torch import nn

from xailib import inference, metrics, models
from xailib.methods import METHODS, explain, method_names
from xailib.errors import ParameterError

TOL = inference.TOLERANCE


@pytest.fixture(scope="module")
def nets():
    return {name: models.load_model(name) for name in models.BENCHMARK_MODELS}


@pytest.fixture(scope="module")
def x():
    return torch.rand(40, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", models.BENCHMARK_MODELS)
def test_fast_form_matches_eager_logits(nets, x, name):
    net = nets[name]
    with torch.no_grad():
        eager = net(x)
    fast = inference.forward(net, x)
    assert "batch-norm folded" in inference.describe(net)      # the fold really happened
    assert (fast - eager).abs().max() <= TOL


@pytest.mark.parametrize("name", models.BENCHMARK_MODELS)
def test_same_batch_size_is_bit_identical_and_batch_sizes_agree(nets, x, name):
    net = nets[name]
    a = inference.forward(net, x, batch_size=16)
    assert torch.equal(a, inference.forward(net, x, batch_size=16))
    for bs in (1, 7, 32, 64):      # short chunks are padded: the same kernels, the same bits
        assert torch.equal(inference.forward(net, x, batch_size=bs), a), bs
    assert torch.equal(inference.forward(net, x[3:5]), a[3:5])
    for bs in (1, 7, 32):          # the eager path makes no such promise: only the tolerance
        assert (inference.forward(net, x, batch_size=bs, fast=False) - a).abs().max() <= TOL


def test_fast_false_is_the_model_exactly(nets, x):
    net = nets["resnet_mini"]
    with torch.no_grad():
        eager = torch.cat([net(x[i:i + 8]) for i in range(0, len(x), 8)])
    assert torch.equal(inference.forward(net, x, fast=False, batch_size=8), eager)
    with inference.options(fast=False):
        assert inference.fast_form(net) is None
        assert inference.describe(net).startswith("eager")


def test_environment_switch(monkeypatch, nets):
    monkeypatch.setenv("XAILIB_FAST", "0")
    assert inference.fast_form(nets["vgg_mini"]) is None
    monkeypatch.setenv("XAILIB_FAST", "1")
    assert inference.fast_form(nets["vgg_mini"]) is not None
    monkeypatch.setenv("XAILIB_FAST", "sometimes")
    with pytest.raises(ParameterError, match="XAILIB_FAST"):
        inference.forward(nets["vgg_mini"], torch.rand(1, 3, 64, 64))
    monkeypatch.setenv("XAILIB_FAST", "1")
    monkeypatch.setenv("XAILIB_BATCH_SIZE", "-3")
    with pytest.raises(ParameterError, match="XAILIB_BATCH_SIZE"):
        inference.forward(nets["vgg_mini"], torch.rand(1, 3, 64, 64))


def test_changed_weights_rebuild_the_fast_form(x):
    net = models.load_model("vgg_mini")
    before = inference.forward(net, x[:4])
    with torch.no_grad():
        net.features[0].weight.mul_(-1)        # in place: the version counter moves
    after = inference.forward(net, x[:4])
    with torch.no_grad():
        eager = net(x[:4])
    assert (after - eager).abs().max() <= TOL
    assert (after - before).abs().max() > 1e-2
    last = net.classifier[-1]
    last.weight = nn.Parameter(torch.zeros_like(last.weight))  # replaced, not modified
    assert (inference.forward(net, x[:4]) - last.bias).abs().max() <= TOL


def test_training_mode_and_hooks_run_the_model_itself(x):
    net = models.load_model("resnet_mini")
    net.train()
    assert inference.fast_form(net) is None
    net.eval()
    seen = []
    h = net.fc.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    inference.forward(net, x[:3])
    h.remove()
    assert seen == [(3, 10)]                   # the hook ran: the model itself answered
    assert inference.fast_form(net) is not None


def test_untraceable_and_parameter_free_models():
    class Branchy(nn.Module):                  # data-dependent control flow: fx cannot trace it
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, z):
            z = self.bn(self.conv(z))
            return z.mean((2, 3)) if torch.isfinite(z).all() else -z.mean((2, 3))
    net = Branchy().eval()
    z = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (inference.forward(net, z) - net(z)).abs().max() <= TOL
    assert "folded" not in inference.describe(net)
    pooled = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()   # no parameters at all
    assert torch.allclose(inference.forward(pooled, z), z.mean((2, 3)))


def test_bad_settings():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    with pytest.raises(ParameterError, match="GPU only"):
        inference.forward(net, torch.rand(2, 3, 2, 2), precision="bfloat16")
    with pytest.raises(ParameterError, match="precision"):
        inference.forward(net, torch.rand(2, 3, 2, 2), precision="int8")
    with pytest.raises(ParameterError, match="fast"):
        with inference.options(fast="turbo"):
            pass
    with pytest.raises(ParameterError, match="batched"):
        inference.forward(net, torch.rand(12))


def test_measured_batch_size_known_answers():
    def sweet_spot_at_64(z):                   # per-row cost jumps beyond 64 rows
        time.sleep(0.004 + (0.0001 * len(z) if len(z) <= 64 else 0.0006 * len(z)))
    assert inference.measure_batch_size(sweet_spot_at_64, (1,), torch.device("cpu")) == 64

    def fixed_overhead(z):                     # larger batches always amortise the overhead
        time.sleep(0.02 + 0.00001 * len(z))
    assert inference.measure_batch_size(fixed_overhead, (1,), torch.device("cpu")) == 256


def test_fast_module_for_third_party_code(nets, x):
    fm = inference.FastModule(nets["vgg_mini"])
    assert torch.equal(fm(x[:5]), inference.forward(nets["vgg_mini"], x[:5]))


# Every registered method and metric gives the same answer on both paths (within tolerance).
SMALL = {"lime": dict(num_samples=150), "kernel_shap": dict(nsamples=150), "rise": dict(n_masks=300),
         "integrated_gradients": dict(n_steps=8), "smoothgrad": dict(n_samples=4),
         "expected_gradients": dict(n_samples=4), "neuromask": dict(iterations=100),
         "extremal_perturbation": dict(iterations=30)}


@pytest.mark.parametrize("method", method_names(learned=True))
def test_every_method_agrees_on_both_paths(nets, x, method):
    net = nets["resnet_mini"]
    imgs = x[:2]
    t = models.predict(net, imgs).argmax(1)
    params = dict(SMALL.get(method, {}))
    if "background" in METHODS[method].required:
        params["background"] = x[-4:]
    fast = explain(net, imgs, t, method, **params)
    eager = explain(net, imgs, t, method, fast=False, **params)
    scale = eager.abs().amax((1, 2)).clamp(min=1e-12)[:, None, None]
    assert ((fast - eager).abs() / scale).max() <= 1e-3, method


@pytest.mark.parametrize("metric", list(metrics.METRICS))
def test_every_metric_agrees_on_both_paths(nets, x, metric):
    net = nets["vgg_mini"]
    imgs = x[:6]
    t = models.predict(net, imgs).argmax(1)
    maps = torch.rand(6, 64, 64, generator=torch.Generator().manual_seed(1))
    box = torch.zeros(6, 64, 64, dtype=torch.bool)
    box[:, 20:40, 20:40] = True
    extra = {k: box for k in ("masks", "patch_masks") if k in metrics.METRICS[metric].defaults}
    extra.update({"boxes": [torch.tensor([[20.0, 20, 40, 40]])] * 6} if "boxes" in metrics.METRICS[metric].required
                 else {"method": "gradient"} if "method" in metrics.METRICS[metric].required else {})
    if "true_labels" in metrics.METRICS[metric].required:
        extra["true_labels"] = t
    fast = metrics.score(net, imgs, t, maps, metric, **extra)
    eager = metrics.score(net, imgs, t, maps, metric, fast=False, **extra)
    # monotonicity correlation ranks the network's own output changes (256 squares): the two paths'
    # 1e-7 differences can swap two nearly tied squares, one step of a Spearman over 256 (about 1e-4)
    tol = 1e-3 if metric == "monotonicity_correlation" else 1e-5
    assert (fast - eager).abs().max() <= tol, metric


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_reduced_precision_on_a_gpu_is_opt_in_and_close():
    net = models.load_model("vgg_mini", device="cuda")
    x = torch.rand(64, 3, 64, 64, device="cuda")
    full = inference.forward(net, x)
    half = inference.forward(net, x, precision="bfloat16")
    assert "bfloat16" in inference.describe(net, precision="bfloat16")
    assert full.dtype == half.dtype == torch.float32
    assert (half.softmax(1) - full.softmax(1)).abs().max() < 0.05
    assert (half.argmax(1) == full.argmax(1)).float().mean() > 0.9


def test_compile_mode_falls_back_cleanly(monkeypatch, x):
    net = models.load_model("vgg_mini")

    def broken_compile(module, **kw):           # what a machine without a C compiler amounts to
        def call(z):
            raise RuntimeError("no working C compiler")
        return call
    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(inference, "_COMPILE_FAILED", False)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        out = inference.forward(net, x[:4], fast="compile", batch_size=16)
    with torch.no_grad():
        assert (out - net(x[:4])).abs().max() <= TOL
    assert "torch.compile" not in inference.describe(net, fast="compile")   # not tried again
