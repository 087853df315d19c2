"""One image set explained under many networks and methods, through the book's map store.

:class:`Maps` asks :class:`xailib.map_store.MapStore` for each (network, method) in batches of
``batch_size`` images: maps that any chapter or run has computed under the same key are read, the
others computed (here or on a Dask cluster) and stored batch by batch, so an interrupted run
resumes at the first missing batch. :class:`Lazy` builds a network at its first use (a randomised
copy is made when a chapter first asks for its maps; the store's key needs its weights).
"""
from __future__ import annotations

import torch
from torch import nn

from . import methods
from .map_store import MapStore


class Lazy:
    """A model built on first use (a randomised copy is made when a chapter first asks for its maps)."""

    def __init__(self, build):
        self.build, self.net = build, None

    def __call__(self) -> nn.Module:
        if self.net is None:
            self.net = self.build()
        return self.net


class Maps:
    """Maps of one image set under many models, from the book's map store (:mod:`xailib.map_store`),
    computed where missing in batches of ``batch_size`` images (on ``scheduler``'s cluster when
    given, see :class:`~xailib.map_store.MapStore`). ``store`` (a :class:`~xailib.results.ResultStore`)
    keeps :meth:`smoothed`'s maps."""

    def __init__(self, store, images: torch.Tensor, targets: torch.Tensor, method_params: dict,
                 batch_size: int = 16, scheduler=None, maps: MapStore | None = None):
        self.store, self.images, self.targets = store, images, targets
        self.method_params, self.batch_size = method_params, batch_size
        self.maps = maps if maps is not None else MapStore(scheduler=scheduler)
        self._seconds: dict = {}

    def __call__(self, key: str, build, method: str, **extra) -> torch.Tensor:
        params = {**self.method_params.get(method, {}), **extra}
        net = build if isinstance(build, nn.Module) else build()
        value, secs = self.maps.timed(net, self.images, self.targets, method, batch=self.batch_size,
                                      per_image=True, **params)
        self._seconds[key, method] = secs
        return value

    def seconds(self, key: str, method: str) -> float:
        """Seconds per image the maps under ``key`` took (their first computation's, when read from
        the store), as this object's last call for them found them."""
        secs = self._seconds[key, method]
        return sum(secs) / len(secs) if secs else 0.0

    def image_seconds(self, key: str, method: str) -> list[float]:
        """The seconds of each image's map under ``key`` (its share of the batch it was computed in)."""
        return list(self._seconds[key, method])

    def smoothed(self, key: str, net: nn.Module, method: str, n_samples: int, noise: float,
                 seed: int) -> torch.Tensor:
        """Hedström et al.'s (2023) smoothed map: the mean of the maps of ``n_samples`` copies of
        each image with Gaussian noise of standard deviation ``noise`` (in [0, 1] pixel units)
        added, the same noise for every model (seeded per image)."""
        params = self.method_params.get(method, {})

        def run(sl):
            x = self.images[sl]
            g = torch.Generator().manual_seed(seed * 7919 + sl.start)
            eps = torch.randn((n_samples, *x.shape), generator=g).to(x.device) * noise
            noisy = (x[None] + eps).flatten(0, 1)
            t = self.targets[sl].repeat(n_samples)
            s = methods.explain(net, noisy, t, method, **params)
            return s.view(n_samples, len(x), *s.shape[-2:]).mean(0)
        return self.store.batches(f"{key}/{method}", len(self.images), self.batch_size, run, progress=False)
