"""The book's map store: a stored map is the bits of a direct call, is never served for other
settings, survives corrupt files, concurrent writers and a killed worker, and reuses across
batchings only the methods whose maps do not depend on their batch. The same for scores, and the
chapters' tasks (03's grid, 04's evaluation) give the same rows on a cluster."""
import multiprocessing as mp
import os
import signal
import threading
import time

import pytest
import torch

from xailib import data, determinism, inference, map_store, models, shards
from xailib.errors import ParameterError
from xailib.map_store import MapStore
from xailib.methods import METHODS, explain
from xailib.metrics import randomisation as rnd

# cheap settings for the slow methods (the keys and bits do not depend on how many samples)
CHEAP = {"lime": {"num_samples": 40}, "kernel_shap": {"nsamples": 40}, "rise": {"n_masks": 64},
         "occlusion": {"window": 16, "stride": 16}, "smoothgrad": {"n_samples": 4},
         "integrated_gradients": {"n_steps": 8}, "expected_gradients": {"n_samples": 4}}


@pytest.fixture(scope="module")
def setup():
    pool = data.load_shapes("test", n=16)
    ref = data.load_shapes("val", n=4).images
    nets = {n: models.load_model(n) for n in ("vgg_mini", "resnet_mini")}
    return pool, ref, nets


def _params(method, ref):
    kw = dict(CHEAP.get(method, {}))
    if method == "expected_gradients":
        kw["background"] = ref
    return kw


def _counting(monkeypatch, name="_compute_and_put"):
    """Count the batches the store computes (maps, or scores with ``_score_and_put``)."""
    calls = []
    real = getattr(map_store, name)

    def counted(*a, **k):
        calls.append(len(a[-1]))
        return real(*a, **k)
    monkeypatch.setattr(map_store, name, counted)
    return calls


METHOD_NAMES = [m for m in METHODS if not METHODS[m].learned]


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_a_stored_map_is_the_bits_of_the_direct_call_and_is_read_back(tmp_path, setup, method, monkeypatch):
    pool, ref, nets = setup
    net, x, t = nets["vgg_mini"], pool.images[:6], pool.labels[:6]
    kw = _params(method, ref)
    direct = torch.cat([explain(net, x[i:i + 4], t[i:i + 4], method, **kw) for i in (0, 4)])
    ms = MapStore(str(tmp_path))
    got, seconds = ms.timed(net, x, t, method, batch=4, **kw)
    assert torch.equal(got, direct) and seconds > 0
    calls = _counting(monkeypatch)
    again, seconds_again = MapStore(str(tmp_path)).timed(net, x, t, method, batch=4, **kw)
    assert calls == [] and torch.equal(again, direct)
    assert seconds_again == pytest.approx(seconds)        # the first computation's seconds


@pytest.mark.parametrize("method", [m for m in METHOD_NAMES if METHODS[m].batch_invariant])
def test_a_method_declared_batch_invariant_gives_the_same_bits_in_any_batch(setup, method):
    pool, ref, nets = setup
    x, t = pool.images[:8], pool.labels[:8]
    for net in nets.values():
        whole = explain(net, x, t, method, **_params(method, ref))
        for b in (1, 3, 5):
            parts = torch.cat([explain(net, x[i:i + b], t[i:i + b], method, **_params(method, ref))
                               for i in range(0, 8, b)])
            assert torch.equal(parts, whole), (method, b)


def test_a_batch_dependent_map_is_reused_only_in_the_same_place(tmp_path, setup, monkeypatch):
    pool, ref, nets = setup
    net, x, t = nets["vgg_mini"], pool.images[:8], pool.labels[:8]
    ms = MapStore(str(tmp_path))
    assert not METHODS["gradient"].batch_invariant and METHODS["integrated_gradients"].batch_invariant
    ms.explain(net, x, t, "gradient", batch=4)
    ms.explain(net, x, t, "integrated_gradients", batch=4, n_steps=8)
    calls = _counting(monkeypatch)
    ms.explain(net, x, t, "integrated_gradients", batch=8, n_steps=8)     # any batch: read
    assert calls == []
    ms.explain(net, x, t, "gradient", batch=8)                            # another place: computed
    assert calls == [8]
    # the same place with other neighbours: the bits the store keys on are the place's, not theirs
    other = torch.cat([x[:2], pool.images[8:10]])
    a = explain(net, x[:4], t[:4], "gradient")
    b = explain(net, other, torch.cat([t[:2], pool.labels[8:10]]), "gradient")
    assert torch.equal(a[:2], b[:2])


