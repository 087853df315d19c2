"""The book's one store of saliency maps, keyed by what each map is computed from.

A map is a pure function of

- the network: its architecture and every weight and buffer, hashed (:func:`network_id`), so a
  randomised copy, a retrained or a trojaned network is another network whatever its name;
- the method and all its settings, the registry's defaults filled in (a tensor setting, such as
  expected gradients' background, by its bytes);
- the image, by its bytes, and the target class;
- the code that computes it (:func:`code_version`: xailib's methods, inference and models, the
  versions of the packages that compute maps), the kernels in force
  (:func:`xailib.determinism.kernel_key`) and the inference settings (fast path, precision,
  model batch size);
- for a method whose maps depend on the batch they are computed in, the image's place in that
  batch (below).

:class:`MapStore` keeps one file per map under that key in the shard store
(:class:`xailib.cluster.Store`: ``<cache>/shards`` by default, ``$XAILIB_STORE``, or any fsspec URL
a cluster's workers share). Every chapter asks it for the maps it needs: a map that any chapter,
run or worker has computed under the same key is read; the missing ones are computed, batch by
batch as the caller would have computed them, in this process or as tasks on a Dask cluster
(``scheduler``, ``$XAILIB_SCHEDULER``), and each batch is written as soon as it is done (atomically:
an interrupted run resumes at the first missing batch). Keys hash content, not names, because the
chapters explain the same test image under different names (chapter 01's first 16 images, chapter
09's first 6 classified correctly), a patched or noisy copy has no index at all, and a name cannot
tell a trained network from its randomised copy; hashing a 64-pixel image takes microseconds, a
network's weights once per network object (again only when a weight changes).

**Batch dependence, measured** (``tests/test_map_store.py`` keeps the declaration honest). On one
CPU, gradient, gradient x input, guided backpropagation, deconvolution, DeepLIFT, LRP, Grad-CAM and
guided Grad-CAM give other last bits (up to 1e-6, and LRP's epsilon rule amplifies one to 8.6)
when an image is explained alone than in a batch, since the convolutions pick other kernels;
SmoothGrad and expected gradients draw their noise for a whole batch at once; occlusion puts several
images' windows in one model call; the learned masks were not measured (an optimisation amplifies a
last bit) and count as dependent. For these, the key also holds the image's place in its batch (the
batch's length and the image's position), so a map is reused only where it was computed in the same
place, and a reused map never moves a number. The others (``Method.batch_invariant``: integrated
gradients, LIME, KernelSHAP, RISE and the controls) give the same bits in any batch and are reused
across any batching.

**Scores** go through the same store (:meth:`MapStore.scores`), one file per image's score under
a key of the network, the metric and its settings (:data:`xailib.metrics.registry.PER_IMAGE`
settings per image), the image, its target and its map by their bytes,
:func:`score_code_version`, and the image's place in its batch: every model-calling metric
batches its images' perturbed copies together, so the place is always in the key.
:func:`run_tasks` runs any chapter's independent calls (03's Impact grid, 04's patch evaluation)
here or on the cluster, with the maps' and scores' way of sending a network.
"""
from __future__ import annotations

import functools
import hashlib
import json
import pickle
import time
import uuid
import warnings
import weakref
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import cluster, determinism, inference
from .errors import ParameterError, check_choice, check_positive_int, check_unknown_keys

