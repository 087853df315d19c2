"""Shards on a Dask LocalCluster of 2 worker processes: the same bits as in this process, a
worker killed in the middle of a shard, stores on fsspec URLs, and bad input."""
import os
import signal
import threading
import time

import pytest
import torch

from xailib import cluster as xcluster, data, models, shards
from xailib.methods import explain
from xailib.errors import MissingResourceError, ParameterError

distributed = pytest.importorskip("distributed")

# One torch thread on both sides, the same device and the same shard size (= batch): bit for bit.
FIELDS = dict(threads=1)


@pytest.fixture(scope="module")
def cluster():
    with shards.client("local:2") as c:
        yield c


def _work():
    maps = shards.shards_for("vgg_mini", "gradient", range(6), 3, **FIELDS)
    scores = shards.shards_for("resnet_mini", "integrated_gradients", range(4), 2, metric="deletion",
                               metric_params={"n_steps": 8}, **FIELDS)
    return maps + scores


def test_a_local_cluster_gives_the_in_process_bits(tmp_path, cluster):
    work = _work()
    here = shards.compute(work, store=str(tmp_path / "here"), progress=False)
    there = shards.compute(work, store=f"file://{tmp_path / 'there'}", scheduler=cluster, progress=False)
    for s, a, b in zip(work, here, there):
        assert torch.equal(a, b), s.describe()
    # and what a shard holds is what the book's own call gives (same thread count, same batch)
    pool = data.load_dataset("shapes", "test", size=64, seed=0)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        direct = explain(models.load_model("vgg_mini"), pool.images[:3], pool.labels[:3], "gradient")
    finally:
        torch.set_num_threads(old)
    assert torch.equal(direct, here[0])
    assert here[-1].shape == (2,) and here[0].shape == (3, 64, 64)