def test_every_field_of_the_key_changes_it_and_a_change_is_computed_again(tmp_path, setup, monkeypatch):
    pool, ref, nets = setup
    net, x, t = nets["vgg_mini"], pool.images[:2], pool.labels[:2]
    ms = MapStore(str(tmp_path))
    base = dict(method="smoothgrad", n_samples=4, noise=0.15)

    def key(net=net, x=x, t=t, batch=2, **kw):
        kw = {**base, **kw}
        return ms.keys(net, x, t, kw.pop("method"), batch=batch, **kw)[0]

    k0 = key()
    other_net = rnd.random_network(net, x[:1], mode="reset", batchnorm="affine", std=0.1, seed=0)
    moved = models.load_model("vgg_mini")
    with torch.no_grad():
        next(moved.parameters()).view(-1)[0] += 1e-6          # one weight, in place
    x2 = x.clone()
    x2[0, 0, 0, 0] += 1 / 255
    changed = {
        "network (randomised copy)": key(net=other_net),
        "network (one weight moved in place)": key(net=moved),
        "network (another architecture)": key(net=nets["resnet_mini"]),
        "method": ms.keys(net, x, t, "gradient", batch=2)[0],
        "a setting": key(noise=0.2),
        "the seed": key(seed=1),
        "the image (one pixel, one level)": key(x=x2),
        "the target": key(t=(t + 1) % 10),
        "the place in the batch": key(batch=1),
        "the inference path": key(fast=False),
    }
    k_bg = ms.keys(net, x, t, "expected_gradients", batch=2, background=ref, n_samples=4)[0]
    changed["a tensor setting (background)"] = ms.keys(net, x, t, "expected_gradients", batch=2,
                                                       background=ref.flip(0), n_samples=4)[0]
    assert k_bg not in changed.values()
    monkeypatch.setattr(map_store, "code_version", lambda: "another")
    changed["the code"] = key()
    monkeypatch.undo()
    monkeypatch.setattr(determinism, "kernel_key", lambda: "other kernels")
    changed["the kernels"] = key()
    monkeypatch.undo()
    assert key() == k0                                      # nothing else moves it
    same = [what for what, k in changed.items() if k == k0]
    assert not same, f"the key does not see: {same}"
    assert len(set(changed.values())) == len(changed)
    # and a changed field is a recomputation, the unchanged call a read
    ms.explain(net, x, t, "smoothgrad", batch=2, n_samples=4, noise=0.15)
    calls = _counting(monkeypatch)
    ms.explain(net, x, t, "smoothgrad", batch=2, n_samples=4, noise=0.15)
    assert calls == []
    ms.explain(net, x, t, "smoothgrad", batch=2, n_samples=4, noise=0.2)
    ms.explain(moved, x, t, "smoothgrad", batch=2, n_samples=4, noise=0.15)
    ms.explain(net, x2, t, "smoothgrad", batch=2, n_samples=4, noise=0.15)
    assert calls == [2, 2, 2]


def test_the_network_id_follows_its_weights(setup):
    _, _, nets = setup
    a, b = models.load_model("vgg_mini"), models.load_model("vgg_mini")
    assert map_store.network_id(a) == map_store.network_id(b) == map_store.network_id(nets["vgg_mini"])
    before = map_store.network_id(a)
    with torch.no_grad():
        next(a.parameters()).mul_(1.0001)
    assert map_store.network_id(a) != before and inference.weights_state(a) != inference.weights_state(b)


def test_a_corrupt_or_truncated_map_is_named_and_computed_again(tmp_path, setup):
    pool, ref, nets = setup
    net, x, t = nets["vgg_mini"], pool.images[:4], pool.labels[:4]
    ms = MapStore(str(tmp_path))
    first = ms.explain(net, x, t, "gradient", batch=2)
    path = tmp_path / MapStore.path("gradient", ms.keys(net, x, t, "gradient", batch=2)[3])
    path.write_bytes(path.read_bytes()[:100])                     # truncated, as a kill mid-write would
    with pytest.warns(UserWarning, match=f"stored map .*{path.name} could not be read"):
        again = ms.explain(net, x, t, "gradient", batch=2)
    assert torch.equal(again, first) and ms.computed == 4 + 2      # its batch computed again, no more
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="could not be read"):
        assert torch.equal(ms.explain(net, x, t, "gradient", batch=2), first)


