"""The localisation (xailib.chapters.localisation) and trustworthiness (xailib.chapters.trustworthiness) chapters' plumbing."""
import numpy as np
import pandas as pd
import pytest
import torch

from xailib import data, known_truth, verdicts
from xailib.chapters import trustworthiness as trust
from xailib.chapters import localisation as wsol
from xailib.errors import ParameterError


@pytest.fixture(scope="module")
def shapes():
    return data.load_shapes("test", n=6)


def test_per_image_rows_and_the_references(shapes):
    maps = {"constant": torch.ones(6, 64, 64), wsol.CEILING: shapes.masks.float(), "random": torch.rand(6, 64, 64)}
    cur = wsol.curves(maps, shapes.boxes)
    rows = wsol.per_image("net", maps, shapes, cur)
    ceiling = rows[rows.method == wsol.CEILING]
    assert (ceiling.iou_largest == 1).all() and (ceiling.pxap == 1).all()
    const = rows[rows.method == "constant"]
    areas = np.array([float((b[0, 2] - b[0, 0]) * (b[0, 3] - b[0, 1])) / 4096 for b in shapes.boxes])
    np.testing.assert_allclose(const.iou_all, areas)           # the max box: the box's share of the image
    np.testing.assert_allclose(const.pxap, shapes.masks.flatten(1).float().mean(1).numpy(), rtol=1e-6)
    assert (const.roughness == 0).all()


def test_max_box_acc_table_has_choes_score_and_the_held_out_variant(shapes):
    maps = {wsol.CEILING: shapes.masks.float(), "constant": torch.ones(6, 64, 64)}
    cur = wsol.curves(maps, shapes.boxes)
    t = wsol.max_box_acc({"net": cur}, {"net": cur}, [wsol.CEILING, "constant"], deltas=(0.3, 0.5))
    mask = t[t.method == wsol.CEILING]
    assert (mask["held-out accuracy"] == 1).all() and (mask.low < 1).all()   # Wilson: no collapse at 100 %
    assert (mask["held-out threshold"] == 0.0).all() and (mask.MaxBoxAcc == 1).all()   # above 0: the mask itself
    const = t[t.method == "constant"]                  # the max box: IoU = the object box's share, < 0.3 here
    areas = np.array([float((b[0, 2] - b[0, 0]) * (b[0, 3] - b[0, 1])) / 4096 for b in shapes.boxes])
    assert (const.MaxBoxAcc == [(areas >= d).mean() for d in const.IoU]).all()
    v2 = wsol.v2(t)
    assert v2["net", wsol.CEILING] == 1.0 and set(v2.index.get_level_values("method")) == {wsol.CEILING, "constant"}


def test_cam_threshold_must_be_on_the_grid():
    assert wsol.cam_index(0.2) == 20
    with pytest.raises(ParameterError, match="not on the grid"):
        wsol.cam_index(0.205)


def test_pearson_and_spearman_correlations():
    a = torch.rand(3, 8, 8)
    np.testing.assert_allclose(wsol.correlations(a, 2 * a + 1, "pearson"), 1.0, rtol=1e-9)
    np.testing.assert_allclose(wsol.correlations(a, -a, "spearman"), -1.0, rtol=1e-9)
    np.testing.assert_allclose(wsol.correlations(a, a ** 3, "spearman"), 1.0, rtol=1e-9)
    assert (wsol.correlations(a, torch.ones(3, 8, 8), "pearson") == 0).all()


def _rows(values):
    return pd.concat([pd.DataFrame({"model": model, "method": m, "image": np.arange(len(v)), **cols})
                      for (model, m), (v, cols) in values.items()], ignore_index=True)


