"""Where the book's heavy work runs and lands: a Dask scheduler and an fsspec store.

:func:`resolve_scheduler` reads where work runs (``scheduler``, else ``$XAILIB_SCHEDULER``, else
this process): ``"local:N"``, a ``dask.distributed.LocalCluster`` of N worker processes, or a
scheduler's address ``"tcp://host:8786"``; :func:`client` connects to it for one block of work and
:func:`shared_client` once per process. :class:`Store` is a folder behind an fsspec URL
(``$XAILIB_STORE``, default ``<cache>/shards``) whose files are written atomically; the shards
(:mod:`xailib.shards`) and the book's map store (:mod:`xailib.map_store`) keep their results there.
"""
from __future__ import annotations

import io
import os
import uuid
from contextlib import contextmanager

import torch

from .errors import MissingResourceError, ParameterError

SCHEDULER_ENV, STORE_ENV = "XAILIB_SCHEDULER", "XAILIB_STORE"
CONNECT_TIMEOUT = 10          # seconds to wait for a remote scheduler to answer
WORKER_TIMEOUT = int(os.environ.get("XAILIB_WORKER_TIMEOUT", 60))   # seconds to wait for its first worker


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------

def default_store() -> str:
    from .data import cache_dir
    return os.environ.get(STORE_ENV) or str(cache_dir() / "shards")


class Store:
    """A folder of records (shards' results, stored maps) behind an fsspec URL; the methods that
    take a shard (a :class:`xailib.shards.Shard`) use its ``path``."""

    def __init__(self, url: str | None = None):
        import fsspec
        self.url = str(url or default_store())
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except ImportError as e:
            proto = self.url.split("://")[0]
            raise MissingResourceError(f"store {self.url!r}: the fsspec backend for {proto}:// is not installed "
                                       f"({e})") from None
        except ValueError as e:
            raise ParameterError(f"store {self.url!r}: {e}; use a folder, file://, memory:// or an "
                                 "object-store URL whose fsspec backend is installed") from None
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    def _full(self, path: str) -> str:
        return f"{self.root.rstrip('/')}/{path}"

    def exists(self, shard) -> bool:
        return self.has(shard.path)

    def write(self, shard, value: torch.Tensor, seconds: float) -> None:
        self.put(shard.path, {"value": value.cpu(), "seconds": seconds, "shard": shard.describe()})

    def read(self, shard) -> dict:
        return self.get(shard.path)

    def read_or_forget(self, shard) -> dict | None:
        """The shard's record, or None when it is not in the store (see :meth:`get_or_forget`)."""
        return self.get_or_forget(shard.path, stacklevel=4, what="shard file")

    # -- any record, by its path in the store (the shards' and the map store's) ------------------
    def has(self, path: str) -> bool:
        return self.fs.exists(self._full(path))

    def put(self, path: str, record: dict) -> None:
        """Write ``record`` (tensors and plain values) at ``path``, atomically: a reader sees the
        old file or the new one, never part of one, and of two writers the last rename wins."""
        buf = io.BytesIO()
        torch.save(record, buf)
        full = self._full(path)
        self.fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
        if self.local:        # a temporary name, then an atomic rename on the same file system
            tmp = f"{full}.tmp-{uuid.uuid4().hex}"
            with self.fs.open(tmp, "wb") as f:
                f.write(buf.getvalue())
            os.replace(tmp, full)
        else:                 # an object store (or memory) writes the object whole
            self.fs.pipe_file(full, buf.getvalue())

    def get(self, path: str) -> dict:
        with self.fs.open(self._full(path), "rb") as f:
            return torch.load(io.BytesIO(f.read()), weights_only=True)

    def get_or_forget(self, path: str, stacklevel: int = 3, what: str = "store file") -> dict | None:
        """The record at ``path``, or None when there is none. A file that cannot be read
        (truncated by a kill, a full disk) is named in a warning and removed, so it is computed again."""
        if not self.has(path):
            return None
        try:
            return self.get(path)
        except Exception as e:
            import warnings
            warnings.warn(f"{what} {self._full(path)} could not be read ({type(e).__name__}: {e}); "
                          "it is removed and computed again", stacklevel=stacklevel)
            try:
                self.fs.rm(self._full(path))
            except FileNotFoundError:      # another reader removed it first
                pass
            return None

    def listing(self) -> list[str]:
        """Every file under the store (for checks: no temporary file left behind)."""
        return sorted(self.fs.find(self.root))


# --------------------------------------------------------------------------------------------
# The scheduler
# --------------------------------------------------------------------------------------------