def _writer(root, path, value, rounds):
    st = shards.Store(root)
    for _ in range(rounds):
        st.put(path, {"value": torch.full((64, 64), float(value)), "seconds": 0.0, "map": str(value)})


def test_two_processes_writing_one_map_leave_one_whole_file(tmp_path):
    ctx = mp.get_context("spawn")
    path = "maps/gradient/ab/abcdef.pt"
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), path, v, 40)) for v in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    st = shards.Store(str(tmp_path))
    rec = st.get(path)
    assert float(rec["value"][0, 0]) in (1.0, 2.0) and torch.all(rec["value"] == rec["value"][0, 0])
    assert not [f for f in st.listing() if ".tmp-" in f]


def test_bad_input_says_what_is_wrong(tmp_path, setup):
    pool, _, nets = setup
    ms = MapStore(str(tmp_path))
    with pytest.raises(ParameterError, match="batch"):
        ms.explain(nets["vgg_mini"], pool.images[:2], pool.labels[:2], "gradient", batch=-1)
    with pytest.raises(ParameterError, match="method"):
        ms.explain(nets["vgg_mini"], pool.images[:2], pool.labels[:2], "no_such_method")
    with pytest.raises(ParameterError, match="memory:// store lives in one process"):
        MapStore("memory://xailib-map-store-test", scheduler="local:1").explain(
            nets["vgg_mini"], pool.images[:2], pool.labels[:2], "gradient")
    with pytest.raises(ParameterError, match="scheduler"):
        MapStore(str(tmp_path), scheduler="everywhere")


distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def local2():
    """One cluster of 2 worker processes for the module (its nanny replaces a killed worker)."""
    with shards.client("local:2") as c:
        yield c


def test_a_worker_killed_in_the_middle_of_a_batch_loses_nothing(tmp_path, setup, local2):
    """Maps on a cluster of 2 worker processes, one killed while it computes a batch: the call
    completes, every map is stored once, no temporary file is left, and the maps are those of an
    undisturbed run in this process."""
    pool, _, nets = setup
    net, x, t = nets["vgg_mini"], pool.images[:12], pool.labels[:12]
    url = f"file://{tmp_path / 'killed'}"
    c = local2
    killed, finished = [], threading.Event()

    def killer():                  # a worker that holds a batch, 0.3 s into it
        while not killed and not finished.is_set():
            busy = [w for w, tasks in c.processing().items() if tasks]
            if busy:
                time.sleep(0.3)
                pid = c.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.01)

    watch = threading.Thread(target=killer)
    watch.start()
    try:
        got = MapStore(url, scheduler=c).explain(net, x, t, "occlusion", batch=2, window=8, stride=4)
    finally:
        finished.set()
        watch.join()
    assert killed, "no worker was killed"
    files = shards.Store(url).listing()
    assert len(files) == 12 and not [f for f in files if ".tmp-" in f]
    calm = MapStore(str(tmp_path / "calm")).explain(net, x, t, "occlusion", batch=2, window=8, stride=4)
    assert torch.equal(got, calm)


def test_a_network_whose_only_worker_died_is_sent_again(setup, local2):
    """The network's bytes live on the cluster as one task's result. Every worker that holds them
    killed (Dask's memory manager keeps one copy even of a broadcast, so its one holder can die
    at any time), the next call with the same network still runs: the scheduler makes the bytes
    again, where bytes scattered to the workers were lost and every task needing them cancelled."""
    _, _, nets = setup
    c, net, x = local2, nets["resnet_mini"], setup[0].images[:3]
    first = map_store.run_tasks(models.predict, [(net, x)], c)[0]
    holders = {w for k, ws in c.who_has().items() if k.startswith(map_store.NETWORK_KEY) for w in ws}
    assert holders, "the network's bytes are on no worker"
    pids = c.run(os.getpid, workers=sorted(holders))
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 60            # the nannies start new workers
    while time.time() < deadline and (len(c.scheduler_info()["workers"]) < 2
                                       or set(c.scheduler_info()["workers"]) & holders):
        time.sleep(0.2)
    again = map_store.run_tasks(models.predict, [(net, x), (net, x[:1])], c)
    assert torch.equal(again[0], first) and torch.equal(again[1], first[:1])