def test_thesis_claims_have_the_expected_verdicts():
    n = 12
    hit, miss = np.ones(n), np.zeros(n)
    rows = _rows({
        ("a", "gradient"): (hit, dict(iou_largest=hit, roughness=np.full(n, 0.1), seconds=np.full(n, 0.01))),
        ("a", "random"): (hit, dict(iou_largest=miss, roughness=np.full(n, 0.5), seconds=np.full(n, 0.001))),
        ("a", "lime"): (hit, dict(iou_largest=miss, roughness=np.full(n, 0.2), seconds=np.full(n, 1.0) + np.arange(n) / 100)),
        ("b", "gradient"): (hit, dict(iou_largest=hit, roughness=np.full(n, 0.3) + np.arange(n) / 100,
                                      seconds=np.full(n, 0.01))),
    })
    pairs = pd.DataFrame({"model": "a", "image": np.arange(n), wsol.DL_IG: np.linspace(0.9, 0.99, n),
                          wsol.LIME_AGAIN: np.linspace(0.95, 0.99, n)})
    table = verdicts.claims_table(wsol.claims(rows, pairs, {"a": 8, "b": 10}, ["gradient", "lime", "random"]))
    v = dict(zip(table.claim + " / " + table.model, table.verdict))
    assert v["gradient: localises the object better than the strongest null / a"] == verdicts.HOLDS
    assert v["lime: localises the object better than the strongest null / a"] == verdicts.OPEN   # 0 against 0
    assert not any(k.startswith("random:") for k in v)                         # a null is not judged
    assert v["DeepLIFT and integrated gradients give highly correlated maps / a"] == verdicts.HOLDS
    assert v["LIME's map varies from run to run / a"] == verdicts.FAILS       # 0.95-0.99 is above 0.9
    assert not any(k.startswith("LIME costs more") for k in v)             # cost is reported, not tested
    # an edge detector that hits on 10 of 12 images becomes the bar: lime (no hit) now fails, and
    # gradient (12 of 12) no longer beats it
    rows2 = pd.concat([rows, _rows({("a", "edge"): (hit, dict(iou_largest=np.r_[hit[:10], miss[10:]],
                                                              roughness=np.full(n, 0.2), seconds=np.full(n, 0.01)))})])
    t2 = verdicts.claims_table(wsol.claims(rows2, pairs, {"a": 8, "b": 10}, ["gradient", "lime", "random", "edge"]))
    loc = t2[t2.group == "localises better than the strongest null"].set_index("claim")
    assert (loc.setting.str.endswith("against the edge map")).all() and "edge: localises" not in " ".join(loc.index)
    assert loc.loc["lime: localises the object better than the strongest null", "verdict"] == verdicts.FAILS
    assert loc.loc["gradient: localises the object better than the strongest null", "verdict"] == verdicts.OPEN
    assert v["gradient: noisier maps on the deeper network / b vs a"] == verdicts.HOLDS


def test_bam_contrast_of_a_constant_map_is_zero_and_of_a_mask_map_positive():
    shapes = data.load_shapes("test", n=12)
    obj = {"constant": torch.ones(12, 64, 64), "mask": shapes.masks.float()}
    scene = {"constant": torch.ones(12, 64, 64), "mask": (~shapes.masks).float()}
    rows = known_truth.bam_rows(obj, scene, shapes)
    assert (rows[rows.method == "constant"].contrast == 0).all()
    assert (rows[rows.method == "mask"].contrast == 1).all()
    claims = verdicts.claims_table(trust.claims(rows, None, None, ["constant", "mask"]))
    assert list(claims.verdict) == [verdicts.OPEN, verdicts.HOLDS]


def test_trojan_rows_score_a_map_on_the_trigger(shapes):
    trig = torch.zeros(6, 64, 64, dtype=torch.bool)
    trig[:, 10:16, 20:26] = True
    rows = known_truth.trojan_rows("t", {"on": trig.float(), "off": (~trig).float()}, shapes, trig)
    on, off = rows[rows.method == "on"], rows[rows.method == "off"]
    assert (on["trigger IoU"] == 1).all() and (on["mass on trigger"] == 1).all() and (on["pointing hit"] == 1).all()
    assert (off["mass on trigger"] == 0).all() and (off["pointing hit"] == 0).all()
    n = 12
    many = pd.concat([pd.DataFrame({"model": "vgg_mini_trojan_x", "network": "trojaned", "method": m,
                                    "image": np.arange(n), "pointing hit": np.full(n, v)})
                      for m, v in (("on", 1.0), ("off", 0.0))]
                     + [pd.DataFrame({"model": "vgg_mini (on vgg_mini_trojan_x's images)", "network": "clean",
                                      "method": "on", "image": np.arange(n), "pointing hit": 0.0})])
    table = verdicts.claims_table(trust.claims(None, many, None, ["on", "off"]))
    # the clean network is not judged itself: it is the control of the second claim
    assert list(table.claim) == ["on: highlights the trigger", "on: highlights the trigger because the network uses it",
                                 "off: highlights the trigger"]
    assert list(table.verdict) == [verdicts.HOLDS, verdicts.HOLDS, verdicts.FAILS]
    # a map that finds the trigger on both networks (an edge detector would) passes the first test only
    both = many.assign(**{"pointing hit": np.where(many.method == "on", 1.0, many["pointing hit"])})
    t2 = verdicts.claims_table(trust.claims(None, both, None, ["on"]))
    assert list(t2.verdict) == [verdicts.HOLDS, verdicts.OPEN]


def test_infidelity_claims_compare_with_the_random_map():
    n = 10
    col = "infidelity, gaussian (rescaled)"
    rows = pd.concat([pd.DataFrame({"model": "m", "method": k, "image": np.arange(n), col: v})
                      for k, v in {"random": np.full(n, 2.0) + np.arange(n) / 10, "good": np.full(n, 0.5),
                                   "bad": np.full(n, 5.0)}.items()], ignore_index=True)
    table = verdicts.claims_table(trust.claims(None, None, rows, ["good", "bad", "random"]))
    assert list(table.verdict) == [verdicts.HOLDS, verdicts.FAILS]