MAP_PACKAGES = ("torch", "torchvision", "captum", "lime", "shap", "scikit-image", "scipy", "numpy")
_NETS: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """Hash of the code a map depends on: ``xailib/methods/``, ``inference.py`` and ``models.py``,
    and the versions of the packages that compute maps. An edit elsewhere in xailib (a chapter's
    plumbing, a metric, the verdicts) keeps every stored map."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted((root / "methods").glob("*.py")) + [root / "inference.py", root / "models.py"]:
        h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    for pkg in MAP_PACKAGES:
        try:
            h.update(f"{pkg}=={metadata.version(pkg)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{pkg} absent".encode())
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def score_code_version() -> str:
    """Hash of the code a score depends on: :func:`code_version` (max-sensitivity re-runs methods)
    and ``xailib/metrics/``."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256(code_version().encode())
    for path in sorted((root / "metrics").glob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()[:12]


def _digest(t: torch.Tensor) -> str:
    t = t.detach().to("cpu").contiguous().reshape(-1)
    return hashlib.sha256(t.view(torch.uint8).numpy().tobytes()).hexdigest()[:20]


def network_id(net: nn.Module) -> str:
    """Hash of a network's architecture (its class and printed structure) and of every weight and
    buffer; kept with the network object until one of its tensors changes."""
    state = inference.weights_state(net)
    hit = _NETS.get(net)
    if hit is not None and hit[0] == state:
        return hit[1]
    h = hashlib.sha256(f"{type(net).__module__}.{type(net).__qualname__}\n{net!r}".encode())
    for name, t in net.state_dict().items():
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:{_digest(t)}".encode())
    out = h.hexdigest()[:20]
    _NETS[net] = (state, out)
    return out


def value_id(v):
    """A setting as JSON-able text: tensors and arrays by dtype, shape and a hash of their bytes."""
    if isinstance(v, np.ndarray):
        v = torch.from_numpy(np.ascontiguousarray(v))
    if isinstance(v, torch.Tensor):
        return f"tensor {v.dtype} {tuple(v.shape)} {_digest(v)}"
    if isinstance(v, dict):
        return {str(k): value_id(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    if isinstance(v, (list, tuple)):
        return [value_id(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return f"{type(v).__name__} {v!r}"


def _per_image(method, kw: dict, n: int) -> dict:
    """The settings given one value per image, as :func:`xailib.methods.explain` reads them."""
    from .methods import METHODS
    per = {}
    for k in METHODS[method].per_image:
        v = torch.as_tensor(kw[k]) if kw.get(k) is not None else None
        if v is not None and n > 1 and (v.numel() == n if v.ndim <= 1 else v.shape[0] == n):
            per[k] = v.flatten() if v.ndim <= 1 else v
    return per


def _place(i: int, n: int, batch: int, chunk: int) -> tuple:
    """(length, position) of image ``i``'s chunk: the caller's batches of ``batch`` images, each cut
    by :func:`~xailib.methods.explain` into chunks of ``chunk``."""
    a = (i // batch) * batch
    b = min(a + batch, n)
    c = a + ((i - a) // chunk) * chunk
    return min(chunk, b - c), i - c


_SENT: dict = {}         # on a worker: the networks sent to it, unpickled once, by network id


def _call(fn, nets: dict, args: tuple):
    """On a worker: ``fn(*args)``, each network argument (``nets``: {position: (network id, pickled
    bytes)}) unpickled at its first task there and kept for the next ones."""
    args = list(args)
    for pos, (net_id, blob) in nets.items():
        if net_id not in _SENT:
            if len(_SENT) >= 4:
                _SENT.pop(next(iter(_SENT)))
            _SENT[net_id] = pickle.loads(blob)
        args[pos] = _SENT[net_id]
    return fn(*args)


_HELD: dict = {}         # here: {(client, network id): the future of the network's pickled bytes}
NETWORK_KEY = "network-bytes"


def _bytes(blob: bytes) -> bytes:
    return blob


def _held(c, net_id: str, net: nn.Module):
    """The future of ``net``'s pickled bytes on ``c``'s cluster, made once per network and kept for
    the next calls (a chapter asks for scores many times in a row). The bytes are a task's result,
    not scattered data: a worker that holds them may die (and Dask's memory manager keeps a single
    copy of a broadcast), and the scheduler then makes them again from the task, where scattered
    bytes would be lost with the tasks that need them. Each network's task has its own key, so
    releasing an old one never drops a new one."""
    key = (c.id, net_id)
    if key not in _HELD:
        if len(_HELD) >= 8:
            _HELD.pop(next(iter(_HELD)))
        with warnings.catch_warnings():      # a network of a few MB is a "large graph" to Dask, sent once
            warnings.filterwarnings("ignore", message="Sending large graph")
            _HELD[key] = c.submit(_bytes, pickle.dumps(net), key=f"{NETWORK_KEY}-{net_id}-{uuid.uuid4().hex}")
    return _HELD[key]


def run_tasks(fn, calls: list[tuple], scheduler=None, desc: str | None = None) -> list:
    """``[fn(*call) for call in calls]``: in this process (``scheduler`` None and no
    ``$XAILIB_SCHEDULER``), or as one task per call on a Dask cluster (``"local:N"``, an address, a
    ``Client``), in the calls' order. A network among a call's arguments is pickled once and sent
    to each worker once, not with every task (Dask's own serialiser turns a module's ordered hook
    dictionaries into plain ones, which captum's hooks then fail on); tensors go on the CPU. The
    chapters' independent loops (maps, scores, 03's Impact grid, 04's patch evaluation) run here."""
    where = cluster.resolve_scheduler(scheduler)
    if where is None:
        return [fn(*call) for call in (_progress(calls, desc) if desc else calls)]
    c = cluster.shared_client(where)
    futures = []
    for call in calls:
        nets, args, gpu = {}, [], False
        for pos, a in enumerate(call):
            if isinstance(a, nn.Module):
                i = network_id(a)
                nets[pos] = (i, _held(c, i, a))
                gpu |= inference.model_device(a).type == "cuda"
                a = None
            args.append(a.cpu() if isinstance(a, torch.Tensor) else a)
        futures.append(c.submit(_call, fn, nets, tuple(args), pure=False, resources={"GPU": 1} if gpu else None))
    return c.gather(futures)


def _compute_and_put(url, net, x, t, method, params, paths, what):
    """Explain one batch and write one file per map (here or on a worker); the seconds it took."""
    from .methods import explain
    t0 = time.perf_counter()
    maps = explain(net, x, t, method, **params).cpu()
    took = time.perf_counter() - t0
    store = cluster.Store(url)
    for m, path, w in zip(maps, paths, what):
        store.put(path, {"value": m.clone(), "seconds": took / len(paths), "map": w})
    return maps, took


def _score_and_put(url, net, x, t, smaps, metric, params, paths, what):
    """Score one batch of maps and write one file per score (here or on a worker); the seconds."""
    from .metrics import score
    t0 = time.perf_counter()
    values = score(net, x, t, smaps, metric, **params)
    took = time.perf_counter() - t0
    store = cluster.Store(url)
    for v, path, w in zip(values, paths, what):
        store.put(path, {"value": v.clone(), "seconds": took / len(paths), "score": w})
    return values, took


class MapStore:
    """Saliency maps read from, or computed into, the book's map store (see the module's doc).

    ``url``: the store (default :func:`xailib.cluster.default_store`); ``scheduler``: where missing
    maps are computed (None: ``$XAILIB_SCHEDULER``, else this process; ``"local:N"``; a scheduler
    address; a ``dask.distributed.Client``)."""

    def __init__(self, url: str | None = None, scheduler=None):
        self.store = cluster.Store(url)
        self.scheduler = cluster.resolve_scheduler(scheduler)
        self.computed = self.read = 0          # maps computed and maps read by this object
        self.scored = self.read_scores = 0     # scores computed and read

    def keys(self, net: nn.Module, images: torch.Tensor, targets, method: str, *, batch: int | None = None,
             **params) -> list[str]:
        """One key per image: what its map is computed from (see the module's doc)."""
        from .methods import METHODS
        from .methods.registry import check_targets
        check_choice("method", method, METHODS)
        m, n = METHODS[method], len(images)
        batch = batch or max(n, 1)
        check_positive_int("batch", batch)
        t = check_targets(targets, n)
        chunk = params.get("batch_size") or m.batch_size
        kw = {**m.defaults, **{k: v for k, v in params.items() if k not in ("batch_size", "progress", "fast")}}
        per = _per_image(method, kw, n)
        device = inference.model_device(net, fallback=images.device)
        base = json.dumps({"network": network_id(net), "device": device.type, "method": method,
                           "settings": value_id({k: v for k, v in kw.items() if k not in per}),
                           "code": code_version(), "kernels": determinism.kernel_key(),
                           "inference": inference.settings(fast=params.get("fast"))},
                          sort_keys=True, default=str)
        out = []
        for i in range(n):
            own = {"image": _digest(images[i].to(torch.float32)), "target": int(t[i]),
                   "per_image": {k: value_id(v[i]) for k, v in per.items()},
                   "place": None if m.batch_invariant else _place(i, n, batch, chunk)}
            out.append(hashlib.sha256((base + json.dumps(own, sort_keys=True)).encode()).hexdigest()[:24])
        return out

    @staticmethod
    def path(method: str, key: str) -> str:
        return f"maps/{method}/{key[:2]}/{key}.pt"

    def explain(self, net: nn.Module, images: torch.Tensor, targets, method: str, *, batch: int | None = None,
                progress: bool = False, **params) -> torch.Tensor:
        """``method``'s maps (N, H, W) of ``net`` for ``images`` and ``targets``, as
        ``torch.cat([explain(net, images[b], targets[b], method, **params) for each batch b of
        batch images])`` gives them (bit for bit), each read from the store when it is there."""
        return self.timed(net, images, targets, method, batch=batch, progress=progress, **params)[0]

    def timed(self, net: nn.Module, images: torch.Tensor, targets, method: str, *, batch: int | None = None,
              progress: bool = False, per_image: bool = False, **params) -> tuple[torch.Tensor, float]:
        """(maps, seconds per image): the seconds are those of the maps' first computation (each
        image's share of its batch's), their mean, or with ``per_image`` one value per image."""
        from .methods import METHODS
        from .methods.registry import check_images
        check_images(images)
        n = len(images)
        batch = batch or max(n, 1)
        keys = self.keys(net, images, targets, method, batch=batch, **params)
        t = torch.as_tensor(targets).to(torch.long)
        t = t.expand(n) if t.ndim == 0 else t
        paths = [self.path(method, k) for k in keys]
        maps, secs = [None] * n, [0.0] * n
        todo = []                          # index lists to compute, each as the caller's batch would be
        for a in range(0, n, batch):
            missing = []
            for i in range(a, min(a + batch, n)):
                rec = self.store.get_or_forget(paths[i], what="stored map")
                if rec is None:
                    missing.append(i)
                else:
                    maps[i], secs[i] = rec["value"], rec["seconds"]
            if missing:
                todo.append(missing if METHODS[method].batch_invariant else list(range(a, min(a + batch, n))))
        self.read += n - sum(len(i) for i in todo)
        self.computed += sum(len(i) for i in todo)
        kw = {**METHODS[method].defaults, **params}
        per = _per_image(method, {k: v for k, v in kw.items() if k in params}, n)
        what = lambda i: f"{method}, network {network_id(net)[:8]}, image {keys[i][:8]}"  # noqa: E731

        def job(idx):
            sl = torch.as_tensor(idx)
            args = dict(params, **{k: v[sl] for k, v in per.items()})
            return images[sl], t[sl], method, args, [paths[i] for i in idx], [what(i) for i in idx]

        results = self._run(_compute_and_put, net, [job(idx) for idx in todo], method if progress else None)
        for idx, (value, took) in zip(todo, results):
            for j, i in enumerate(idx):
                maps[i], secs[i] = value[j], took / len(idx)
        out = torch.stack(maps) if n else torch.zeros(0, *images.shape[-2:])
        return out.to(images.device), (secs if per_image else sum(secs) / n if n else 0.0)

    def _run(self, fn, net, jobs: list, desc: str | None = None) -> list:
        """``[fn(url, net, *job) for job in jobs]``, here or on the cluster (:func:`run_tasks`)."""
        if jobs and self.scheduler is not None and str(self.store.url).startswith("memory://"):
            raise ParameterError("a memory:// store lives in one process; a cluster's workers need a "
                                 "folder they share or an object store")
        return run_tasks(fn, [(self.store.url, net, *job) for job in jobs], self.scheduler or "process", desc)

    # -- scores ------------------------------------------------------------------------------
    def score_keys(self, net: nn.Module | None, images: torch.Tensor, targets, maps: torch.Tensor, metric: str, *,
                   batch: int | None = None, **params) -> list[str]:
        """One key per image for ``metric``'s score of its map: the network (None for a metric that
        does not call it), the metric and all its settings (defaults filled in, per-image settings
        such as masks and boxes per image), the image, its target and its map, by their bytes,
        :func:`score_code_version`, the kernels and inference settings, and the image's place in the
        caller's batch (a metric puts a batch's perturbed copies into shared model calls)."""
        from .metrics import METRICS
        from .metrics.registry import PER_IMAGE
        check_choice("metric", metric, METRICS)
        check_unknown_keys(f"metric {metric!r}", {k: v for k, v in params.items() if k != "fast"},
                           METRICS[metric].defaults)
        n = len(images)
        batch = batch or max(n, 1)
        check_positive_int("batch", batch)
        kw = {**METRICS[metric].defaults, **{k: v for k, v in params.items() if k != "fast"}}
        per = {k: v for k, v in kw.items() if k in PER_IMAGE and v is not None}
        per = {k: torch.as_tensor(v).expand(n) if isinstance(v, (int, float)) else v for k, v in per.items()}   # one for all
        t = None if targets is None else torch.as_tensor(targets).reshape(-1)
        t = t.expand(n) if t is not None and t.numel() == 1 else t
        base = json.dumps({"network": network_id(net) if net is not None else None,
                           "device": inference.model_device(net, fallback=images.device).type if net is not None
                           else None, "metric": metric,
                           "settings": value_id({k: v for k, v in kw.items() if k not in per}),
                           "code": score_code_version(), "kernels": determinism.kernel_key(),
                           "inference": inference.settings(fast=params.get("fast"))}, sort_keys=True, default=str)
        out = []
        for i in range(n):
            own = {"image": _digest(images[i].to(torch.float32)), "map": _digest(maps[i]),
                   "target": None if t is None else int(t[i]),
                   "per_image": {k: value_id(v[i]) for k, v in per.items()}, "place": _place(i, n, batch, batch)}
            out.append(hashlib.sha256((base + json.dumps(own, sort_keys=True)).encode()).hexdigest()[:24])
        return out

    def scores(self, net: nn.Module | None, images: torch.Tensor, targets, maps: torch.Tensor, metric: str, *,
               batch: int | None = None, per_image: bool = False, **params) -> tuple[torch.Tensor, float]:
        """(scores, seconds per image): ``metric``'s per-image scores of ``maps``, as
        ``torch.cat([score(net, images[b], targets[b], maps[b], metric, **params) for each batch b
        of batch images])`` gives them (bit for bit), a batch read from the store when all its
        scores are there. Per-image settings (:data:`xailib.metrics.registry.PER_IMAGE`) are cut
        with the images. The seconds are the first computation's (their mean, or one per image)."""
        n = len(images)
        batch = batch or max(n, 1)
        keys = self.score_keys(net, images, targets, maps, metric, batch=batch, **params)
        paths = [f"scores/{metric}/{k[:2]}/{k}.pt" for k in keys]
        values, secs, todo = [None] * n, [0.0] * n, []
        for a in range(0, n, batch):
            idx = list(range(a, min(a + batch, n)))
            recs = [self.store.get_or_forget(paths[i], what="stored score") for i in idx]
            if any(r is None for r in recs):
                todo.append(idx)
            else:
                for i, r in zip(idx, recs):
                    values[i], secs[i] = r["value"], r["seconds"]
        self.scored += sum(len(i) for i in todo)
        self.read_scores += n - sum(len(i) for i in todo)
        from .metrics.registry import PER_IMAGE
        t = None if targets is None else torch.as_tensor(targets)

        def job(idx):
            sl = slice(idx[0], idx[-1] + 1)
            args = {k: v[sl] if k in PER_IMAGE and v is not None and hasattr(v, "__len__") and len(v) == n else v
                    for k, v in params.items()}
            tt = None if t is None else t if t.ndim == 0 else t[sl]
            return (images[sl], tt, maps[sl], metric, args, [paths[i] for i in idx],
                    [f"{metric}, image {keys[i][:8]}" for i in idx])

        for idx, (value, took) in zip(todo, self._run(_score_and_put, net, [job(i) for i in todo])):
            for j, i in enumerate(idx):
                values[i], secs[i] = value[j], took / len(idx)
        out = torch.stack(values).to(torch.float64) if n else torch.zeros(0, dtype=torch.float64)
        return out, (secs if per_image else sum(secs) / n if n else 0.0)


def stored_count(url: str | None = None) -> int:
    """How many maps the store at ``url`` (default: the book's) holds."""
    st = cluster.Store(url)
    root = f"{st.root.rstrip('/')}/maps"
    return len(st.fs.find(root)) if st.fs.exists(root) else 0


def _progress(todo, method):
    from tqdm.auto import tqdm
    return tqdm(todo, desc=method, leave=False)
