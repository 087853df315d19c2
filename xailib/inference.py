"""One fast path for every no-grad model call: ``forward(model, x) -> logits``.

Nearly all of the book's time is forward passes (RISE, LIME, KernelSHAP, occlusion, deletion /
insertion, the Impact Score, patch evaluation), so every call that needs only the model's
outputs goes through :func:`forward`, which runs the model in its fastest *numerically
faithful* form for the device:

- batch-norm layers folded into the convolutions before them (``torch.fx``'s ``fuse``; exact up
  to float rounding in eval mode), skipped where fx cannot trace the model;
- weights and inputs in ``channels_last`` layout, the one oneDNN and cuDNN run fastest;
- ``torch.compile`` on top when asked (``XAILIB_FAST=compile`` or ``options(fast="compile")``):
  it pays on long runs and GPUs, but costs ~20 s per model and input shape on the first call,
  more than a chapter's default run saves; where no compiler works it falls back, once, with a
  warning;
- on a GPU, reduced precision (``precision="bfloat16"`` or ``"float16"``) only when asked.

The fast form is built once per model and device and cached for the process; it is rebuilt when
the model's weights change (each tensor's version counter is part of the key), and not used at
all while the model is in training mode or carries hooks (captum's layer methods), so it never
answers for a model other than the one it was built from. The batch size of each call is chosen
by measuring throughput once per process for the model, device and input shape (on a GPU within
the memory free); ``batch_size=`` or ``XAILIB_BATCH_SIZE`` pins it.

Like any batched evaluation, the path assumes that the model treats the rows of a batch
independently, as every classifier in eval mode does.

``XAILIB_FAST=0`` (the whole book) or ``fast=False`` (one ``explain`` / ``score`` call, or
``with options(fast=False):``) runs the model exactly as given, in eager mode.

Reproducibility: the same device, thread count and batch size give bit-identical outputs. On
the fast path short chunks are padded to ``MIN_ROWS`` rows, which on this book's CPUs makes the
outputs bit-identical across batch sizes too (tested); the fast and eager paths agree within
``TOLERANCE`` on the logits (measured here: within 5e-6 on the benchmark networks), which the tests
check for every registered method and metric.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import os
import time
import warnings
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ParameterError, check_choice, check_positive_int

FAST_MODES = (False, True, "compile")
PRECISIONS = ("float32", "bfloat16", "float16")
TOLERANCE = 1e-4      # max |logit difference| allowed between the paths (tests)
CPU_BATCHES = (32, 64, 128, 256)
GPU_BATCHES = (64, 128, 256, 512, 1024, 2048, 4096)
# oneDNN picks other kernels below 16 rows, so a short last chunk would round differently from
# the same rows inside a full batch; the fast path pads such chunks to 16 rows.
MIN_ROWS = 16
UNMEASURED_BATCH = (64, 512)   # CPU, GPU: for a model with hooks, which is never run on test inputs

_options: contextvars.ContextVar[dict] = contextvars.ContextVar("xailib_inference", default={})


def _env_fast():
    v = os.environ.get("XAILIB_FAST", "1").strip().lower()
    if v in ("0", "false", "no", "off"):
        return False
    if v == "compile":
        return "compile"
    if v in ("1", "true", "yes", "on", ""):
        return True
    raise ParameterError(f"XAILIB_FAST={v!r} is not accepted; use 0, 1 or compile")


def _env_batch():
    v = os.environ.get("XAILIB_BATCH_SIZE")
    if not v:
        return None
    try:
        b = int(v)
    except ValueError:
        b = 0
    if b < 1:
        raise ParameterError(f"XAILIB_BATCH_SIZE={v!r} must be a positive integer")
    return b


_DEFAULTS: dict = {}


def settings(fast=None, precision=None, batch_size=None) -> dict:
    """The settings in force: explicit arguments, then :func:`options`, then :func:`configure`,
    then the environment (``XAILIB_FAST``, ``XAILIB_PRECISION``, ``XAILIB_BATCH_SIZE``)."""
    ctx = {**_DEFAULTS, **_options.get()}
    fast = ctx.get("fast") if fast is None else fast
    fast = _env_fast() if fast is None else fast
    check_choice("fast", fast, FAST_MODES)
    precision = precision or ctx.get("precision") or os.environ.get("XAILIB_PRECISION", "float32")
    check_choice("precision", precision, PRECISIONS)
    batch_size = batch_size or ctx.get("batch_size") or _env_batch()
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
    return dict(fast=fast, precision=precision, batch_size=batch_size)


def configure(fast=None, precision=None, batch_size=None, device=None) -> None:
    """Process-wide defaults, e.g. a notebook's parameters; checked at once against ``device``
    (reduced precision needs a GPU), so a wrong value stops a run before any work."""
    new = {k: v for k, v in dict(fast=fast, precision=precision, batch_size=batch_size).items()
           if v is not None}
    s = settings(**new)
    if device is not None and s["precision"] != "float32" and torch.device(device).type != "cuda":
        raise ParameterError(f"precision={s['precision']!r} is offered on a GPU only (device="
                             f"{str(device)!r}); use precision='float32' on the CPU")
    _DEFAULTS.clear()
    _DEFAULTS.update(new)


@contextlib.contextmanager
def options(fast=None, precision=None, batch_size=None):
    """Within the block, model calls use these settings (``None`` keeps the current one)."""
    new = {**_options.get(), **{k: v for k, v in dict(fast=fast, precision=precision,
                                                      batch_size=batch_size).items() if v is not None}}
    settings(**new)  # validate now, not at the first model call
    token = _options.set(new)
    try:
        yield
    finally:
        _options.reset(token)


def model_device(model: nn.Module, fallback=None) -> torch.device:
    """The device of the model's first parameter or buffer (``fallback``, else CPU, if none)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device(fallback) if fallback is not None else torch.device("cpu")