def resolve_scheduler(scheduler: str | None = None) -> str | None:
    """The scheduler to use: ``scheduler``, else ``$XAILIB_SCHEDULER``, else None (in process). A
    ``dask.distributed.Client`` is returned as it is."""
    if scheduler is not None and not isinstance(scheduler, str) and hasattr(scheduler, "submit"):
        return scheduler
    s = scheduler if scheduler is not None else os.environ.get(SCHEDULER_ENV) or None
    if s in (None, "", "none", "process"):
        return None
    if not isinstance(s, str) or not (s.startswith("local:") or "://" in s):
        raise ParameterError(f"scheduler={s!r} is not accepted; use None (this process), 'local:N' (a local "
                             "cluster of N worker processes) or a scheduler address such as 'tcp://host:8786'")
    if s.startswith("local:"):
        n = s.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ParameterError(f"scheduler={s!r}: the number of local workers must be an integer >= 1")
    return s


@contextmanager
def client(scheduler: str, threads_per_worker: int = 1):
    """A ``dask.distributed.Client`` for ``scheduler`` ('local:N' or an address), closed after."""
    from dask.distributed import Client, LocalCluster
    if scheduler.startswith("local:"):
        saved = os.environ.copy()
        try:
            cluster = LocalCluster(n_workers=int(scheduler.split(":")[1]), threads_per_worker=threads_per_worker,
                                   processes=True, dashboard_address=":0", silence_logs=40)
        finally:
            _restore_environment(saved)
        c = Client(cluster)
        try:
            yield c
        finally:
            c.close()
            cluster.close()
            _restore_environment(saved)       # a nanny that restarted a worker wrote them again
        return
    try:
        c = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as e:
        raise MissingResourceError(f"no Dask scheduler answers at {scheduler!r} within {CONNECT_TIMEOUT} s ({e}); "
                                   "start one with `dask scheduler` and workers with `dask worker "
                                   f"{scheduler}`, or use scheduler='local:N' or None") from None
    try:
        wait_for_workers(c, scheduler)
        yield c
    finally:
        c.close()


_CLIENTS: dict = {}


def _restore_environment(saved: dict) -> None:
    """Put this process's environment back as ``saved``. Dask's nanny writes its workers'
    settings (``distributed.nanny.pre-spawn-environ``: ``OMP_NUM_THREADS=1``, ``MKL_NUM_THREADS=1``,
    ``OPENBLAS_NUM_THREADS=1``, ``MALLOC_TRIM_THRESHOLD_=65536``) into the process that starts a
    local cluster, to be inherited by the workers, and leaves them there. Every process started
    from here afterwards (a notebook's kernel, a script) would then run torch on one thread and
    return freed memory to the system at once: other numbers where a thread count matters (the
    learned masks), and measured in CI, a kernel started after a cluster test ran its chapter up
    to twice as slowly, 20-38 % of the CPU in page faults."""
    for k in [k for k in os.environ if k not in saved]:
        del os.environ[k]
    os.environ.update(saved)


def shared_client(scheduler):
    """One ``dask.distributed.Client`` per scheduler for the whole process, started at the first
    use and closed when the process ends: a chapter asks for maps many times, and a local
    cluster takes seconds to start. A ``Client`` given as ``scheduler`` is returned as it is."""
    if not isinstance(scheduler, str):
        return scheduler
    if scheduler not in _CLIENTS:
        import atexit
        cm = client(scheduler)
        _CLIENTS[scheduler] = (cm, cm.__enter__())
        atexit.register(_close, scheduler)
    return _CLIENTS[scheduler][1]


def _close(scheduler: str) -> None:
    cm, _ = _CLIENTS.pop(scheduler, (None, None))
    if cm is not None:
        try:
            cm.__exit__(None, None, None)
        except Exception:        # the interpreter is going down; the cluster's processes go with it
            pass


def wait_for_workers(c, scheduler, timeout: float | None = None) -> None:
    """Wait up to ``timeout`` seconds (``WORKER_TIMEOUT``, ``$XAILIB_WORKER_TIMEOUT``) for the
    scheduler to have a worker; a scheduler with none would otherwise hold the run forever."""
    timeout = WORKER_TIMEOUT if timeout is None else timeout
    try:
        c.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        raise MissingResourceError(f"the Dask scheduler at {scheduler!r} has no worker after {timeout:g} s; start "
                                   f"one with `dask worker {scheduler}` (or set $XAILIB_WORKER_TIMEOUT to wait "
                                   "longer), or use scheduler='local:N' or None") from None
