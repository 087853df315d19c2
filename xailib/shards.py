"""Shards: the book's heavy loops as units of work, computed here, on a local Dask cluster, or on
a remote one, into a results store that every worker reaches.

A :class:`Shard` is (network, method, optionally a metric, parameters, a range of images): a pure
function of its fields. A worker rebuilds everything from them: the images from the data set's
name, split, seed and indices (or the reader's ImageNet folder), the network from its name and
weights file (:func:`xailib.models.load_model`, checksums verified); no tensor is pickled and
sent over. Its result (the maps, or the maps' per-image scores) goes into the store under a key
that hashes every field and the code of ``xailib`` (:func:`xailib.results.code_version`), so a
finished shard is found and never recomputed, and a result computed by other code is never
reused.

:func:`compute` runs a list of shards:

- ``scheduler=None`` (the default; or ``$XAILIB_SCHEDULER`` when set): in this process, one
  after the other; nothing to start;
- ``scheduler="local:4"``: a ``dask.distributed.LocalCluster`` with 4 worker processes (one
  thread each, unless the shards say otherwise), started and stopped around the call;
- ``scheduler="tcp://host:8786"``: an existing cluster's scheduler (``dask scheduler`` on one
  machine, ``dask worker tcp://host:8786`` on each of the others; a GPU worker is started with
  ``--resources GPU=1``, and a shard whose ``device`` is ``cuda`` asks for that resource).

The store is an fsspec URL (``$XAILIB_STORE``, default ``<cache>/shards``): a local or shared
folder (``/path``, ``file:///path``), ``memory://`` (one process only), or object storage
(``s3://bucket/prefix``, ``gs://...``) with its fsspec backend installed (``s3fs``, ``gcsfs``).
Writes are atomic: a local file is written under a temporary name and renamed; an object store
writes an object whole. Two workers that finish the same shard write the same bytes, and the
last rename wins; a reader never sees half a file.

Why Dask: it is the maintained, pure-Python engine for exactly this (a scheduler, workers that
come and go, a task retried elsewhere when its worker dies, resources for GPUs); the book adds
only the shard's definition and the store's layout.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field

import torch

from .cluster import (CONNECT_TIMEOUT, SCHEDULER_ENV, STORE_ENV, WORKER_TIMEOUT, Store,  # noqa: F401
                      client, default_store, resolve_scheduler, shared_client, wait_for_workers)
from .errors import MissingResourceError, ParameterError


@dataclass(frozen=True)
class Shard:
    """One unit of work: ``method``'s maps of ``model`` for the images ``index`` of a data set
    (their true labels as targets), and, with ``metric``, their per-image scores under it."""

    model: str
    method: str
    index: tuple                        # indices of the images in the data set's split
    dataset: str = "shapes"
    split: str = "test"
    size: int = 64
    seed: int = 0
    data_root: str | None = None
    annotations: str | None = None
    weights: str | None = None
    params: dict = field(default_factory=dict)            # the method's parameters (JSON-able)
    metric: str | None = None
    metric_params: dict = field(default_factory=dict)     # the metric's (JSON-able; masks come from the data)
    device: str = "cpu"
    threads: int | None = None          # torch threads on the worker (None: leave them)

    def __hash__(self):
        return hash(self.key)

    @functools.cached_property
    def key(self) -> str:       # (hashing xailib's source once per shard object, not at every use)
        from .results import code_version
        text = json.dumps({**asdict(self), "index": list(self.index), "_xailib": code_version()},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def path(self) -> str:
        what = self.metric or "maps"
        return f"{self.model}/{self.method}/{what}/{self.key}.pt"

    def describe(self) -> str:
        i = list(self.index)
        span = f"images {i[0]}..{i[-1]} ({len(i)})" if i else "no images"
        return f"{self.model} / {self.method}" + (f" / {self.metric}" if self.metric else "") + f", {span}"


def shards_for(model: str, method: str, index, shard_size: int, **fields) -> list[Shard]:
    """``index`` cut into shards of ``shard_size`` images, every other field shared."""
    if not isinstance(shard_size, int) or shard_size < 1:
        raise ParameterError(f"shard_size={shard_size!r} must be an integer >= 1")
    index = [int(i) for i in index]
    return [Shard(model, method, tuple(index[i:i + shard_size]), **fields) for i in range(0, len(index), shard_size)]


# --------------------------------------------------------------------------------------------
# One shard
# --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _pool(dataset, split, data_root, annotations, size, seed):
    """A data set's split, loaded once per process (a worker keeps it between shards)."""
    from . import data
    return data.load_dataset(dataset, split, data_root=data_root, annotations=annotations, size=size, seed=seed)


@functools.lru_cache(maxsize=4)
def _network(model, device, weights):
    """A network, loaded once per process (checksums verified at the first load)."""
    from . import models
    return models.load_model(model, device=device, weights=weights)


