"""Random draws keyed by (seed, image, sample): the same for an image at any batching.

A sampled metric (infidelity, max-sensitivity) that draws its perturbations for a whole batch
from one generator gives an image other draws when it sits elsewhere in the batch, or when the
batch is cut otherwise (issue: 3 images, 16 samples of infidelity gave [1.344, 1.552, 1.488] at
one batch size and [1.217, 2.250, 1.990] at another). Here each image's draws come from its own
generators, seeded from ``seed``, the image's content (a SHA-256 of its float32 values: the only
identity an image has inside a metric call) and the sample's index, so every method is scored on
the same perturbations of an image however the images are batched, and two seeds give
independent draws. Written here because neither captum nor torch keys draws by example.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..errors import check_positive_int


def image_keys(images: torch.Tensor, seed: int = 0) -> list[int]:
    """One 63-bit key per image: a hash of ``seed`` and the image's float32 values."""
    x = images.detach().to("cpu", torch.float32).contiguous().numpy()
    return [int.from_bytes(hashlib.sha256(np.int64(seed).tobytes() + im.tobytes()).digest()[:8], "little") >> 1
            for im in x]


def generator(key: int, sample: int) -> torch.Generator:
    """The generator of one image's ``sample``-th draw."""
    return torch.Generator().manual_seed((key + 1_000_003 * sample) % 2 ** 63)


class Samples:
    """Hands out each image's draws in order, whatever the chunks they are asked in: call it with
    ``k`` to get ``draw(generator)`` for samples ``done .. done + k - 1`` of every image, stacked
    image by image (captum's ``repeat_interleave`` order)."""

    def __init__(self, images: torch.Tensor, seed: int = 0):
        self.keys, self.done = image_keys(images, seed), 0

    def __call__(self, k: int, draw) -> list:
        check_positive_int("k", k)
        out = [draw(generator(key, s)) for key in self.keys for s in range(self.done, self.done + k)]
        self.done += k
        return out