# --------------------------------------------------------------------------------------------
# Scores, keyed by map, metric and settings
# --------------------------------------------------------------------------------------------

SCORED = [("deletion", dict(n_steps=4)), ("insertion", dict(n_steps=4, removal="zero")),
          ("infidelity", dict(n_samples=4)), ("impact", dict(fraction=0.2)), ("pxap", {}), ("roughness", {})]


def _scoring(setup):
    from xailib.metrics import METRICS
    pool, ref, nets = setup
    x, t = pool.images[:6], pool.labels[:6]
    maps = explain(nets["vgg_mini"], x, t, "gradient")
    return METRICS, nets["vgg_mini"], x, t, maps, pool.masks[:6]


@pytest.mark.parametrize("metric,kw", SCORED, ids=[m for m, _ in SCORED])
def test_a_stored_score_is_the_bits_of_the_direct_call_and_is_read_back(tmp_path, setup, metric, kw, monkeypatch):
    from xailib.metrics import score
    METRICS, net, x, t, maps, masks = _scoring(setup)
    if "masks" in METRICS[metric].defaults:
        kw = {**kw, "masks": masks}
    uses = None if metric in ("pxap", "roughness") else net
    cut = lambda v, a: v[a:a + 4] if isinstance(v, torch.Tensor) and len(v) == 6 else v   # noqa: E731
    direct = torch.cat([score(uses, x[a:a + 4], t[a:a + 4], maps[a:a + 4], metric, **{k: cut(v, a) for k, v in kw.items()})
                        for a in (0, 4)])
    calls = _counting(monkeypatch, "_score_and_put")
    ms = MapStore(tmp_path / "store")
    first, secs = ms.scores(uses, x, t, maps, metric, batch=4, **kw)
    assert torch.equal(first, direct) and first.dtype == torch.float64 and secs >= 0
    assert calls == [4, 2]
    again, _ = MapStore(tmp_path / "store").scores(uses, x, t, maps, metric, batch=4, **kw)
    assert torch.equal(again, direct) and calls == [4, 2]       # read, not computed


def test_every_field_of_a_score_key_changes_it(tmp_path, setup, monkeypatch):
    METRICS, net, x, t, maps, masks = _scoring(setup)
    ms = MapStore(tmp_path / "store")
    base = dict(net=net, images=x, targets=t, maps=maps, metric="deletion", batch=6, n_steps=4)

    def keys(**change):
        a = {**base, **change}
        return ms.score_keys(a.pop("net"), a.pop("images"), a.pop("targets"), a.pop("maps"), a.pop("metric"), **a)
    k0 = keys()
    assert k0 == keys() and len(set(k0)) == 6
    other_map = maps.clone()
    other_map[2, 0, 0] += 1
    other_image = x.clone()
    other_image[2, 0, 0, 0] += 0.5
    other_target = t.clone()
    other_target[2] = (t[2] + 1) % 10
    changed = {"a setting": keys(n_steps=5), "a default made explicit and changed": keys(removal="zero"),
               "the map": keys(maps=other_map), "the image": keys(images=other_image),
               "the target": keys(targets=other_target), "the network": keys(net=setup[2]["resnet_mini"]),
               "the metric": keys(metric="insertion"), "the place": keys(batch=4)}
    for what, k in changed.items():
        assert k != k0, what
    for what in ("the map", "the image", "the target"):          # only image 2's key moves
        assert [a != b for a, b in zip(changed[what], k0)] == [i == 2 for i in range(6)], what
    # a per-image setting counts per image: another mask for image 2 changes image 2's key only
    m2 = masks.clone()
    m2[2] = ~m2[2]
    a = ms.score_keys(None, x, None, maps, "pxap", masks=masks)
    b = ms.score_keys(None, x, None, maps, "pxap", masks=m2)
    assert [p != q for p, q in zip(a, b)] == [i == 2 for i in range(6)]
    # a changed setting is computed again, never served from the store
    calls = _counting(monkeypatch, "_score_and_put")
    ms.scores(net, x, t, maps, "deletion", n_steps=4)
    ms.scores(net, x, t, maps, "deletion", n_steps=5)
    assert calls == [6, 6]
    with pytest.raises(ParameterError, match="n_stpes"):
        ms.score_keys(net, x, t, maps, "deletion", n_stpes=4)