def _images(shard: Shard):
    try:
        pool = _pool(shard.dataset, shard.split, shard.data_root, shard.annotations, shard.size, shard.seed)
    except (FileNotFoundError, MissingResourceError, ParameterError, OSError) as e:
        raise MissingResourceError(f"worker {socket.gethostname()} (pid {os.getpid()}) cannot load the images of "
                                   f"shard {shard.describe()}: {e}") from None
    if shard.index and max(shard.index) >= len(pool):
        raise ParameterError(f"shard {shard.describe()}: index {max(shard.index)} is past the {len(pool)} images "
                             f"of {shard.dataset}/{shard.split}")
    return pool.subset(list(shard.index))


def run_shard(shard: Shard, store: str | None = None) -> str:
    """Compute one shard into the store at URL ``store`` (unless it is there already) and return
    its path in the store. Runs the same in this process and on a worker."""
    st = Store(store)
    if st.exists(shard):
        return shard.path
    threads = torch.get_num_threads()
    if shard.threads:
        torch.set_num_threads(shard.threads)
    try:
        value, took = _compute(shard, st.url)
    finally:
        torch.set_num_threads(threads)     # in this process, leave the caller's threads as they were
    st.write(shard, value, took)
    return shard.path


def _resolved(shard: Shard) -> dict:
    """The method's parameters, with an image reference made into images on the worker: a
    parameter given as ``{"images": split, "n": k}`` (expected gradients' ``background``) becomes
    the first ``k`` images of that split of the shard's data set."""
    out = {}
    for k, v in shard.params.items():
        if isinstance(v, dict) and set(v) == {"images", "n"}:
            v = _pool(shard.dataset, v["images"], shard.data_root, shard.annotations, shard.size,
                      shard.seed).images[:v["n"]].to(shard.device)
        out[k] = v
    return out


def _compute(shard: Shard, store: str | None = None):
    from .map_store import MapStore
    from .metrics import METRICS, score
    imgs = _images(shard)
    try:
        net = _network(shard.model, shard.device, shard.weights)
    except (FileNotFoundError, MissingResourceError) as e:
        raise MissingResourceError(f"worker {socket.gethostname()} (pid {os.getpid()}) cannot load network "
                                   f"{shard.model!r} for shard {shard.describe()}: {e}") from None
    t0 = time.perf_counter()
    x = imgs.images.to(shard.device)
    # through the book's map store, one batch as before: maps another chapter computed in the same
    # place are read, and this shard's maps are there for the others
    maps = MapStore(store, scheduler="process").explain(
        net, x, imgs.labels, shard.method, **_resolved(shard))
    value = maps
    if shard.metric:
        extra = {"masks": imgs.masks, "boxes": imgs.boxes}
        wanted = {k: v for k, v in extra.items() if k in METRICS[shard.metric].defaults and k not in shard.metric_params}
        value = score(net, x, imgs.labels, maps, shard.metric, **wanted, **shard.metric_params)
    return value, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# Many shards
# --------------------------------------------------------------------------------------------

def submit(c, shards, store: str) -> list:
    """Futures of ``run_shard`` for ``shards`` on the Dask client ``c``; a shard whose device is
    a GPU asks its worker for the resource ``GPU``. The scheduler retries a shard whose worker
    dies on another worker (Dask's ``allowed-failures``)."""
    if str(store).startswith("memory://"):
        raise ParameterError("a memory:// store lives in one process; a cluster's workers need a "
                             "folder they share or an object store")
    return [c.submit(run_shard, s, store, key=f"shard-{s.key}", pure=False,
                     resources={"GPU": 1} if str(s.device).startswith("cuda") else None)
            for s in shards]


def compute(shards, store: str | None = None, scheduler=None, progress: bool = True) -> list:
    """The values of ``shards`` (maps or scores, in order), each computed at most once: the
    shards already in the store are read, the others computed in this process or on the
    cluster named by ``scheduler`` (see the module's doc; a ``dask.distributed.Client`` is
    used as it is) and written there first."""
    shards = list(shards)
    st = Store(store)
    done = {}
    for s in dict.fromkeys(shards):
        record = st.read_or_forget(s)
        if record is not None:
            done[s] = record["value"]
    todo = [s for s in dict.fromkeys(shards) if s not in done]
    where = resolve_scheduler(scheduler)
    if todo:
        if where is not None and not isinstance(where, str):        # a Client
            wait_for_workers(where, getattr(getattr(where, "scheduler", None), "address", "this client's scheduler"))
            where.gather(submit(where, todo, st.url))
        elif where is None:
            it = todo
            if progress:
                from tqdm.auto import tqdm
                it = tqdm(todo, desc="shards", leave=False)
            for s in it:
                run_shard(s, st.url)
        else:
            with client(where) as c:
                c.gather(submit(c, todo, st.url))
    return [done[s] if s in done else st.read(s)["value"] for s in shards]


def seconds(shards, store: str | None = None) -> float:
    """The compute seconds recorded with the shards' results."""
    st = Store(store)
    return sum(st.read(s)["seconds"] for s in shards)