def test_a_finished_shard_is_never_recomputed(tmp_path, monkeypatch):
    work = shards.shards_for("vgg_mini", "gradient", range(4), 2, **FIELDS)
    store = str(tmp_path)
    first = shards.compute(work, store=store, progress=False)
    monkeypatch.setattr(shards, "_compute", lambda *a: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = shards.compute(work, store=store, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_the_key_changes_with_every_field():
    s = shards.Shard("vgg_mini", "gradient", (0, 1))
    assert s.key == shards.Shard("vgg_mini", "gradient", (0, 1)).key
    for other in (shards.Shard("vgg_mini", "gradient", (0, 2)), shards.Shard("resnet_mini", "gradient", (0, 1)),
                  shards.Shard("vgg_mini", "gradient", (0, 1), params={"reduce": "abs"}),
                  shards.Shard("vgg_mini", "gradient", (0, 1), seed=1)):
        assert other.key != s.key


def test_a_worker_killed_in_the_middle_of_a_shard(tmp_path, cluster):
    """On the module's cluster of 2 worker processes the test kills one while it computes a shard,
    and the run still completes: every shard once in the store, no temporary file left, the values
    those of an undisturbed run."""
    work = shards.shards_for("vgg_mini", "occlusion", range(12), 2, **FIELDS)
    store = f"file://{tmp_path / 'killed'}"
    c = cluster                   # the module's cluster: its nanny starts a new worker for the next tests
    futures = shards.submit(c, work, store)
    victim = None
    deadline = time.time() + 60
    while victim is None and time.time() < deadline:
        busy = [w for w, tasks in c.processing().items() if tasks]
        if busy and any(f.status == "finished" for f in futures):
            victim = busy[0]
        time.sleep(0.05)
    assert victim is not None, "no worker was busy"
    pid = c.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    c.gather(futures)
    st = shards.Store(store)
    files = st.listing()
    assert not [f for f in files if ".tmp-" in f]
    stored_maps = [f for f in files if f.startswith(f"{st.root}/maps/")]     # the map store's, one per map
    assert len(files) - len(stored_maps) == len(work) and len(stored_maps) == sum(len(s.index) for s in work)
    calm = shards.compute(work, store=str(tmp_path / "calm"), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(shards.compute(work, store=store, progress=False), calm))


def test_a_memory_store_in_process_and_not_on_a_cluster(cluster):
    work = shards.shards_for("vgg_mini", "gradcam", range(2), 2, **FIELDS)
    got = shards.compute(work, store="memory://xailib-shards-test", progress=False)
    assert got[0].shape == (2, 64, 64)
    assert shards.Store("memory://xailib-shards-test").exists(work[0])
    with pytest.raises(ParameterError, match="memory:// store lives in one process"):
        shards.compute(shards.shards_for("vgg_mini", "gradient", range(2), 2, **FIELDS),
                       store="memory://xailib-shards-test2", scheduler=cluster, progress=False)


def test_two_writers_of_one_shard_leave_one_whole_file(tmp_path):
    s = shards.Shard("vgg_mini", "gradient", (0,))
    st = shards.Store(str(tmp_path))
    values = [torch.full((1, 64, 64), 1.5) for _ in range(8)]
    threads = [threading.Thread(target=st.write, args=(s, v, 0.0)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.equal(st.read(s)["value"], values[0])
    assert st.listing() == [f"{st.root}/{s.path}"]


def test_bad_input_says_what_is_wrong(tmp_path, cluster, monkeypatch):
    monkeypatch.setattr(xcluster, "CONNECT_TIMEOUT", 2)
    with pytest.raises(MissingResourceError, match="no Dask scheduler answers at 'tcp://127.0.0.1:9'"):
        shards.compute(shards.shards_for("vgg_mini", "gradient", range(2), 2), store=str(tmp_path),
                       scheduler="tcp://127.0.0.1:9", progress=False)
    with pytest.raises(MissingResourceError, match="fsspec backend for s3:// is not installed"):
        shards.Store("s3://a-bucket/results")
    with pytest.raises(ParameterError, match="store 'nosuch://x'"):
        shards.Store("nosuch://x")
    with pytest.raises(ParameterError, match="scheduler='local:zero'"):
        shards.resolve_scheduler("local:zero")
    with pytest.raises(ParameterError, match="scheduler='laptop' is not accepted"):
        shards.resolve_scheduler("laptop")
    monkeypatch.setenv(shards.SCHEDULER_ENV, "local:3")
    assert shards.resolve_scheduler(None) == "local:3" and shards.resolve_scheduler("") is None
    lost = shards.Shard("resnet50", "gradient", (0, 1), dataset="imagenet", data_root="/nonexistent/imagenet",
                        size=224)
    with pytest.raises(MissingResourceError, match=r"worker .* cannot load the images of shard resnet50 / gradient.*"
                                                   r"/nonexistent/imagenet"):
        shards.compute([lost], store=str(tmp_path), scheduler=cluster, progress=False)
    with pytest.raises(ParameterError, match="shard_size=0"):
        shards.shards_for("vgg_mini", "gradient", range(4), 0)


def test_a_scheduler_without_workers_stops_within_its_stated_time(tmp_path, monkeypatch):
    """It used to wait for a worker forever, saying nothing."""
    from distributed import LocalCluster
    monkeypatch.setattr(xcluster, "WORKER_TIMEOUT", 3)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0", silence_logs=40) as lc:
        t0 = time.perf_counter()
        with pytest.raises(MissingResourceError, match=f"the Dask scheduler at '{lc.scheduler_address}' has no "
                                                       "worker after 3 s; start one with `dask worker"):
            shards.compute(shards.shards_for("vgg_mini", "gradient", range(2), 2), store=str(tmp_path),
                           scheduler=lc.scheduler_address, progress=False)
        assert time.perf_counter() - t0 < 60       # (a hang would never get here)


def test_a_truncated_shard_file_is_named_and_computed_again(tmp_path):
    """PyTorch's own "failed reading zip archive" used to end the run, naming no file."""
    work = shards.shards_for("vgg_mini", "gradient", range(4), 2, **FIELDS)
    first = shards.compute(work, store=str(tmp_path), progress=False)
    path = tmp_path / work[1].path
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match=f"shard file .*{work[1].path} could not be read"):
        again = shards.compute(work, store=str(tmp_path), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert len(torch.load(path, weights_only=True)["value"]) == 2


def test_the_leaderboard_computes_its_maps_on_a_cluster(tmp_path, cluster, monkeypatch):
    """Chapter 10 with scheduler=...: the benchmark maps come from shards, and every score agrees
    with the in-process run within the fast path's tolerance (the workers run one thread, this
    process all cores: another summation order, not bit for bit)."""
    import numpy as np
    from xailib.chapters import leaderboard as lb
    from xailib.results import ResultStore
    monkeypatch.setenv(shards.STORE_ENV, str(tmp_path / "shards"))
    pool = data.load_dataset("shapes", "test", size=64, seed=0)
    nets = {n: models.load_model(n) for n in ("vgg_mini", "resnet_mini")}
    kw = dict(n_images=3, n_truth=2, method_params={}, n_steps=8, sensitivity_methods=[], sensitivity_samples=1,
              randomisation=dict(mode="reset", batchnorm="affine", std=0.1, seed=0), patch_scale=0.5,
              trust_sets=False, image_size=64, seed=0)
    methods = ["gradient", "gradcam", "random"]
    here = lb.collect(ResultStore("shard_test_a", {}, root=tmp_path), pool, nets, methods, **kw).scores
    there = lb.collect(ResultStore("shard_test_b", {}, root=tmp_path), pool, nets, methods, scheduler=cluster,
                       source=dict(dataset="shapes"), **kw).scores
    st = shards.Store(str(tmp_path / "shards"))
    assert len([f for f in st.listing() if not f.startswith((f"{st.root}/maps/", f"{st.root}/scores/"))]) \
        == len(nets) * len(methods)        # one shard per (network, method); the maps and scores their own files
    key = ["model", "images", "column", "method", "image"]
    a, b = here.sort_values(key).reset_index(drop=True), there.sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key])
    close = np.isclose(a.score, b.score, atol=1e-4)
    # a near-tie moved across a deletion step changes an AUC by one step's probability (test_larger_runs);
    # so does one across two squares' ranks in the columns that order the map's squares
    steps = {"deletion", "deletion (blur)", "insertion", "region perturbation (MoRF)", "region perturbation (LeRF)",
             "monotonicity (Arya)", "monotonicity correlation", "relevance rank accuracy"}
    assert close.all() or set(a[~close].column) <= steps, a[~close]


def _environment():
    return dict(os.environ)


def test_a_local_cluster_leaves_this_process_environment_as_it_was():
    """Dask's nanny writes its workers' settings (one thread per library, an aggressive malloc
    trim) into the process that starts the cluster; xailib puts them back, so a kernel started
    from here later keeps torch's threads. The workers themselves still get them."""
    before = dict(os.environ)
    with shards.client("local:1") as c:
        assert dict(os.environ) == before
        worker_env = next(iter(c.run(_environment).values()))
        assert worker_env.get("OMP_NUM_THREADS") == "1"
    assert dict(os.environ) == before