# --------------------------------------------------------------------------------------------
# The fast form of a model
# --------------------------------------------------------------------------------------------

@dataclass
class FastForm:
    """A model's fast form and how it was made (``plain``: the same form uncompiled)."""

    module: nn.Module
    fingerprint: tuple
    mode: object
    precision: str
    folded: bool
    compiled: bool
    channels_last: bool
    plain: nn.Module | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Run the form; a compiled form whose compilation fails (no C compiler, an unsupported
        operation) falls back to the uncompiled one, for this and every later model, once."""
        global _COMPILE_FAILED
        if not self.compiled:
            return self.module(x)
        try:
            return self.module(x)
        except Exception as e:  # noqa: BLE001 - torch.compile fails lazily, at the first call
            _COMPILE_FAILED = True
            self.module, self.compiled = self.plain, False
            warnings.warn(f"torch.compile failed here ({type(e).__name__}: {str(e)[:200]}); "
                          "using the folded channels_last model instead")
            return self.module(x)

    def describe(self) -> str:
        parts = (["batch-norm folded"] if self.folded else []) + \
                (["channels_last"] if self.channels_last else []) + \
                (["torch.compile"] if self.compiled else []) + [self.precision]
        return ", ".join(parts)


_FORMS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()
_COMPILE_FAILED = False


def weights_state(model: nn.Module) -> tuple:
    """Changes whenever a weight or buffer is replaced or modified in place."""
    return tuple((id(t), t.data_ptr(), t._version) for t in
                 list(model.parameters()) + list(model.buffers()))


def _has_hooks(model: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
               for m in model.modules())


def _fold_batchnorm(model: nn.Module):
    """Conv + BatchNorm pairs folded into one convolution by torch.fx (a copy); None if the
    model cannot be traced symbolically (data-dependent control flow)."""
    from torch.fx.experimental.optimization import fuse
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fuse(model, inplace=False)
    except Exception:  # noqa: BLE001 - any tracing failure means: keep the module as it is
        return None


def _build(model: nn.Module, dev: torch.device, fast, precision: str) -> FastForm:
    if precision != "float32" and dev.type != "cuda":
        raise ParameterError(f"precision={precision!r} is offered on a GPU only; this model is on "
                             f"{dev}. Use precision='float32' on the CPU")
    folded = _fold_batchnorm(model)
    module = folded if folded is not None else copy.deepcopy(model)
    module = module.eval().to(memory_format=torch.channels_last)
    if precision != "float32":
        module = module.to(getattr(torch, precision))
    for p in module.parameters():
        p.requires_grad_(False)
    plain, compiled = module, False
    if fast == "compile" and not _COMPILE_FAILED:
        module, compiled = torch.compile(module), True    # compiles at the first call, per shape
    return FastForm(module, weights_state(model), fast, precision, folded is not None, compiled, True,
                    plain)


def fast_form(model: nn.Module, fast=None, precision=None) -> FastForm | None:
    """The cached fast form of ``model`` (None when the eager model must run: fast mode off,
    model in training mode, or hooks attached)."""
    s = settings(fast, precision)
    if not s["fast"] or model.training or _has_hooks(model):
        return None
    dev = model_device(model)
    key = (str(dev), s["fast"], s["precision"])
    forms = _FORMS.setdefault(model, {})
    form = forms.get(key)
    if form is None or form.fingerprint != weights_state(model):
        form = forms[key] = _build(model, dev, s["fast"], s["precision"])
    return form


# --------------------------------------------------------------------------------------------
# Batch size by measurement
# --------------------------------------------------------------------------------------------

# Measured batch sizes per model, kept across rebuilds of its fast form (new weights do not
# change the best batch size): {(device, mode, precision, input shape): batch size}.
_BATCHES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def share_batch_sizes(source: nn.Module, copy_: nn.Module) -> None:
    """Let ``copy_`` (the same architecture with other weights, e.g. a randomised copy) use the
    batch sizes measured for ``source`` instead of measuring its own: weights do not change the
    best batch size, and a sanity check makes dozens of such copies."""
    if source in _BATCHES:
        _BATCHES[copy_] = dict(_BATCHES[source])


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@torch.no_grad()
def measure_batch_size(run, sample_shape: tuple, dev: torch.device, dtype=torch.float32,
                       candidates=None, budget_s: float = 2.0, rows: int = 128) -> int:
    """The candidate batch size with the highest throughput of ``run`` on random inputs.

    Each candidate runs on at least ``rows`` rows (in batches of its size), once to warm up and
    then twice, keeping the faster (timings on a shared machine are noisy). Candidates
    grow until throughput stops improving for two in a row, the time spent passes ``budget_s``,
    or (on a GPU) the next batch would not fit in half of the memory free.
    """
    cands = candidates or (GPU_BATCHES if dev.type == "cuda" else CPU_BATCHES)
    g = torch.Generator(device="cpu").manual_seed(0)
    best_b, best_rate, worse, t_start = cands[0], 0.0, 0, time.perf_counter()
    for b in cands:
        if dev.type == "cuda":
            free, _ = torch.cuda.mem_get_info(dev)
            torch.cuda.reset_peak_memory_stats(dev)
        reps = max(1, -(-rows // b))
        try:
            x = torch.rand(b, *sample_shape, generator=g).to(dev, dtype)
            run(x)
            _sync(dev)
            dt = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                for _ in range(reps):
                    run(x)
                _sync(dev)
                dt = min(dt, time.perf_counter() - t0)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        rate = reps * b / max(dt, 1e-9)
        if rate > best_rate * 1.03:
            best_b, best_rate, worse = b, rate, 0
        else:
            worse += 1
        if worse >= 2 or time.perf_counter() - t_start > budget_s:
            break
        if dev.type == "cuda" and 2 * torch.cuda.max_memory_allocated(dev) > free / 2:
            break
    return best_b


def _batch_size(model, form: FastForm | None, sample_shape, dev, pinned) -> int:
    if pinned:
        return pinned
    if form is None and _has_hooks(model):     # never run someone's hooks on random inputs
        return UNMEASURED_BATCH[dev.type == "cuda"]
    if form is not None:
        run = lambda x: form(x.contiguous(memory_format=torch.channels_last))  # noqa: E731
        mode, dtype = (form.mode, form.precision), getattr(torch, form.precision)
    else:
        run, mode, dtype = model, (False, "float32"), torch.float32
    key = (str(dev), *mode, tuple(sample_shape))
    table = _BATCHES.setdefault(model, {})
    if key not in table:
        table[key] = measure_batch_size(run, tuple(sample_shape), dev, dtype)
    return table[key]


# --------------------------------------------------------------------------------------------
# The call
# --------------------------------------------------------------------------------------------

@dataclass
class Stats:
    """What went through :func:`forward` (for the benchmark: time inside model calls)."""

    calls: int = 0
    rows: int = 0
    seconds: float = 0.0


STATS = Stats()


@torch.no_grad()
def forward(model: nn.Module, x: torch.Tensor, *, fast=None, precision=None,
            batch_size: int | None = None) -> torch.Tensor:
    """The model's logits for ``x`` (N, C, H, W), float32, on the model's device.

    Runs the fast form of the model (see the module's doc) unless it is switched off, in chunks
    of the measured (or given) batch size.
    """
    if x.ndim < 2:
        raise ParameterError(f"model inputs must be batched (N, ...), got shape {tuple(x.shape)}")
    t0 = time.perf_counter()
    s = settings(fast, precision, batch_size)
    dev = model_device(model, fallback=x.device)
    form = fast_form(model, s["fast"], s["precision"])
    bs = _batch_size(model, form, tuple(x.shape[1:]), dev, s["batch_size"])
    outs = []
    for i in range(0, len(x), bs):
        chunk = x[i:i + bs].to(dev, torch.float32, non_blocking=True)
        if form is None:
            outs.append(model(chunk).float())
        else:
            k = len(chunk)
            if k < MIN_ROWS:      # same kernels as a full batch: results independent of batch size
                chunk = torch.cat([chunk, chunk[-1:].expand(MIN_ROWS - k, *chunk.shape[1:])])
            chunk = chunk.to(getattr(torch, form.precision)).contiguous(memory_format=torch.channels_last)
            outs.append(form(chunk)[:k].float())
    out = torch.cat(outs) if outs else torch.empty(0, device=dev)
    _sync(dev)  # on a GPU, so that the seconds counted are the model's
    STATS.calls += 1
    STATS.rows += len(x)
    STATS.seconds += time.perf_counter() - t0
    return out


def probabilities(model: nn.Module, x: torch.Tensor, **kw) -> torch.Tensor:
    """Softmax of :func:`forward`, (N, classes), on the model's device."""
    return torch.softmax(forward(model, x, **kw), 1)


class FastModule(nn.Module):
    """``model`` behind :func:`forward`, as a module: for third-party code that calls a model
    (TorchRay, Quantus, captum's metrics) and should get the same fast path."""

    def __init__(self, model: nn.Module, **kw):
        super().__init__()
        self.model, self.kw = model, kw
        self.train(model.training)

    def forward(self, x):
        return forward(self.model, x, **self.kw)


def describe(model: nn.Module, sample_shape=None, **kw) -> str:
    """One line: which form runs ``model`` now, and the batch size for ``sample_shape``."""
    s = settings(**kw)
    form = fast_form(model, s["fast"], s["precision"])
    text = "eager (fast path off)" if form is None else form.describe()
    if sample_shape is not None:
        dev = model_device(model)
        text += f"; batch size {_batch_size(model, form, tuple(sample_shape), dev, s['batch_size'])}"
    return text