def test_a_corrupt_score_is_named_and_computed_again(tmp_path, setup):
    METRICS, net, x, t, maps, masks = _scoring(setup)
    ms = MapStore(tmp_path / "store")
    first, _ = ms.scores(net, x, t, maps, "deletion", n_steps=4)
    bad = sorted((tmp_path / "store" / "scores").rglob("*.pt"))[3]
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.warns(UserWarning, match="stored score .* could not be read"):
        again, _ = MapStore(tmp_path / "store").scores(net, x, t, maps, "deletion", n_steps=4)
    assert torch.equal(first, again)


def test_the_chapters_tasks_give_the_same_tables_here_and_on_a_local_cluster(setup, local2):
    """03's Impact grid (one task per network and removal) and 04's patch evaluation (one per
    network and method), in this process and on 2 worker processes: the same rows, bit for bit."""
    import numpy as np
    from xailib.chapters import adversarial_patch as ap
    from xailib.chapters import impact_score as ch
    from xailib.metrics.impact import random_maps
    pool, _, nets = setup
    x = pool.images[:4]
    t = None                      # the Impact Score takes each network's own decisions
    maps = {name: {m: explain(net, x, models.predict(net, x).argmax(1), m) for m in ("gradient", "edge")}
            for name, net in nets.items()}
    kw = dict(removals=["zero", "blur"], fractions=(0.1,), granularities=("own",), n_random=2, seed=0)
    g = torch.Generator().manual_seed(0)
    patch = torch.zeros(8, 64, 64, dtype=torch.bool)
    for i in range(8):
        a, b = torch.randint(0, 40, (2,), generator=g).tolist()
        patch[i, a:a + 20, b:b + 20] = True
    X = pool.images[:8]
    T = torch.cat([models.predict(nets[name], X[4 * i:4 * i + 4]).argmax(1) for i, name in enumerate(nets)])
    attacks = ap.Attacks(X, patch, T, np.full(8, 0.3), np.repeat([0, 1], 4), np.arange(8), list(nets))
    pmaps = {(name, m): explain(nets[name], X[attacks.rows(name)], T[attacks.rows(name)], m)
             for name in nets for m in ("gradient", "edge")}
    pmaps.update({(name, "(random pixels)"): random_maps(4, (64, 64), 2, 0) for name in nets})
    ev = dict(selection="auto", fraction=0.1, removal="zero", tau=0.5, method_params={}, keep=True)
    here = ch.grids(nets, x, t, maps, scheduler="process", progress=False, **kw)
    patch_here, kept_here = ap.evaluate(attacks, nets, pmaps, scheduler="process", **ev)
    assert len(here) and set(here.model) == set(nets) and set(here.removal) == {"zero", "blur"}
    whole = ch.grid(nets["vgg_mini"], x, t, maps["vgg_mini"], **kw)       # the grid of one call per network
    assert here[here.model == "vgg_mini"].drop(columns="model").reset_index(drop=True).equals(whole)
    c = local2
    there = ch.grids(nets, x, t, maps, scheduler=c, progress=False, **kw)
    patch_there, kept_there = ap.evaluate(attacks, nets, pmaps, scheduler=c, **ev)
    doubled = map_store.run_tasks(_twice, [(nets["vgg_mini"], x[:2]), (nets["resnet_mini"], x[2:])], c)
    assert here.equals(there) and patch_here.equals(patch_there) and set(kept_here) == set(kept_there)
    for k, (regions, _) in kept_here.items():
        assert torch.equal(regions, kept_there[k][0])
    # each network went with its own tasks (a worker's one thread may move a logit's last bit)
    expected = [_twice(nets["vgg_mini"], x[:2]), _twice(nets["resnet_mini"], x[2:])]
    assert len(doubled) == 2 and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(doubled, expected))
    assert not torch.allclose(doubled[0], _twice(nets["resnet_mini"], x[:2]), atol=1e-2)


def _twice(net, x):
    with torch.no_grad():
        return net(x) * 2
