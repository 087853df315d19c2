"""Does a metric resist noise and react to an adversary? MetaQuantus's model perturbation test.

Hedström et al. (2023) judge an evaluation metric by two failure modes. **Noise resilience**: a
minor perturbation of the network (every parameter multiplied by ``1 + eps``, eps ~ N(0, 0.001^2))
that leaves its decisions as they were should leave the metric's scores and its ranking of the
methods as they were. **Adversary reactivity**: a disruptive one (eps ~ N(0, 2^2)) that changes the
decisions should change the scores, and for the worse. Each test is made on ``K`` perturbed
networks (their K = 5), once (MetaQuantus repeats the K perturbations a few times and reports the
spread of the repeats; the ranges here are over the K single perturbations); the methods are re-explained on each perturbed network, for the class the
unperturbed one predicts, and re-scored under it. Four numbers, each in [0, 1], higher better:

- ``IAC_NR`` (intra-consistency, resilience): per method, the p-value of Wilcoxon's signed-rank
  test between the scores before and after, over the images whose decision the perturbation kept;
- ``IAC_AR`` (intra-consistency, reactivity): 1 minus that p-value, over the images whose decision
  it changed;
- ``IEC_NR`` (inter-consistency, resilience): the share of (image, place) where the methods stand in
  the same order before and after;
- ``IEC_AR`` (inter-consistency, reactivity): the share of (method, image) whose score got worse;

and their mean, the meta-consistency ``MC``. Their input perturbation test (noise on the image) is
not run here. These are written from the definitions (the MetaQuantus package requires Quantus
and its own explanation wrappers, which the book does not use); the tests check each against a
hand computation.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from .errors import ParameterError, check_positive_int, check_values

MINOR_STD, MAJOR_STD = 0.001, 2.0      # MetaQuantus's multiplicative noise: resilience, adversary
TESTS = {"resilience": MINOR_STD, "adversary": MAJOR_STD}
K = 5                                   # perturbed networks per test (MetaQuantus's K)
MEASURES = ("IAC_NR", "IAC_AR", "IEC_NR", "IEC_AR")


def perturbed(net: nn.Module, std: float, seed: int) -> nn.Module:
    """A copy of ``net`` with every parameter (weights, biases, batch-norm scales and shifts)
    multiplied by ``1 + std * N(0, 1)``, drawn from a generator seeded with ``seed``; buffers
    (batch-norm running statistics) are kept, as MetaQuantus keeps them."""
    if not check_values("std", std, ndim=0) > 0:
        raise ParameterError(f"std={std!r} must be > 0")
    out = copy.deepcopy(net).eval()
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for p in out.parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.device, p.dtype)
            p.mul_(1 + std * noise)
    return out


def _kept(kept, n: int) -> np.ndarray:
    k = np.asarray(kept)
    if k.dtype != bool or k.shape != (n,):
        raise ParameterError(f"kept must be {n} booleans (one per image), got {k.dtype} of shape {k.shape}")
    return k


def intra_consistency(q, q_hat, kept, adversary: bool) -> float:
    """Per method: Wilcoxon's signed-rank p-value (two-sided, zero differences split) between the
    scores ``q`` and ``q_hat`` on the images selected by ``kept``; ``1 - p`` for the adversary test.
    Scores that do not move at all give p = 1. NaN with fewer than two selected images."""
    q = check_values("q", q, ndim=1, empty=True)
    q_hat = check_values("q_hat", q_hat, ndim=1, empty=True)
    if q.shape != q_hat.shape:
        raise ParameterError(f"q and q_hat must be the same length, got {len(q)} and {len(q_hat)}")
    k = _kept(kept, len(q))
    if k.sum() < 2:
        return float("nan")
    d = q[k] - q_hat[k]
    p = 1.0 if not np.any(d) else float(stats.wilcoxon(q[k], q_hat[k], zero_method="zsplit").pvalue)
    return 1 - p if adversary else p


def inter_consistency(Q, Q_hat, kept, adversary: bool, higher_is_better: bool = True) -> float:
    """``Q`` and ``Q_hat`` (methods x images): the scores before and after. Resilience: the share
    of (image, place) at which the methods' order (a stable sort of each image's scores) is the
    same; tied methods keep their listed order, so ties that stay ties count as the same places. Adversary: the share of (method, image) whose score got worse (lower where higher is
    better). Over the images selected by ``kept``; NaN when none is."""
    Q = check_values("Q", Q, ndim=2, empty=True)
    Q_hat = check_values("Q_hat", Q_hat, ndim=2, empty=True)
    if Q.shape != Q_hat.shape:
        raise ParameterError(f"Q and Q_hat must have the same shape, got {Q.shape} and {Q_hat.shape}")
    k = _kept(kept, Q.shape[1])
    if not k.any():
        return float("nan")
    Q, Q_hat = Q[:, k], Q_hat[:, k]
    if adversary:
        return float(np.mean(Q > Q_hat if higher_is_better else Q < Q_hat))
    return float(np.mean(np.argsort(Q, axis=0, kind="stable") == np.argsort(Q_hat, axis=0, kind="stable")))


def consistency(rows: pd.DataFrame, higher_is_better: dict) -> pd.DataFrame:
    """The four measures and MC per (model, column), from long rows with columns model, column,
    test ('resilience' / 'adversary'), perturbation (0 = the unperturbed network, 1..K),
    method, image, score, kept (the perturbed network's decision is the unperturbed one's).
    Each measure is averaged over the K perturbations (IAC also over the methods); ``low`` and
    ``high`` give its range over the perturbations, ``n`` how many perturbations had a value (IAC
    needs two selected images, IEC one: a perturbation that changes no decision has no AR value)."""
    out = []
    for (model, column), g in rows.groupby(["model", "column"], sort=False):
        hib = higher_is_better[column]
        row = {"model": model, "column": column}
        for test, adversary in (("resilience", False), ("adversary", True)):
            t = g[g.test == test]
            base = t[t.perturbation == 0].pivot(index="method", columns="image", values="score")
            iac, iec = [], []
            for p, h in t[t.perturbation > 0].groupby("perturbation"):
                hat = h.pivot(index="method", columns="image", values="score").reindex_like(base)
                kept = h.groupby("image")["kept"].first().reindex(base.columns)
                if kept.isna().any() or hat.isna().any().any():
                    raise ParameterError(f"{model}, {column}, {test} {p}: a method or image has no score")
                kept = kept.to_numpy(bool)
                sel = ~kept if adversary else kept
                iac.append(np.nanmean([intra_consistency(base.loc[m], hat.loc[m], sel, adversary)
                                       for m in base.index]) if sel.sum() >= 2 else np.nan)
                iec.append(inter_consistency(base.to_numpy(), hat.to_numpy(), sel, adversary, hib))
            tag = "AR" if adversary else "NR"
            for name, v in ((f"IAC_{tag}", iac), (f"IEC_{tag}", iec)):
                v = np.asarray(v, float)
                fin = v[np.isfinite(v)]
                row[name] = float(fin.mean()) if len(fin) else np.nan
                row[f"{name} low"] = float(fin.min()) if len(fin) else np.nan
                row[f"{name} high"] = float(fin.max()) if len(fin) else np.nan
                row[f"{name} n"] = len(fin)
            row[f"kept ({test})"] = float(t[t.perturbation > 0].groupby(["perturbation", "image"])["kept"]
                                          .first().mean())
        row["MC"] = float(np.mean([row[m] for m in MEASURES])) if all(np.isfinite(row[m]) for m in MEASURES) \
            else np.nan
        out.append(row)
    return pd.DataFrame(out)


def model_test(store, model: str, net: nn.Module, images: torch.Tensor, methods, score_maps, *, k: int = K,
               method_params: dict | None = None, seed: int = 0, progress=None) -> pd.DataFrame:
    """Long rows (see :func:`consistency`) of ``methods`` on the unperturbed network and on ``k``
    perturbed ones per test. ``score_maps(tag, network, targets, maps)`` scores the maps
    ({method: (B, H, W)}) a network made under every metric tested, as long rows (model, images,
    method, column, image, score); chapter 10 passes its leaderboard's columns
    (``scripts/meta_evaluation.py``). Maps cached in ``store`` (an interrupted run resumes). The
    k-th perturbed network of a test is drawn with seed ``seed + 1000 * (test index) + k``."""
    from . import methods as registry, models
    check_positive_int("k", k)
    progress = progress or (lambda it, **_: it)
    method_params = method_params or {}
    targets = models.predict(net, images).argmax(1)            # the unperturbed network's decisions
    n = len(images)
    rows = []

    def scored(tag, network):
        maps = {m: store.batches(f"meta/{model}/{tag}/maps/{m}", n, n,
                                 lambda sl, m=m: registry.explain(network, images[sl], targets[sl], m,
                                                                  **method_params.get(m, {})), progress=False)
                for m in methods}
        return score_maps(tag, network, targets, maps)

    base = scored("unperturbed", net)
    for i, (test, std) in enumerate(TESTS.items()):
        rows.append(base.assign(test=test, perturbation=0, kept=True))
        for p in progress(range(1, k + 1), desc=f"{model} {test}"):
            pnet = perturbed(net, std, seed + 1000 * i + p)
            kept = (models.predict(pnet, images).argmax(1) == targets).numpy()
            s = scored(f"{test}/{p}", pnet)
            rows.append(s.assign(test=test, perturbation=p, kept=kept[s.image.to_numpy()]))
    return pd.concat(rows, ignore_index=True)


def read(notebook: str = "10_leaderboard", root=None):
    """``scripts/meta_evaluation.py``'s committed run: (per-image rows, its record), or None when
    none is committed."""
    import json
    from pathlib import Path

    from .results import REPO
    folder = Path(root or REPO / "results") / notebook / "larger_run" / "meta"
    if not (folder / "meta.json").exists():
        return None
    return pd.read_csv(folder / "meta_per_image.csv.gz"), json.loads((folder / "meta.json").read_text())


def findings(table: pd.DataFrame) -> str:
    """Markdown: per network, the columns with the highest and the lowest meta-consistency, and the
    weakest column under each measure (no pass mark: MetaQuantus ranks metrics, it sets none)."""
    out = []
    for model, g in table.groupby("model", sort=False):
        g = g.sort_values("MC", ascending=False)
        best = ", ".join(f"{r.column} ({r.MC:.2f})" for r in g.head(3).itertuples())
        worst = ", ".join(f"{r.column} ({r.MC:.2f})" for r in g.tail(3).iloc[::-1].itertuples())
        weakest = "; ".join(f"{m} {g.loc[g[m].idxmin(), 'column']} ({g[m].min():.2f})"
                            for m in MEASURES if g[m].notna().any())
        out.append(f"- **{model}**: highest meta-consistency {best}; lowest {worst}. "
                   f"The weakest under each measure: {weakest}.")
    return "\n".join(out)
