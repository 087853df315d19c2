"""Consensus (Li, Xiong, Huang, Ji and Dou 2021): a committee of networks explains the same images,
their explanations are averaged into a consensus, and each network is scored by how far its own
explanation agrees with it.

As the survey (Li et al., section 4.2) presents it: explanations by "a trustworthy interpretation
algorithm (e.g., LIME, SmoothGrad) for every model in the committee", "the consensus of
interpretation from the entire committee through voting", and each model's interpretability the
match of its explanation to the consensus, ranked among the committee's. Li et al. check it
against ground truth: a network whose explanations agree with the consensus should also agree with
the object's segmentation.

The book's choices, where the survey names none (the paper itself is not among the book's papers):

- each map is made comparable by its absolute values divided by their sum (a unit of mass per
  image, :func:`normalise`), since the methods' scales differ from network to network;
- the consensus is the mean of the committee's normalised maps (every member votes with equal
  weight, itself included, as in Li et al.);
- a map's agreement with the consensus is their cosine similarity (:func:`agreement`).

Written by hand: a mean and a cosine; InterpretDL's ``ConsensusInterpreter`` (PaddlePaddle) only
concatenates the members' explanations.
"""
from __future__ import annotations

import torch

from .errors import ParameterError


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """|map| / sum |map| per image, (N, H, W) float64; a map with no mass stays 0."""
    a = torch.as_tensor(maps).double().abs()
    if a.ndim != 3:
        raise ParameterError(f"maps must be (N, H, W), got {tuple(a.shape)}")
    if not torch.isfinite(a).all():
        raise ParameterError("the maps contain NaN or infinite values")
    total = a.flatten(1).sum(1).view(-1, 1, 1)
    return torch.where(total > 0, a / torch.where(total > 0, total, 1.0), torch.zeros_like(a))


def consensus(members: dict) -> torch.Tensor:
    """The committee's consensus map per image, (N, H, W): the mean of its members' normalised maps
    (``members``: {network: (N, H, W) maps of the same images and targets})."""
    if len(members) < 2:
        raise ParameterError(f"a committee needs at least two networks, got {len(members)}")
    shapes = {tuple(torch.as_tensor(m).shape) for m in members.values()}
    if len(shapes) != 1:
        raise ParameterError(f"every member must explain the same images at the same size, got shapes {sorted(shapes)}")
    return torch.stack([normalise(m) for m in members.values()]).mean(0)


def agreement(maps: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Cosine similarity per image between the normalised ``maps`` and ``reference`` (N,) in [0, 1]
    (both non-negative); 0 where either has no mass."""
    a, b = normalise(maps).flatten(1), normalise(reference).flatten(1)
    if a.shape != b.shape:
        raise ParameterError(f"maps and reference must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    na, nb = a.norm(dim=1), b.norm(dim=1)
    ok = (na > 0) & (nb > 0)
    return torch.where(ok, (a * b).sum(1) / torch.where(ok, na * nb, 1.0), torch.zeros_like(na))
