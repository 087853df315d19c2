"""The explain interface: known answers on linear models, shapes, devices, determinism, errors."""
import numpy as np
import pytest
import torch
from torch import nn

from xailib import data, models
from xailib.methods import METHODS, Attributer, explain, method_names, register, superpixels
from xailib.errors import ParameterError

FAST = {"lime": dict(num_samples=100), "kernel_shap": dict(nsamples=100),
        "integrated_gradients": dict(n_steps=8), "smoothgrad": dict(n_samples=4),
        "expected_gradients": dict(n_samples=4), "rise": dict(n_masks=64),
        "neuromask": dict(iterations=50), "extremal_perturbation": dict(iterations=20)}


class Linear(nn.Module):
    """logits = W x (no bias): every attribution method has a closed form here."""

    def __init__(self, size=8, classes=2, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc = nn.Linear(3 * size * size, classes, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(classes, 3 * size * size, generator=g))
        self.w = self.fc.weight.detach().view(classes, 3, size, size)

    def forward(self, x):
        return self.fc(torch.flatten(x, 1))


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    return Linear().eval(), torch.rand(3, 3, 8, 8), torch.tensor([0, 1, 1])


@pytest.fixture(scope="module")
def untrained():
    torch.manual_seed(0)
    m = models.build_benchmark_model("vgg_mini").eval()
    return m, data.load_shapes("test", n=3)


def test_linear_gradient_is_the_weight(linear):
    model, x, t = linear
    w = model.w[t]
    torch.testing.assert_close(explain(model, x, t, "gradient"), w.abs().amax(1))
    torch.testing.assert_close(explain(model, x, t, "gradient", reduce="sum"), w.sum(1))
    torch.testing.assert_close(explain(model, x, t, "guided_backprop", reduce="sum"), w.sum(1))
    # SmoothGrad of a linear model: noise does not change the gradient
    torch.testing.assert_close(explain(model, x, t, "smoothgrad"), w.abs().amax(1))


@pytest.mark.parametrize("method", ["gradient_x_input", "integrated_gradients", "deeplift",
                                    "lrp_epsilon", "expected_gradients"])
def test_linear_attributions_equal_weight_times_input(linear, method):
    model, x, t = linear
    extra = {"background": torch.zeros(2, 3, 8, 8)} if method == "expected_gradients" else {}
    got = explain(model, x, t, method, **extra)
    torch.testing.assert_close(got, (model.w[t] * x).sum(1), rtol=1e-4, atol=1e-5)


def test_linear_occlusion_with_one_pixel_windows(linear):
    model, x, t = linear
    got = explain(model, x, t, "occlusion", window=1, stride=1, baseline=0.25)
    torch.testing.assert_close(got, (model.w[t] * (x - 0.25)).sum(1), rtol=1e-4, atol=1e-5)


class HalfBright(nn.Module):
    """Class 1's logit grows with the brightness of the right half only."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(8.0), requires_grad=False)

    def forward(self, x):
        right = x[:, :, :, x.shape[-1] // 2:].mean((1, 2, 3))
        return torch.stack([torch.zeros_like(right), self.scale * (right - 0.5)], 1)


def _two_tone(size=32):
    x = torch.zeros(1, 3, size, size)
    x[..., size // 2:] = 1.0
    return x


@pytest.mark.parametrize("method,kw", [("lime", dict(num_samples=300, n_segments=8, hide=0.0)),
                                       ("kernel_shap", dict(nsamples=200, n_segments=8, hide=0.0))])
def test_surrogates_find_the_only_region_that_matters(method, kw):
    x = _two_tone()
    s = explain(HalfBright(), x, 1, method, **kw)[0]
    left, right = s[:, :16], s[:, 16:]
    assert right.min() > 0 and left.abs().max() < 0.1 * right.min()


def test_kernel_shap_values_add_up_to_the_output_change():
    x = _two_tone()
    model = HalfBright()
    s = explain(model, x, 1, "kernel_shap", nsamples=500, n_segments=8, hide=0.0)[0]
    seg = superpixels(x[0], 8)
    phi = sum(s[torch.from_numpy(seg == k)][0] for k in np.unique(seg))
    p = lambda z: torch.softmax(model(z), 1)[0, 1]  # noqa: E731
    assert phi.item() == pytest.approx((p(x) - p(torch.zeros_like(x))).item(), abs=1e-4)


@pytest.mark.parametrize("method", method_names(learned=True))
def test_every_method_shape_dtype_device_determinism(untrained, method):
    model, ds = untrained
    extra = dict(FAST.get(method, {}))
    if method == "expected_gradients":
        extra["background"] = data.load_shapes("val", n=4).images
    a = explain(model, ds.images, ds.labels, method, **extra)
    b = explain(model, ds.images, ds.labels, method, **extra)
    assert a.shape == (3, 64, 64) and a.dtype == torch.float32 and a.device == ds.images.device
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["gradient", "integrated_gradients", "gradcam", "occlusion", "lime",
                                    "rise"])
def test_maps_do_not_depend_on_batching(untrained, method):
    model, ds = untrained
    kw = FAST.get(method, {})
    whole = explain(model, ds.images, ds.labels, method, batch_size=3, **kw)
    split = explain(model, ds.images, ds.labels, method, batch_size=1, **kw)
    torch.testing.assert_close(whole, split, rtol=1e-4, atol=1e-6)


def test_seeded_methods_change_with_the_seed(untrained):
    model, ds = untrained
    a = explain(model, ds.images, ds.labels, "lime", num_samples=100, seed=0)
    b = explain(model, ds.images, ds.labels, "lime", num_samples=100, seed=1)
    assert not torch.equal(a, b)


def test_gradcam_on_trained_models_points_at_the_object():
    ds = data.load_shapes("test", n=32)
    for name in models.BENCHMARK_MODELS:
        model = models.load_model(name)
        s = explain(model, ds.images, ds.labels, "gradcam")
        assert (s >= 0).all()
        energy = (s * ds.masks).flatten(1).sum(1) / s.flatten(1).sum(1).clamp(min=1e-12)
        chance = ds.masks.float().mean((1, 2))
        assert (energy > chance).float().mean() > 0.75, name


def test_attributer_binds_a_method_and_times_it(linear):
    model, x, t = linear
    att = Attributer(model, "gradient_x_input")
    torch.testing.assert_close(att(x, t), (model.w[t] * x).sum(1))
    assert att.seconds > 0
    with pytest.raises(ParameterError, match="unknown parameter"):
        Attributer(model, "gradient", n_steps=3)


def test_clear_errors(untrained, linear):
    model, ds = untrained
    with pytest.raises(ParameterError, match="method='rise_typo' is not accepted.*'gradient'"):
        explain(model, ds.images, ds.labels, "rise_typo")
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) for method 'gradient': n_steps"):
        explain(model, ds.images, ds.labels, "gradient", n_steps=4)
    with pytest.raises(ParameterError, match="needs background="):
        explain(model, ds.images, ds.labels, "expected_gradients")
    with pytest.raises(ParameterError, match="images are 32x32 but model 'vgg_mini' expects 64x64"):
        explain(model, torch.rand(1, 3, 32, 32), 0, "gradient")
    with pytest.raises(ParameterError, match="targets must be one class index or one per image"):
        explain(model, ds.images, torch.tensor([0, 1]), "gradient")
    with pytest.raises(ParameterError, match="reduce='median'"):
        explain(model, ds.images, ds.labels, "gradient", reduce="median")
    with pytest.raises(ParameterError, match="layer='nope' is not a submodule"):
        explain(model, ds.images, ds.labels, "gradcam", layer="nope")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_maps_stay_on_the_gpu_and_match_the_cpu(untrained):
    model, ds = untrained
    gpu = explain(model.cuda(), ds.images.cuda(), ds.labels, "integrated_gradients", n_steps=8)
    cpu = explain(model.cpu(), ds.images, ds.labels, "integrated_gradients", n_steps=8)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-5)


class ReluSum(nn.Module):
    """Logits [sum(v * relu(x)), 0] with a fixed +-1 pattern v."""

    def __init__(self, v):
        super().__init__()
        self.register_buffer("v", v)
        self.relu = nn.ReLU()                  # a module: captum overrides modules, not torch.relu
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = (self.v * self.relu(x)).flatten(1).sum(1)
        return torch.stack([out, torch.zeros_like(out)], 1)


def test_deconvolution_passes_gradients_through_relu_backwards():
    """Deconvolution (Zeiler and Fergus) applies the ReLU to the gradient on the way back and ignores
    the forward mask: for sum(v * relu(x)) it gives relu(v) everywhere, where the gradient gives
    v * [x > 0]."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 6, generator=g)
    v = torch.where(torch.rand(1, 3, 6, 6, generator=g) > 0.5, 1.0, -1.0)
    model = ReluSum(v)
    dec = explain(model, x, 0, "deconvolution", reduce="sum")
    torch.testing.assert_close(dec, torch.relu(v).sum(1).expand(2, 6, 6))
    grad = explain(model, x, 0, "gradient", reduce="sum")
    torch.testing.assert_close(grad, (v * (x > 0)).sum(1))
    assert METHODS["deconvolution"].family == "backprop"


def test_per_image_parameters_are_cut_with_the_images():
    """A parameter given one value per image follows its image into the method's chunks (chapter
    05 gives extremal perturbation one area per image; 40 images are more than one chunk of 32)."""
    @register("_per_image_probe", family="control", library="test", reference="", batch_size=2,
                      per_image=("scale",), scale=1.0)
    def _probe(model, x, t, scale):
        return torch.as_tensor(scale, dtype=torch.float32).expand(len(x)).view(-1, 1, 1).expand(len(x), *x.shape[-2:]).clone()
    try:
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
        x = torch.rand(5, 3, 4, 4)
        scales = torch.arange(5.0)
        out = explain(model, x, 0, "_per_image_probe", scale=scales)
        torch.testing.assert_close(out[:, 0, 0], scales)
        torch.testing.assert_close(explain(model, x, 0, "_per_image_probe", scale=3.0)[:, 0, 0], torch.full((5,), 3.0))
    finally:
        del METHODS["_per_image_probe"]
    assert METHODS["extremal_perturbation"].per_image == ("area",)


def test_sampling_methods_bound_their_passes_at_large_sizes():
    """SmoothGrad, integrated and expected gradients put at most rows_per_pass images of a large
    size through the network at once, and give the same closed-form maps as in one pass."""
    from xailib.methods.registry import PASS_PIXELS, rows_per_pass
    assert rows_per_pass(torch.zeros(1, 3, 64, 64)) is None            # the benchmark: one pass, as published
    assert rows_per_pass(torch.zeros(1, 3, 224, 224)) == 128
    assert rows_per_pass(torch.zeros(1, 3, 4096, 4096)) == 1
    size = 160
    cap = PASS_PIXELS // (size * size)                                  # 250 images of 160 px
    model = Linear(size=size).eval()
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    torch.manual_seed(0)
    x, t = torch.rand(5, 3, size, size), torch.tensor([0, 1, 1, 0, 1])
    w = model.w[t]
    cases = {"smoothgrad": (dict(n_samples=100), w.abs().amax(1)),            # 500 noisy copies
             "integrated_gradients": (dict(n_steps=100), (w * x).sum(1)),     # 500 path points
             "expected_gradients": (dict(n_samples=100, background=torch.zeros(1, 3, size, size)), (w * x).sum(1))}
    for method, (kw, expected) in cases.items():
        seen.clear()
        got = explain(model, x, t, method, **kw)
        assert max(seen) <= cap < 5 * 100, (method, max(seen))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