def test_a_trigger_finder_and_a_faithful_map_must_beat_the_strongest_null_not_the_random_one():
    n = 12
    hits = {"method": 1.0, "random": 0.0, "edge": 1.0, "constant": 0.0}     # an edge detector finds the trigger
    many = pd.concat([pd.DataFrame({"model": "vgg_mini_trojan_x", "network": "trojaned", "method": m,
                                    "image": np.arange(n), "pointing hit": np.full(n, v)}) for m, v in hits.items()])
    table = verdicts.claims_table(trust.claims(None, many, None, list(hits))).set_index("claim")
    null = table.loc["method: highlights the trigger more than the strongest null"]
    assert "the edge map" in null.setting and null.verdict == verdicts.OPEN    # not beaten: no difference at all
    assert table.loc["edge: highlights the trigger", "verdict"] == verdicts.HOLDS   # the survey's test as stated
    assert not any(c.startswith(("random:", "constant:")) for c in table.index)
    col = "infidelity, gaussian (rescaled)"
    scores = {"random": np.full(n, 5.0), "smooth_random": np.full(n, 1.0) + np.arange(n) / 100,
              "method": np.full(n, 2.0)}        # beats i.i.d. noise, not the smooth blobs
    rows = pd.concat([pd.DataFrame({"model": "m", "method": k, "image": np.arange(n), col: v})
                      for k, v in scores.items()], ignore_index=True)
    t = verdicts.claims_table(trust.claims(None, None, rows, list(scores)))
    assert list(t.claim) == ["method: more faithful than the strongest null"]
    assert "smooth random map" in t.setting.iloc[0] and t.verdict.iloc[0] == verdicts.FAILS


def test_road_rows_table_and_findings_name_the_strongest_null(tmp_path):
    from xailib import models
    from xailib.chapters import faithfulness as faith
    from xailib.results import ResultStore
    net = models.load_model("vgg_mini")
    ds = data.load_shapes("test", n=3)
    store = ResultStore("test_road", {"t": 1}, root=tmp_path, publish=False, verbose=False)
    maps = {"object mask": ds.masks.float(), "constant": torch.ones(3, 64, 64), "random": torch.rand(3, 64, 64)}
    rows = faith.road_rows(store, "vgg_mini", net, ds.images, ds.labels, maps, road_noise=0.0)
    const = rows[rows.method == "constant"]
    np.testing.assert_allclose(const.MoRF, const.LeRF)            # one order of ties, both ways: combined 0
    np.testing.assert_allclose(const.combined, 0.0, atol=1e-12)
    table = faith.road_table(rows, n_boot=200)
    assert table.loc[("vgg_mini", "constant"), "combined [95 % CI]"] == "+0.000 [+0.000, +0.000]"
    text = faith.road_findings(rows)
    assert "strongest null is the" in text and ("random map" in text or "constant map" in text)


def test_roar_over_retrainings_needs_every_retraining_to_agree():
    """Issue 29: several retrainings per (method, k); the test is intersection-union over them."""
    from xailib.chapters import faithfulness as faith
    n = 40
    rng = np.random.default_rng(0)

    def frame(method, correct_by_repeat):
        return pd.concat([pd.DataFrame({"method": method, "fraction": 0.5, "repeat": r, "image": range(n),
                                        "correct": c}) for r, c in enumerate(correct_by_repeat)])
    ones, zeros = np.ones(n, int), np.zeros(n, int)
    half = (rng.random(n) < 0.5).astype(int)
    rnd = frame("random", [ones, ones, ones])
    good = frame("gradient", [zeros, zeros, half * 0])          # every retraining: removal hurts
    split = frame("edge", [zeros, zeros, ones])                 # one retraining disagrees
    c_good = faith.roar_comparison(rnd, good, n_boot=200)
    assert c_good.p < 1e-6 and c_good.mean == 1.0 and "largest p" in c_good.test
    c_split = faith.roar_comparison(rnd, split, n_boot=200)
    assert c_split.p == 1.0 and "not all in one direction" in c_split.test
    table = verdicts.claims_table(faith.roar_claims(pd.concat([rnd, good, split]), n_boot=200))
    got = dict(zip(table.claim.str.split(":").str[0], table.verdict))
    assert got == {"gradient": verdicts.HOLDS, "edge": verdicts.OPEN}
    # one retraining (a run made before repeats): the exact McNemar test, as before
    single = faith.roar_comparison(rnd[rnd.repeat == 0].drop(columns="repeat"), good[good.repeat == 0].drop(columns="repeat"))
    assert "McNemar" in single.test and single.p < 1e-6
    summ = faith.roar_summary(pd.DataFrame({"method": ["random"] * 3, "fraction": [0.5] * 3, "repeat": [0, 1, 2],
                                            "accuracy": [0.5, 0.6, 0.7]}))
    assert summ.iloc[0].to_dict() == {"method": "random", "fraction": 0.5, "accuracy": pytest.approx(0.6),
                                      "low": 0.5, "high": 0.7, "retrainings": 3}
