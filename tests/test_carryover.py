"""xailib.carryover: the rank agreement between two tables of methods' scores, and the claims set
side by side, on tables whose answer is known."""
import numpy as np
import pandas as pd
import pytest

from xailib import carryover
from xailib.errors import ParameterError


def _wide(means, n, noise, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(np.asarray(means)[None] + noise * rng.standard_normal((n, len(means))),
                        columns=[f"m{i}" for i in range(len(means))])


def test_same_order_gives_one_and_a_reversed_order_minus_one():
    means = np.arange(8.0)
    bench = _wide(means, 40, 0.01, 0)
    same = carryover.rank_agreement(bench, _wide(means * 3 + 1, 8, 0.01, 1), n_boot=200)
    assert same["rho"] == pytest.approx(1.0) and same["low"] == pytest.approx(1.0)
    assert (same["methods"], same["bench images"], same["real images"]) == (8, 40, 8)
    flipped = carryover.rank_agreement(bench, _wide(-means, 8, 0.01, 1), n_boot=200)
    assert flipped["rho"] == pytest.approx(-1.0) and flipped["high"] == pytest.approx(-1.0)


def test_noise_widens_the_interval_across_zero():
    means = np.arange(6.0)
    r = carryover.rank_agreement(_wide(means, 40, 0.01, 0), _wide(np.zeros(6), 8, 1.0, 2), n_boot=500)
    assert r["low"] < 0 < r["high"] and -1 <= r["rho"] <= 1


def test_rho_is_scipys_and_the_interval_is_seeded():
    from scipy.stats import spearmanr
    a, b = _wide(np.arange(5.0), 10, 2.0, 3), _wide([3, 1, 4, 1.5, 5], 6, 2.0, 4)
    r = carryover.rank_agreement(a, b, n_boot=300, seed=7)
    assert r["rho"] == pytest.approx(spearmanr(a.mean(), b.mean())[0])
    assert r == carryover.rank_agreement(a, b, n_boot=300, seed=7)
    assert -1 <= r["low"] <= r["high"] <= 1
    assert r != carryover.rank_agreement(a, b, n_boot=300, seed=8)


def test_only_shared_methods_count_and_too_few_are_refused():
    a = _wide(np.arange(4.0), 10, 0.01, 0)
    b = a.rename(columns={"m3": "other"})
    assert carryover.rank_agreement(a, b, n_boot=50)["methods"] == 3
    with pytest.raises(ParameterError, match="at least 3 methods"):
        carryover.rank_agreement(a[["m0", "m1"]], b, n_boot=50)
    with pytest.raises(ParameterError, match="n_boot"):
        carryover.rank_agreement(a, b, n_boot=0)


def test_point_reads_the_claims_tables_cells():
    assert carryover.point("+0.014 [-0.002, +0.029]") == pytest.approx(0.014)
    assert carryover.point("-65 [-77.9, -47.2] points") == -65
    assert carryover.point("+1.2e-05 [0, 1]") == pytest.approx(1.2e-5)
    assert np.isnan(carryover.point("—"))


def test_directions_pairs_each_benchmark_network_with_the_real_one():
    col = "difference [95 % CI]"
    bench = pd.DataFrame({"claim": ["a", "a", "b", "c"], "setting": ["s", "s", "", ""],
                          "model": ["vgg", "res", "vgg", "vgg"],
                          col: ["+0.1 [0, 0.2]", "-0.1 [-0.2, 0]", "+2 [1, 3] pts", "+1 [0, 2]"],
                          "verdict": ["holds", "not resolved", "holds", "holds"]})
    real = pd.DataFrame({"claim": ["a", "b", "d"], "setting": ["s", None, ""], "model": ["lite"] * 3,
                         col: ["+0.3 [-1, 1]", "-1 [-2, 0] pts", "+1 [0, 1]"],
                         "verdict": ["not resolved", "holds", "holds"]})
    t = carryover.directions(bench, real)
    assert list(zip(t["claim"], t["benchmark network"], t["direction"])) == [
        ("a", "vgg", "agrees"), ("a", "res", "flips"), ("b", "vgg", "flips")]
    text = carryover.direction_summary(t)
    assert "same way in 1 and the other way in 2" in text and "Of the 2 that hold on the benchmark, 1 also holds" in text
    assert "No claim" in carryover.direction_summary(t.iloc[:0])


def _committed(root, nb="nb"):
    """A chapter's committed default run (two benchmark networks) and its real-network run."""
    import json
    col = "difference [95 % CI]"
    (root / nb / "real_network").mkdir(parents=True)
    (root / nb / "params.json").write_text(json.dumps({"n": 4}))
    rows = [{"model": m, "method": f"m{k}", "image": i, "s": k + 0.1 * i} for m in ("vgg", "res")
            for k in range(4) for i in range(6)]
    pd.DataFrame(rows).to_csv(root / nb / "per_image.csv", index=False)
    pd.DataFrame({"claim": ["m3 beats m0"], "setting": [""], "model": ["vgg"], col: ["+3 [2, 4]"],
                  "verdict": ["holds"]}).to_csv(root / nb / "verdicts.csv", index=False)
    real = [{"model": "lite", "method": f"m{k}", "image": i, "s": -k + 0.1 * i} for k in range(4) for i in range(3)]
    pd.DataFrame(real).to_csv(root / nb / "real_network" / "per_image.csv", index=False)
    pd.DataFrame({"claim": ["m3 beats m0"], "setting": [""], "model": ["lite"], col: ["-3 [-4, -2]"],
                  "verdict": ["does not hold"]}).to_csv(root / nb / "real_network" / "verdicts.csv", index=False)
    (root / nb / "real_network" / "params.json").write_text(json.dumps(
        {"model_names": ["lite"], "dataset": "photos", "image_size": 224}))
    (root / nb / "real_network" / "run.json").write_text(json.dumps({"command": "make it", "seconds": 120}))


def test_a_chapters_section_sets_its_committed_runs_side_by_side(tmp_path):
    _committed(tmp_path)
    s = carryover.section("nb", {"n": 4}, "per_image", ["s"], show=["per_image"], n_boot=100, root=tmp_path)
    assert list(s.agreement["benchmark network"]) == ["vgg", "res"]
    assert (s.agreement["rho"] == -1).all() and (s.agreement["methods"] == 4).all()
    assert list(s.agreement["images (real)"]) == [3, 3]
    assert s.directions["direction"].tolist() == ["flips"]
    assert "lite on 3 images (photos" in s.note and "`make it` in 2 min" in s.note and "reversed beyond chance in 2" in s.note
    assert set(s.tables) == {"per_image"}
    # another run than the default, or no committed real run: a note, no tables
    other = carryover.section("nb", {"n": 5}, "per_image", ["s"], root=tmp_path)
    assert other.agreement is None and "not the book's default run" in other.note and "lite" not in other.note
    none = carryover.section("nb2", {}, "per_image", ["s"], root=tmp_path)
    assert none.agreement is None
    (tmp_path / "nb2").mkdir()
    (tmp_path / "nb2" / "params.json").write_text("{}")
    assert "larger_run.py --real nb2" in carryover.section("nb2", {}, "per_image", ["s"], root=tmp_path).note


def test_the_chapters_long_tables_turn_into_one_column_per_score():
    from xailib.chapters import faithfulness, leaderboard
    long = pd.DataFrame({"model": ["a"] * 6, "images": ["benchmark"] * 4 + ["trojan"] * 2,
                         "column": ["pointing game", "deletion", "pointing game", "deletion", "trigger mass", "deletion"],
                         "method": ["m", "m", "n", "n", "m", "m"], "image": [0, 0, 0, 0, 0, 0],
                         "score": [1.0, 0.2, 0.0, 0.4, 0.9, 0.7]})
    w = leaderboard.wide_scores(long)
    assert list(w.columns) == ["model", "method", "image", "pointing game", "deletion"]
    assert w.set_index("method").loc["n", "deletion"] == 0.4 and len(w) == 2     # the trojan rows left out
    ops = pd.DataFrame({"model": ["a"] * 4, "method": ["m", "m", "n", "n"], "operator": ["zero", "blur"] * 2,
                        "image": [3] * 4, "deletion": [0.1, 0.2, 0.3, 0.4], "insertion": [0.5, 0.6, 0.7, 0.8],
                        "impact": [1, 0, 1, 1]})
    w = faithfulness.wide_operator_scores(ops)
    assert w.set_index("method").loc["n", "insertion (blur)"] == 0.8 and w.set_index("method").loc["m", "impact (blur)"] == 0
    assert len(w) == 2 and len(w.columns) == 3 + 6


def test_impact_and_cascade_tables_turn_into_one_column_per_score():
    from xailib.chapters import impact_score, sanity_checks
    per = pd.DataFrame({"model": ["a"] * 4, "method": ["m", "m", "n", "n"],
                        "granularity": ["own", "segments"] * 2, "image": [0] * 4, "selection": ["pixels"] * 4,
                        "impact": [1.0, 0.0, 0.0, 1.0], "strict": [0.0, 0.0, 0.0, 1.0], "area": [0.1] * 4,
                        "control": [0.0] * 4, "control_strict": [0.0] * 4})
    w = impact_score.wide_scores(per).set_index("method")
    assert sorted(w.columns) == ["I (own cut)", "I (superpixels)", "I_strict (own cut)", "I_strict (superpixels)",
                                 "image", "model"]
    assert w.loc["m", "I (own cut)"] == 1 and w.loc["n", "I (superpixels)"] == 1 and w.loc["m", "I_strict (superpixels)"] == 0
    # a cascade of 5 steps on one network and 4 on another: each meets the other at step 3 and at its last
    rows = [dict(model=net, test="cascading", step=k, method="g", image=0, layer=f"l{k}",
                 spearman_abs=1 - k / 10, ssim=0.5, hog=0.2, spearman=0.0, hog_spearman=0.0)
            for net, depth in (("deep", 5), ("shallow", 4)) for k in range(1, depth + 1)]
    rows.append(dict(model="deep", test="independent", step=9, method="g", image=0, layer="x",
                     spearman_abs=0.0, ssim=0.0, hog=0.0, spearman=0.0, hog_spearman=0.0))
    w = sanity_checks.wide_cascade(pd.DataFrame(rows)).set_index("model")
    assert w.loc["deep", "Spearman (abs), top 3 layers"] == 0.7 and w.loc["shallow", "Spearman (abs), top 3 layers"] == 0.7
    assert w.loc["deep", "Spearman (abs), every layer"] == 0.5 and w.loc["shallow", "Spearman (abs), every layer"] == 0.6
    assert len(w) == 2 and "SSIM, every layer" in w.columns


def test_patch_table_keeps_each_scales_images_apart():
    from xailib.chapters import adversarial_patch
    per = pd.DataFrame({"model": ["a"] * 4, "method": ["m"] * 4, "image": [0, 1, 0, 1], "scale": [0.3, 0.3, 0.5, 0.5],
                        "clean": [7, 8, 7, 9], "selection": ["pixels"] * 4, "impact": [1, 0, 1, 1],
                        "strict": [0, 0, 1, 1], "coverage": [0.1, 0.2, 0.3, 0.4], "on_patch": [0.5] * 4,
                        "area": [0.1] * 4, "patch_area": [0.09] * 4})
    w = adversarial_patch.wide_scores(per)
    assert list(w.columns) == ["model", "method", "image", "I_cov", "I", "I_strict", "region on the patch"]
    assert w["image"].nunique() == 4 and w.set_index("image").loc["0.5/1", "I_cov"] == 0.4
