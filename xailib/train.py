"""Training the benchmark classifiers (``scripts/train_models.py`` drives this).

Plain supervised training on the shapes benchmark's train split: AdamW, one-cycle learning
rate, random horizontal flips (every shape class is closed under mirroring). Deterministic for a
given seed on a given machine and thread count; the committed checkpoints record their checksum.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from .data import ImageSet, load_digits, load_shapes
from .models import build_benchmark_model, predict


def accuracy(model: nn.Module, data: ImageSet, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``data``."""
    pred = predict(model, data.images, batch_size).argmax(1)
    return (pred == data.labels).float().mean().item()


def train_model(name: str, seed: int = 0, epochs: int = 12, batch_size: int = 128,
                lr: float = 3e-3, weight_decay: float = 5e-4, progress: bool = True,
                train: ImageSet | None = None, val: ImageSet | None = None, flip: bool = True,
                init: dict | None = None):
    """Train ``vgg_mini``, ``resnet_mini`` or a zoo model's architecture from scratch; returns
    (model, history).

    ``train`` / ``val`` default to the shapes benchmark's splits; ``flip`` turns the random
    horizontal flips off (digits are not mirror-symmetric); ``init`` (a state dict) starts from
    those weights instead of a fresh initialisation (fine-tuning).
    """
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)    # for this training only: restored on return
    try:
        return _train(name, seed, epochs, batch_size, lr, weight_decay, progress, train, val, flip, init)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def _train(name, seed, epochs, batch_size, lr, weight_decay, progress, train, val, flip, init=None):
    torch.manual_seed(seed)
    if train is None:
        train = load_shapes("train", progress=progress)
    if val is None:
        val = load_shapes("val", progress=progress)
    model = build_benchmark_model(name, len(train.class_names))
    if init is not None:
        model.load_state_dict(init)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in range(epochs):
        model.train()
        t0, total = time.time(), 0.0
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), batch_size):
            idx = order[i:i + batch_size]
            x, y = train.images[idx], train.labels[idx]
            flipped = torch.rand(len(idx), generator=gen) < 0.5
            if flip:
                x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        model.eval()
        row = dict(epoch=epoch + 1, loss=total / len(train), val_accuracy=accuracy(model, val),
                   seconds=time.time() - t0)
        history.append(row)
        if progress:
            print(f"{name} epoch {row['epoch']:2d}  loss {row['loss']:.4f}  "
                  f"val acc {row['val_accuracy']:.4f}  ({row['seconds']:.0f}s)", flush=True)
    return model.eval(), history


# --------------------------------------------------------------------------------------------
# The model zoo (scripts/train_zoo.py): known decision rules, from xailib.variants
# --------------------------------------------------------------------------------------------

ZOO_RECIPES = {
    "vgg_mini_bam_object": dict(data="bam", task="object", epochs=12, flip=True),
    "vgg_mini_bam_scene": dict(data="bam", task="scene", epochs=6, flip=True),
    "vgg_mini_trojan_fixed": dict(data="trojan", trigger="fixed", epochs=12, flip=True),
    "vgg_mini_trojan_random": dict(data="trojan", trigger="random", epochs=14, flip=True),
    "vgg_mini_permuted": dict(data="permuted", n_train=1000, epochs=60, flip=False),
    "vgg_mini_digits": dict(data="digits", epochs=20, flip=False),
    "vgg_mini_digits_permuted": dict(data="digits_permuted", epochs=80, flip=False),
}


def zoo_data(name: str, seed: int = 0) -> dict:
    """The train / val / test sets of zoo model ``name`` (labels as it was trained on them)."""
    from . import variants
    from .errors import check_choice
    check_choice("model", name, ZOO_RECIPES)
    r = ZOO_RECIPES[name]
    if r["data"] == "bam":
        return {s: variants.for_task(variants.load_variant("bam", s, seed=seed), r["task"])
                for s in ("train", "val", "test")}
    if r["data"] == "trojan":
        return {s: variants.load_variant("trojan", s, seed=seed, trigger=r["trigger"],
                                         poison=0.1 if s == "train" else 0.0)
                for s in ("train", "val", "test")}
    if r["data"] == "permuted":
        return dict(train=variants.load_variant("permuted", "train", n=r["n_train"], seed=seed),
                    val=load_shapes("val", seed=seed), test=load_shapes("test", seed=seed))
    sets = {s: load_digits(s, seed=seed) for s in ("train", "val", "test")}
    if r["data"] == "digits_permuted":
        variants.permute_labels(sets["train"], seed)
    return sets


def train_zoo_model(name: str, seed: int = 0, progress: bool = True):
    """Train zoo model ``name`` by its recipe; returns (model, history, data sets)."""
    r = ZOO_RECIPES[name]
    sets = zoo_data(name, seed)
    from .models import ZOO_MODELS
    model, history = train_model(ZOO_MODELS[name], seed=seed, epochs=r["epochs"], progress=progress,
                                 train=sets["train"], val=sets["val"], flip=r["flip"])
    model.xai_name = name
    return model, history, sets
