"""Infidelity (Yeh et al. 2019; the survey's eq. 17), through ``captum.metrics.infidelity``.

    INFD(Phi, f, x) = E_I [ (I^T Phi(f, x) - (f(x) - f(x - I)))^2 ]

(the survey prints the square inside the expectation's first term, an extraction slip: Yeh et
al.'s definition squares the difference). How much the map's sum over a perturbation predicts
the output change that the perturbation causes. Choices a reader must see, all parameters:

- **what is perturbed.** A map holds one value per pixel, so a perturbation changes a pixel's
  colour channels together: ``perturbation="gaussian"`` subtracts the same N(0, ``noise``^2)
  value from every channel of each pixel (pixel units in [0, 1]); ``"square"`` removes a random
  ``side`` x ``side`` square with the shared operator ``removal`` (default: the data set's mean
  colour; :mod:`xailib.metrics.removal`), and its I is the square's indicator,
  so that I^T Phi is the map's sum over the square (the removal that completeness-satisfying
  methods, integrated gradients and DeepLIFT with that baseline, predict exactly).
- **the output**: the target's logit (what the gradient methods explain) or its probability.
- **rescaling** (``rescale=True``, Yeh et al.'s optimal scaling, captum's ``normalize``): the
  map is multiplied by the beta that minimises the infidelity on the drawn perturbations. Without
  it the score grows with the map's scale, so methods whose maps differ in units (a logit
  gradient against a probability-weighted superpixel) cannot be compared; a test shows that
  multiplying a map by 10 leaves the rescaled score unchanged and changes the other.
- ``n_samples`` perturbations per image, drawn from a generator seeded by ``seed`` (the same
  draws for every method, so methods are compared on the same perturbations).
"""
from __future__ import annotations

import torch
from captum.metrics import infidelity as captum_infidelity

from . import register
from .. import inference
from .removal import check_removal, remove
from ..errors import ParameterError, check_choice

PERTURBATIONS = ("gaussian", "square")
OUTPUTS = ("logit", "probability")


def perturbation(kind: str, noise: float, side: int, removed, generator: torch.Generator):
    """captum's ``perturb_func``: (I, x - I) for a batch, with I as the module's doc describes;
    ``removed(x, region)`` is the square's removal operator."""
    check_choice("perturbation", kind, PERTURBATIONS)

    def perturb(x):
        n, c, h, w = x.shape
        if kind == "gaussian":
            i = (torch.randn((n, 1, h, w), generator=generator) * noise).to(x.device).expand(n, c, h, w)
            return i, x - i
        if not 1 <= side <= min(h, w):
            raise ParameterError(f"side={side!r} must be in [1, {min(h, w)}]")
        r = torch.randint(0, h - side + 1, (n,), generator=generator)
        q = torch.randint(0, w - side + 1, (n,), generator=generator)
        ys, xs = torch.arange(h)[None, :], torch.arange(w)[None, :]
        inside = (((ys >= r[:, None]) & (ys < r[:, None] + side))[:, :, None]
                  & ((xs >= q[:, None]) & (xs < q[:, None] + side))[:, None, :]).to(x.device)[:, None]
        return inside.float().expand(n, c, h, w), removed(x, inside[:, 0])
    return perturb


@torch.no_grad()
def infidelity(model, images, targets, maps, *, perturbation_kind="gaussian", noise=0.1, side=8,
               n_samples=32, rescale=True, output="logit", seed=0, batch_size=2048,
               removal="dataset_mean") -> torch.Tensor:
    """Per-image infidelity of ``maps`` (B, H, W); see the module's doc."""
    check_choice("output", output, OUTPUTS)
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ParameterError(f"n_samples={n_samples!r} must be a positive integer")
    if perturbation_kind == "gaussian" and not noise > 0:
        raise ParameterError(f"noise={noise!r} must be > 0")
    dev = inference.model_device(model, fallback=images.device)
    x = images.to(dev, torch.float32)
    c = x.shape[1]
    check_removal(removal)

    def removed(z, region):
        return remove(z, region, removal, model=model, seed=seed)

    def forward(z):
        out = inference.forward(model, z)
        return torch.softmax(out, 1) if output == "probability" else out

    gen = torch.Generator().manual_seed(seed)
    attributions = (maps.to(dev, torch.float32) / c)[:, None].expand(-1, c, -1, -1)
    out = captum_infidelity(forward, perturbation(perturbation_kind, noise, side, removed, gen), x, attributions,
                            target=torch.as_tensor(targets, device=dev), n_perturb_samples=n_samples,
                            max_examples_per_batch=min(len(x) * n_samples, max(len(x), batch_size)),
                            normalize=rescale)
    return out.double().cpu()


@register("infidelity", higher_is_better=False, reference="yeh2019", perturbation="gaussian", noise=0.1,
          side=8, n_samples=32, rescale=True, output="logit", seed=0, batch_size=2048, removal="dataset_mean")
def _infidelity(model, images, targets, maps, perturbation, noise, side, n_samples, rescale, output, seed,
                batch_size, removal):
    """Yeh et al.'s infidelity (lower is better); see :mod:`xailib.metrics.faithfulness`."""
    return infidelity(model, images, targets, maps, perturbation_kind=perturbation, noise=noise, side=side,
                      n_samples=n_samples, rescale=rescale, output=output, seed=seed, batch_size=batch_size,
                      removal=removal)
