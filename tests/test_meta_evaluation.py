"""MetaQuantus's model perturbation test (xailib.meta_evaluation): the four measures against hand
computations, the perturbed networks, and the whole test on a metric whose answer is known."""
import numpy as np
import pandas as pd
import pytest
import torch

from xailib import meta_evaluation as meta
from xailib.errors import ParameterError


def test_intra_consistency_known_answers():
    q = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    everyone = np.ones(5, bool)
    assert meta.intra_consistency(q, q, everyone, adversary=False) == 1.0        # nothing moved: p = 1
    assert meta.intra_consistency(q, q, everyone, adversary=True) == 0.0
    # five differences of one sign: the exact two-sided signed-rank p-value is 2 / 2^5
    up = q + np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    assert meta.intra_consistency(q, up, everyone, adversary=False) == pytest.approx(2 / 32)
    assert meta.intra_consistency(q, up, everyone, adversary=True) == pytest.approx(30 / 32)
    # only the selected images count: one image left is too few
    assert np.isnan(meta.intra_consistency(q, up, np.array([1, 0, 0, 0, 0], bool), adversary=False))


def test_inter_consistency_known_answers():
    Q = np.array([[3.0, 1.0], [2.0, 2.0], [1.0, 3.0]])           # methods x images
    kept = np.ones(2, bool)
    assert meta.inter_consistency(Q, Q, kept, adversary=False) == 1.0
    # image 0 keeps its order, image 1 swaps its first and last method: 1 of its 3 places holds
    Q_hat = np.array([[3.0, 3.0], [2.0, 2.0], [1.0, 1.0]])
    assert meta.inter_consistency(Q, Q_hat, kept, adversary=False) == pytest.approx((3 + 1) / 6)
    # the adversary share: scores that got worse (lower, higher being better), 4 of 6 here
    worse = Q - np.array([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert meta.inter_consistency(Q, worse, kept, adversary=True) == pytest.approx(4 / 6)
    assert meta.inter_consistency(Q, worse, kept, adversary=True, higher_is_better=False) == 0.0
    assert meta.inter_consistency(Q, worse, np.array([True, False]), adversary=True) == 1.0
    assert np.isnan(meta.inter_consistency(Q, worse, np.zeros(2, bool), adversary=True))


def test_perturbed_networks_are_seeded_copies():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    net[1].running_mean += 1.0
    a, b, c = meta.perturbed(net, 0.1, seed=1), meta.perturbed(net, 0.1, seed=1), meta.perturbed(net, 0.1, seed=2)
    w = net[0].weight
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)
    ratio = a[0].weight / w
    assert 0.5 < ratio.std().item() / 0.1 < 2 and abs(ratio.mean().item() - 1) < 0.1   # multiplied by 1 + N(0, 0.1^2)
    assert torch.equal(a[1].running_mean, net[1].running_mean)                          # buffers kept
    assert not torch.equal(w, a[0].weight) and torch.equal(w, net[0].weight)           # the original untouched
    with pytest.raises(ParameterError, match="std=0"):
        meta.perturbed(net, 0, seed=0)


def _rows(score_fn, k=3, n=8, methods=("a", "b", "c")):
    """Long rows for one (model, column): the unperturbed scores, and k perturbations per test whose
    scores are score_fn(test, perturbation, base) and that change every decision under the adversary."""
    rng = np.random.default_rng(0)
    base = {m: rng.normal(size=n) + 3 * i for i, m in enumerate(methods)}
    out = []
    for test in ("resilience", "adversary"):
        for p in range(k + 1):
            for m in methods:
                s = base[m] if p == 0 else score_fn(test, p, base[m])
                out.append(pd.DataFrame({"model": "net", "column": "col", "test": test, "perturbation": p,
                                         "method": m, "image": np.arange(n), "score": s,
                                         "kept": p == 0 or test == "resilience"}))
    return pd.concat(out, ignore_index=True)


def test_a_metric_that_ignores_the_network_resists_noise_and_does_not_react():
    t = meta.consistency(_rows(lambda test, p, s: s), {"col": True}).iloc[0]
    assert t["IAC_NR"] == 1.0 and t["IEC_NR"] == 1.0          # resilient: nothing moves
    assert t["IAC_AR"] == 0.0 and t["IEC_AR"] == 0.0          # and blind to a network that decides otherwise
    assert t["MC"] == 0.5
    assert t["kept (resilience)"] == 1.0 and t["kept (adversary)"] == 0.0


def test_a_metric_that_drops_under_the_adversary_only_scores_high():
    t = meta.consistency(_rows(lambda test, p, s: s - (5.0 if test == "adversary" else 0.0)), {"col": True}).iloc[0]
    assert t["IEC_AR"] == 1.0 and t["IAC_AR"] == pytest.approx(1 - 2 / 2 ** 8)   # 8 images, one sign: p = 2 / 2^8
    assert t["MC"] == pytest.approx((1 + 1 + 1 + 1 - 2 / 2 ** 8) / 4)
    # read as lower-is-better, the same drop is an improvement: no reactivity by the inter measure
    assert meta.consistency(_rows(lambda test, p, s: s - (5.0 if test == "adversary" else 0.0)),
                            {"col": False}).iloc[0]["IEC_AR"] == 0.0


def test_bad_input_is_refused_by_name():
    q = np.arange(4.0)
    with pytest.raises(ParameterError, match="q_hat has the value NaN"):
        meta.intra_consistency(q, np.array([0.0, np.nan, 2.0, 3.0]), np.ones(4, bool), adversary=False)
    with pytest.raises(ParameterError, match="same length"):
        meta.intra_consistency(q, q[:3], np.ones(4, bool), adversary=False)
    with pytest.raises(ParameterError, match="kept must be 4 booleans"):
        meta.intra_consistency(q, q, np.ones(4), adversary=False)
    with pytest.raises(ParameterError, match="same shape"):
        meta.inter_consistency(np.ones((2, 3)), np.ones((3, 2)), np.ones(2, bool), adversary=False)
    with pytest.raises(ParameterError, match="Q has the value inf"):
        meta.inter_consistency(np.array([[1.0, np.inf]]), np.ones((1, 2)), np.ones(2, bool), adversary=False)


def test_findings_name_the_best_and_the_weakest_columns(tmp_path):
    blind = _rows(lambda test, p, s: s)
    reactive = _rows(lambda test, p, s: s - (5.0 if test == "adversary" else 0.0)).assign(column="reacts")
    t = meta.consistency(pd.concat([blind, reactive]), {"col": True, "reacts": True})
    text = meta.findings(t)
    assert "highest meta-consistency reacts" in text and "IEC_AR col (0.00)" in text
    # the committed run is read back as written
    folder = tmp_path / "10_leaderboard" / "larger_run" / "meta"
    assert meta.read(root=tmp_path) is None
    folder.mkdir(parents=True)
    blind.to_csv(folder / "meta_per_image.csv.gz", index=False)
    (folder / "meta.json").write_text('{"k": 3}')
    rows, record = meta.read(root=tmp_path)
    assert record == {"k": 3} and len(rows) == len(blind)


def test_the_script_runs_end_to_end(tmp_path):
    """scripts/meta_evaluation.py on two images, one method, one perturbed network per test: it
    scores every leaderboard column that takes a map, and writes its table and record."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd
    from xailib.chapters import leaderboard as lb
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "XAILIB_CACHE": str(tmp_path / "cache")}
    subprocess.run([sys.executable, str(root / "scripts" / "meta_evaluation.py"), "--models", "vgg_mini",
                    "--methods", "gradient", "--n-images", "2", "--k", "1", "--out", str(tmp_path / "meta")],
                   check=True, env=env, cwd=root, capture_output=True)
    rows = pd.read_csv(tmp_path / "meta" / "meta_per_image.csv.gz")
    record = json.loads((tmp_path / "meta" / "meta.json").read_text())
    want = {c.label for c in lb.COLUMNS if c.images == "benchmark" and c.takes_map} - {"Impact Score", "I_strict"}
    assert set(rows.column) == want == set(record["columns"])
