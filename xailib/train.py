"""Training the benchmark classifiers (``scripts/train_models.py`` drives this).

Plain supervised training on the shapes benchmark's train split: AdamW, one-cycle learning
rate, random horizontal flips (every shape class is closed under mirroring). Deterministic for a
given seed on a given machine and thread count; the committed checkpoints record their checksum.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from .data import ImageSet, load_shapes
from .models import build_benchmark_model, predict


def accuracy(model: nn.Module, data: ImageSet, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``data``."""
    pred = predict(model, data.images, batch_size).argmax(1)
    return (pred == data.labels).float().mean().item()


def train_model(name: str, seed: int = 0, epochs: int = 12, batch_size: int = 128,
                lr: float = 3e-3, weight_decay: float = 5e-4, progress: bool = True,
                train: ImageSet | None = None, val: ImageSet | None = None):
    """Train ``vgg_mini`` or ``resnet_mini`` from scratch; returns (model, history).

    ``train`` / ``val`` default to the shapes benchmark's splits.
    """
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    if train is None:
        train = load_shapes("train", progress=progress)
    if val is None:
        val = load_shapes("val", progress=progress)
    model = build_benchmark_model(name, len(train.class_names))
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
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
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
