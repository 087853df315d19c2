"""What a published number may depend on: the parameters, and nothing of the machine's day.

On one CPU, thread count and model batch size must leave every map bit-identical; the kernel
variables of :mod:`xailib.determinism` must be honoured by the libraries that read them (a
process started under them runs AVX2 kernels, one started with a narrower set runs others and
rounds otherwise: which is why a published run pins them)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xailib import data, determinism, inference, models
from xailib.methods import explain

ROOT = Path(__file__).resolve().parent.parent


def _avx2() -> bool:
    try:
        return " avx2 " in f" {Path('/proc/cpuinfo').read_text().replace(chr(10), ' ')} "
    except OSError:
        return False


@pytest.fixture(scope="module")
def batch():
    pool = data.load_dataset("shapes", "test", n=16, size=64, seed=0)
    return pool.images, pool.labels


def test_environment_names_the_kernels_on_x86_only(monkeypatch):
    monkeypatch.setattr(determinism.platform, "machine", lambda: "x86_64")
    env = determinism.environment()
    assert env == {**determinism.KERNELS, "XAILIB_BATCH_SIZE": str(determinism.BATCH_SIZE)}
    monkeypatch.setattr(determinism.platform, "machine", lambda: "aarch64")
    assert determinism.environment() == {"XAILIB_BATCH_SIZE": str(determinism.BATCH_SIZE)}


def test_apply_keeps_what_the_user_set(monkeypatch):
    monkeypatch.setattr(determinism.platform, "machine", lambda: "x86_64")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Prescott")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    determinism.apply()
    assert os.environ["OPENBLAS_CORETYPE"] == "Prescott" and os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert not determinism.pinned()
    determinism.apply(override=True)
    assert os.environ["OPENBLAS_CORETYPE"] == "Haswell" and determinism.pinned()


def test_shell_lines_keep_a_value_already_set():
    out = subprocess.run([sys.executable, "-m", "xailib.determinism"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert 'export XAILIB_BATCH_SIZE="${XAILIB_BATCH_SIZE:-64}"' in out.splitlines()


@pytest.mark.parametrize("name", ["vgg_mini", "resnet_mini"])
def test_maps_do_not_depend_on_the_thread_count(name, batch):
    x, t = batch
    net = models.load_model(name)
    before = torch.get_num_threads()
    got = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            got[n] = (inference.forward(net, x, batch_size=16), explain(net, x, t, "gradient"),
                      explain(net, x, t, "gradcam"),
                      explain(net, x[:2], t[:2], "neuromask", iterations=20))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(got[1], got[2]):
        assert torch.equal(a, b)


def test_logits_do_not_depend_on_the_batch_size_and_maps_repeat(batch):
    """A gradient map does depend on the batch it is made in (autograd runs the batch as it is,
    and oneDNN picks other kernels below 16 rows), so the chapters make maps in fixed batches of
    images, a function of their parameters; the same batch gives the same bits every time."""
    x, t = batch
    net = models.load_model("vgg_mini")
    assert torch.equal(inference.forward(net, x, batch_size=7), inference.forward(net, x, batch_size=64))
    assert torch.equal(explain(net, x[:5], t[:5], "gradient"), explain(net, x[:5], t[:5], "gradient"))


PROBE = ("import torch; from xailib import data, models; from xailib.methods import explain; "
         "p = data.load_dataset('shapes', 'test', n=4, size=64, seed=0); "
         "m = explain(models.load_model('vgg_mini'), p.images, p.labels, 'gradient'); "
         "print(torch.backends.cpu.get_cpu_capability()); print(m.double().sum().item().hex())")


def _probe(env):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={**os.environ, **env})
    return out.stdout.split()


@pytest.mark.skipif(not (determinism.x86() and _avx2()), reason="needs an x86-64 CPU with AVX2")
def test_the_kernel_variables_are_honoured_and_matter():
    pinned = _probe(determinism.KERNELS)
    assert pinned[0] == "AVX2"
    narrow = _probe({"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"})
    assert narrow[0] == "DEFAULT"
    assert narrow[1] != pinned[1], "other kernels round otherwise: the map's bits differ"
    assert _probe(determinism.KERNELS) == pinned          # and the pinned ones give the same bits again
