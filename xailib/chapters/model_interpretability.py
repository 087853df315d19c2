"""Chapter 11's plumbing: Network Dissection and Consensus on the model zoo, and the claims they test.

The algorithms are in :mod:`xailib.dissection` and :mod:`xailib.consensus`; this module loads the
committee, tabulates, draws, and builds the claims the chapter judges with :mod:`xailib.verdicts`.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import consensus as cs
from .. import dissection as nd
from .. import models, plots, results, verdicts
from ..metrics import score

RANDOM = "{} (random init)"          # a randomly initialised copy of an architecture: Bau et al.'s baseline
FAMILY_COLOURS = {"object": "tab:blue", "scene": "tab:green", "colour": "tab:orange"}
BAU = "Bau et al. 2017"
LI = "Li et al. 2021"


def load_networks(names, random_init: bool, seed: int, device: str = "cpu") -> dict:
    """The networks by name and, with ``random_init``, one randomly initialised copy of each
    architecture among them (seeded: :func:`xailib.models.random_init`), named :data:`RANDOM`."""
    nets = {name: models.load_model(name, device=device) for name in names}
    if random_init:
        for arch in dict.fromkeys(models.ZOO_MODELS.get(n, n) for n in names):
            nets[RANDOM.format(arch)] = models.random_init(arch, seed, device)
    return nets


# EfficientNet-Lite0's layers dissected on the photographs: the stem, the last block of each of
# its seven stages (where the feature map changes size or width) and the 1x1 head, as Bau et al.
# dissect a few named layers of a network. All 33 of its ReLU6 outputs take four times as long.
LITE0_LAYERS = ["net._stem_act", *(f"net._blocks.{b}._act1" for b in (0, 2, 4, 7, 10, 14, 15)), "net._head_act"]


def real_layers(name: str, model) -> list | None:
    """The layers dissected on a real network: :data:`LITE0_LAYERS` for Lite0, else every ReLU
    (None: :func:`xailib.dissection.probe_layers`)."""
    return LITE0_LAYERS if name == "efficientnet_lite0" else None


def architecture(name: str) -> str:
    base = name.split(" (")[0]
    return models.ZOO_MODELS.get(base, base)


def coverage(concepts) -> pd.Series:
    """Each concept's share of all pixels of all images: ``concepts`` as :func:`xailib.dissection.dissect`
    takes them ({name: (N, H, W) bool}) or a :class:`~xailib.dissection.Dissection`."""
    if isinstance(concepts, nd.Dissection):
        return pd.Series(concepts.labelled.sum(0) / (concepts.labelled.shape[0] * concepts.pixels), index=concepts.concepts)
    return pd.Series({name: float(torch.as_tensor(m).float().mean()) for name, m in concepts.items()})


def ceilings(share: pd.Series, quantile: float) -> pd.Series:
    """The highest IoU a unit that selects exactly the top ``quantile`` of all pixels can reach
    with each concept: ``min(q, p) / max(q, p)`` for a concept covering a share ``p`` of all pixels
    (:func:`coverage`). A unit selects about that share, not exactly: positions tied at its
    threshold (a ReLU6 saturated at 6) and bilinear upsampling make it more or less; the bound
    that holds is :func:`reachable`'s."""
    p = share.to_numpy(float)
    return pd.Series(np.minimum(p, quantile) / np.maximum(p, quantile), index=share.index, name="ceiling")


def selected_shares(d: nd.Dissection) -> np.ndarray:
    """Each unit's real share of all pixels of all images that it selects."""
    return d.selected.sum(0) / (d.selected.shape[0] * d.pixels)


def reachable(dissections, share: pd.Series) -> pd.Series:
    """The highest IoU any unit of ``dissections`` ({name: Dissection}, or one) can reach with each
    concept given the share of pixels it really selects, ``max_k min(s_k, p) / max(s_k, p)``: an
    IoU cannot exceed the smaller set over the larger. A concept whose value is at most the IoU
    threshold cannot have a detector in these networks, whatever they learned."""
    ds = dissections.values() if isinstance(dissections, dict) else [dissections]
    s = np.concatenate([selected_shares(d) for d in ds])[:, None]
    p = share.to_numpy(float)[None, :]
    bound = np.divide(np.minimum(s, p), np.maximum(s, p), out=np.zeros((len(s), p.shape[1])), where=np.maximum(s, p) > 0)
    return pd.Series(bound.max(0), index=share.index, name="reachable")


def per_layer(dissections: dict, threshold: float = nd.IOU_THRESHOLD) -> pd.DataFrame:
    """Every network's :func:`xailib.dissection.summary`, one table (network, layer, depth)."""
    out = []
    for name, d in dissections.items():
        s = nd.summary(d.table(threshold)).reset_index()
        s.insert(0, "network", name)
        s.insert(2, "depth", list(range(1, len(s))) + [0])
        out.append(s)
    return pd.concat(out, ignore_index=True).fillna(0)


def detector_figure(table: pd.DataFrame, families=("object", "scene", "colour"), ncols: int = 3):
    """Bau et al.'s per-layer bars: detectors per layer (from the input up), stacked by family."""
    names = list(dict.fromkeys(table["network"]))
    rows = -(-len(names) // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(3.3 * ncols, 2.4 * rows), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names):
        t = table[(table.network == name) & (table.depth > 0)]
        bottom = np.zeros(len(t))
        for f in families:
            col = f"{f} detectors"
            if col in t:
                ax.bar(t["depth"], t[col], bottom=bottom, color=FAMILY_COLOURS.get(f), label=f, width=0.7)
                bottom += t[col].to_numpy(float)
        ax.plot(t["depth"], t["units"], "k_", markersize=12, label="units")
        ax.set_title(name, fontsize=8)
        ax.set_xticks(t["depth"])
        ax.tick_params(labelsize=7)
        ax.set_xlabel("layer (from the input)", fontsize=7)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("units", fontsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def unit_figure(model, d: nd.Dissection, images, title: str, threshold: float = nd.IOU_THRESHOLD,
                n_units: int = 4, n_images: int = 5, read: str = "output"):
    """Bau et al.'s view of a detector: for the last dissected layer's best detectors (one per
    concept, highest IoU first), the images where its selected positions cover most of its concept,
    each with those positions outlined (cyan)."""
    table = d.table(threshold)
    last = table[(table.layer == _layers(d)[-1]) & table.detector].sort_values("iou", ascending=False)
    best = last.drop_duplicates("concept").head(n_units)
    if best.empty:
        return None
    shown = []
    for _, u in best.iterrows():
        k = int(np.flatnonzero((d.units.layer == u.layer).to_numpy() & (d.units.unit == u.unit).to_numpy())[0])
        c = d.concepts.index(u.concept)
        order = np.argsort(-d.inter[:, k, c], kind="stable")[:n_images]
        shown.append((u, k, order[d.inter[order, k, c] > 0]))   # only images where it selects some of its concept
    cols = max(len(o) for _, _, o in shown)
    fig, axes = plt.subplots(len(best), cols, figsize=(1.3 * max(cols, 2), 1.45 * len(best)), squeeze=False)
    for row, (u, k, order) in zip(axes, shown):
        sub = images.images[torch.as_tensor(order)]
        s = nd.unit_maps(model, sub, u.layer, int(u.unit), read=read)
        t, f = float(d.units.threshold[k]), float(d.units.floor[k])
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(False)
        for ax, i, m in zip(row, order, s):
            ax.imshow(plots.to_hwc(images.images[int(i)]), interpolation="nearest")
            ax.contour(((m >= t) & (m > f)).float().numpy(), levels=[0.5], colors="cyan", linewidths=0.8)
        row[0].set_ylabel(f"{u.layer}, unit {int(u.unit)}\n{u.concept}, IoU {u.iou:.2f}", fontsize=6)
    fig.suptitle(title, fontsize=8, y=1.0)
    fig.tight_layout(pad=0.2)
    return fig


# --------------------------------------------------------------------------------------------
# Claims on the dissection: statistics of pooled counts, bootstrapped over images
# --------------------------------------------------------------------------------------------

def share(d: nd.Dissection, weights, threshold: float = nd.IOU_THRESHOLD, layers=None, family=None) -> np.ndarray:
    """Per row of ``weights``: the share of the units (of ``layers``, default all) that detect a
    concept (of ``family``, default any: a unit counts for its best concept only)."""
    return _share_of(d, d.iou(weights), threshold, layers, family)


def layer_gap(d: nd.Dissection, weights, threshold: float, family: str, minuend: str, subtrahend: str) -> np.ndarray:
    """Per row of ``weights``: the share of ``family`` detectors in layer ``minuend`` minus that in
    layer ``subtrahend`` (the IoU computed once for both)."""
    iou = d.iou(weights)
    return (_share_of(d, iou, threshold, [minuend], family) - _share_of(d, iou, threshold, [subtrahend], family))


def _share_of(d: nd.Dissection, iou: np.ndarray, threshold: float, layers, family) -> np.ndarray:
    keep = np.ones(iou.shape[1], bool) if layers is None else d.units["layer"].isin(layers).to_numpy()
    best, arg = iou.max(2)[:, keep], iou.argmax(2)[:, keep]
    hit = best > threshold
    if family is not None:
        hit &= np.asarray(d.families)[arg] == family
    return hit.mean(1)


def unique(d: nd.Dissection, weights, threshold: float = nd.IOU_THRESHOLD) -> np.ndarray:
    """Per row of ``weights``: the number of distinct concepts the network's detectors detect."""
    iou = d.iou(weights)
    best, arg = iou.max(2), iou.argmax(2)
    onehot = np.zeros((len(iou), len(d.concepts)), bool)
    rows, units = np.nonzero(best > threshold)
    onehot[rows, arg[rows, units]] = True
    return onehot.sum(1).astype(float)


def _layers(d: nd.Dissection) -> list:
    return list(dict.fromkeys(d.units["layer"]))


def dissection_claims(ds: dict, quantile: float, threshold: float, label_pairs: dict, task_pair: tuple | None,
                      n_images: int, n_boot: int, seed: int) -> list:
    """The dissection's claims, each a bootstrap over the images of a difference of pooled statistics
    (see the chapter for what each tests)."""
    claims = []

    def add(claim, model, stat, paper, setting="", degenerate="", scale=100.0, unit=" pts"):
        c = verdicts.bootstrap_statistic(stat, n_images, n_boot=n_boot, seed=seed)
        claims.append(verdicts.Claim(claim, model, c, paper=paper, setting=setting, scale=scale, unit=unit,
                                     degenerate=degenerate))

    trained = [n for n in ds if not n.endswith("(random init)")]
    for name in trained:
        base = RANDOM.format(architecture(name))
        if base in ds and name in models.BENCHMARK_MODELS:
            add("a trained network has more unique detectors than its architecture at random initialisation", name,
                lambda w, a=ds[name], b=ds[base]: unique(a, w, threshold) - unique(b, w, threshold),
                f"{BAU}: training, not the architecture alone, makes detectors (unique detectors)",
                f"against {base}; distinct concepts detected", scale=1.0, unit=" concepts")
            add("a trained network has more detectors than its architecture at random initialisation", name,
                lambda w, a=ds[name], b=ds[base]: share(a, w, threshold) - share(b, w, threshold),
                f"{BAU}, with the survey's score (the ratio of semantic neurons)", f"against {base}; share of all units")
    for true, permuted in label_pairs.items():
        if true in ds and permuted in ds:
            add("training on the labels gives more object detectors than training on permuted labels", true,
                lambda w, a=ds[true], b=ds[permuted]: (share(a, w, threshold, family="object")
                                                        - share(b, w, threshold, family="object")),
                f"the book's extension of {BAU} (they ran no permuted-label network)", f"against {permuted}; share of all units")
    for name in [n for n in trained if n in models.BENCHMARK_MODELS]:
        d, ls = ds[name], _layers(ds[name])
        add("object detectors emerge in the higher layers", name,
            lambda w, d=d, ls=ls: layer_gap(d, w, threshold, "object", ls[-1], ls[0]),
            f"{BAU}: object and part detectors in the top layers", f"last layer ({ls[-1]}) against first ({ls[0]})")
        if "colour" not in d.families:
            continue
        add("colour detectors sit in the lower layers", name,
            lambda w, d=d, ls=ls: layer_gap(d, w, threshold, "colour", ls[0], ls[-1]),
            f"{BAU}: colour and texture detectors in the lower layers", f"first layer ({ls[0]}) against last ({ls[-1]})")
    if "resnet_mini" in ds and "vgg_mini" in ds:
        add("a residual network has more unique detectors than a VGG-style one", "resnet_mini",
            lambda w: unique(ds["resnet_mini"], w, threshold) - unique(ds["vgg_mini"], w, threshold),
            f"{BAU}: ResNet above VGG in unique detectors", "against vgg_mini; distinct concepts detected",
            scale=1.0, unit=" concepts")
    if task_pair and all(t in ds for t in task_pair):
        obj, scene = task_pair
        add("a network trained on the objects has more object detectors than one trained on the scenes", obj,
            lambda w: share(ds[obj], w, threshold, family="object") - share(ds[scene], w, threshold, family="object"),
            f"the book's extension of {BAU}; BAM's pair of networks", f"against {scene}; same images")
        share_of = coverage(ds[scene])
        top = reachable({n: ds[n] for n in (obj, scene)}, share_of)
        scenes = [c for c, f in zip(ds[scene].concepts, ds[scene].families) if f == "scene"]
        why = ""
        if scenes and top[scenes].max() <= threshold:
            why = (f"no scene concept can pass IoU {threshold:g}: each covers {100 * share_of[scenes].min():.0f} % of the "
                   f"pixels or more, and no unit of the two networks selects more than "
                   f"{100 * max(selected_shares(ds[n]).max() for n in (obj, scene)):.2f} %, so no IoU can exceed "
                   f"{top[scenes].max():.3f}")
        if not scenes:
            return claims
        add("a network trained on the scenes has more scene detectors than one trained on the objects", scene,
            lambda w: share(ds[scene], w, threshold, family="scene") - share(ds[obj], w, threshold, family="scene"),
            f"the book's extension of {BAU}; BAM's pair of networks", f"against {obj}; same images", degenerate=why)
    return claims


# --------------------------------------------------------------------------------------------
# Consensus
# --------------------------------------------------------------------------------------------

CONSENSUS = "consensus"
BOOK_ANSWERS = Path("10_leaderboard") / "questions.csv"   # chapter 10's answer: which methods hold up


def trusted(methods, model: str, root: Path | None = None) -> pd.DataFrame:
    """The book's own answer, for each of ``methods`` on ``model``, to the questions chapter 10
    asks of every method with known truths (its committed ``questions`` table: localises the
    object, is faithful to the model, passes the randomisation check, finds a trojan's trigger):
    ``True`` where the method holds up, ``False`` where it does not or the question stays open,
    and ``trusted``, which needs every question answered on that network. Empty when the table
    is not there (a reader's own checkout without chapter 10's results)."""
    path = Path(root or results.REPO / "results") / BOOK_ANSWERS
    if not path.exists():
        return pd.DataFrame(index=pd.Index(list(methods), name="method"))
    q = pd.read_csv(path)
    q = q[(q["model"] == model) & (q["no verdict"] < q["of"])]         # the questions answered on this network
    held = {row["question"]: {m.split(" (")[0].strip() for m in str(row["methods that hold up"]).split(",")}
            if row["hold up"] else set() for _, row in q.iterrows()}
    out = pd.DataFrame({question: [m in names for m in methods] for question, names in held.items()},
                       index=pd.Index(list(methods), name="method"))
    out["trusted"] = out.all(axis=1) if len(held) else False
    return out


def consensus_table(maps: dict, committee, methods, images) -> pd.DataFrame:
    """Per method, network (the committee's and the consensus) and image: the map's agreement with
    the consensus (cosine of normalised maps) and its PxAP against the object mask (both on the
    normalised absolute maps). ``maps``: {(network, method): (N, H, W)}."""
    rows = []
    for method in methods:
        members = {n: maps[n, method] for n in committee}
        agreed = cs.consensus(members)
        for name, m in [*members.items(), (CONSENSUS, agreed)]:
            norm = cs.normalise(m).float()
            rows.append(pd.DataFrame({"method": method, "network": name, "image": np.arange(len(images)),
                                      "agreement": cs.agreement(m, agreed).numpy(),
                                      "pxap": score(None, images.images, None, norm, "pxap", masks=images.masks).numpy()}))
    return pd.concat(rows, ignore_index=True)


def _rank_rows(x: np.ndarray) -> np.ndarray:
    return np.apply_along_axis(stats.rankdata, 1, x)


def rank_agreement(table: pd.DataFrame, method: str, weights) -> np.ndarray:
    """Per row of ``weights`` (over images): Spearman's correlation, across the committee's networks,
    of their mean agreement with the consensus and their mean PxAP."""
    t = table[(table.method == method) & (table.network != CONSENSUS)]
    a = t.pivot(index="network", columns="image", values="agreement").to_numpy()
    g = t.pivot(index="network", columns="image", values="pxap").to_numpy()
    w = np.atleast_2d(weights)
    ma, mg = (w @ a.T) / w.sum(1, keepdims=True), (w @ g.T) / w.sum(1, keepdims=True)    # (R, networks)
    ra, rg = _rank_rows(ma), _rank_rows(mg)
    ra, rg = ra - ra.mean(1, keepdims=True), rg - rg.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rg ** 2).sum(1))
    return np.divide((ra * rg).sum(1), den, out=np.zeros(len(w)), where=den > 0)


def consensus_claims(table: pd.DataFrame, methods, n_boot: int, seed: int, masks=None, outliers=()) -> list:
    """Li et al.'s two findings, per method: the consensus agrees with the object mask more than the
    committee's members do on average; and agreement with the consensus orders the networks as
    agreement with the object mask does, with the committee whole and again without ``outliers``
    (networks expected to stand apart in both orders, such as a permuted-label one, which alone
    could make the correlation). ``masks``: the object masks, for the references the setting names
    (a constant map's PxAP is the object's share of the image; the mask's own is 1)."""
    claims = []
    floor = "" if masks is None else f"; a constant map {float(masks.float().mean()):.2f}, the object mask 1"
    for method in methods:
        t = table[table.method == method]
        n = int(t["image"].nunique())
        voters = [v for v in dict.fromkeys(t.network) if v != CONSENSUS]
        kept = [v for v in voters if v not in outliers]
        agreed = t[t.network == CONSENSUS].set_index("image")["pxap"].sort_index().to_numpy()
        for subset, note in ((voters, ""), (kept, f", without {', '.join(o for o in outliers if o in voters)}")):
            if subset is kept and (len(kept) == len(voters) or len(kept) < 2):
                continue
            members = t[t.network.isin(subset)].groupby("image")["pxap"].mean().sort_index().to_numpy()
            c = verdicts.paired(agreed, members, n_boot=n_boot, seed=seed)
            claims.append(verdicts.Claim("the consensus finds the object better than the committee's average member",
                                         method, c, paper=f"{LI}: the consensus is aligned with the segmentation",
                                         setting=f"PxAP of the consensus against the mean of {len(subset)} members{note}"
                                                 f"{floor}", scale=100.0, unit=" pts"))
        for subset, note in ((voters, ""), (kept, f", without {', '.join(o for o in outliers if o in voters)}")):
            if subset is kept and (len(kept) == len(voters) or len(kept) < 3):
                continue
            part = table[table.network.isin([*subset, CONSENSUS])]
            c = verdicts.bootstrap_statistic(lambda w, m=method, p=part: rank_agreement(p, m, w), n, n_boot=n_boot, seed=seed)
            claims.append(verdicts.Claim("agreement with the consensus orders the networks as agreement with the object does",
                                         method, c, kind="above",
                                         paper=f"{LI}: the consensus score tracks agreement with the ground truth",
                                         setting=f"Spearman over {len(subset)} networks{note}; the consensus of all "
                                                 f"{len(voters)}"))
    return claims


def lowest(table: pd.DataFrame) -> str:
    """Which network of the committee ranks last in each order, counted over the methods: the
    outlier that could make Li et al.'s correlation on its own, or an architecture apart."""
    t = table[table.network != CONSENSUS].groupby(["method", "network"], sort=False)[["agreement", "pxap"]].mean()
    parts = []
    for col, label in (("agreement", "agreement with the consensus"), ("pxap", "PxAP against the object")):
        last = t[col].unstack().idxmin(axis=1)
        counts = last.value_counts()
        parts.append(f"lowest in {label}: " + ", ".join(
            f"{net} for {k} of {len(last)} methods ({', '.join(last.index[last == net])})" for net, k in counts.items()))
    return "**Which network stands last?** " + "; ".join(parts) + "."


def consensus_figure(image, maps: dict, committee, method: str, title: str = ""):
    """One image, each member's normalised map and the consensus (the book's colour scale per map)."""
    names = [*committee, CONSENSUS]
    members = {n: maps[n] for n in committee}
    shown = {**{n: cs.normalise(m[None])[0] for n, m in members.items()}, CONSENSUS: cs.consensus(
        {n: m[None] for n, m in members.items()})[0]}
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(1.25 * (len(names) + 1), 1.6))
    axes[0].imshow(plots.to_hwc(image), interpolation="nearest")
    axes[0].set_title("image", fontsize=7)
    for ax, n in zip(axes[1:], names):
        plots.show_map(ax, shown[n].numpy())
        ax.set_title(n.replace("vgg_mini_", "vgg…").replace("_", " "), fontsize=6)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=8, y=1.02)
    fig.tight_layout(pad=0.2)
    return fig


def trusted_note(book: pd.DataFrame, model: str, every: pd.DataFrame | None = None) -> str:
    """One generated paragraph on :func:`trusted`'s table of the consensus's methods (``book``),
    and, given ``every`` (the same table for every registered method), the trusted methods the
    run leaves out."""
    if "trusted" not in book:
        return (f"Chapter 10's answer (`results/{BOOK_ANSWERS.as_posix()}`) is not in this checkout: no method is "
                "marked trusted here.")
    yes = [m for m in book.index if book.loc[m, "trusted"]]
    no = [m for m in book.index if not book.loc[m, "trusted"]]
    text = (f"Of the {len(book)} methods of the consensus, {len(yes)} hold up under every question chapter 10 answers "
            f"on `{model}`" + (f" ({', '.join(yes)})" if yes else ""))
    if no:
        text += "; " + "; ".join(f"{m} does not hold up under: "
                                 f"{', '.join(q for q in book.columns[:-1] if not book.loc[m, q])}" for m in no)
    if every is not None and "trusted" in every:
        left = [m for m in every.index if every.loc[m, "trusted"] and m not in book.index]
        if left:
            text += f". Trusted there but not in this run's committee: {', '.join(left)} (the larger run's list)"
    return text + "."


def claims_of_run(tables: dict, params: dict, n_boot: int, seed: int) -> list:
    """The chapter's claims from a committed run's tables (:func:`xailib.results.larger_run`): the
    dissection's from their kept bootstrap replicates (:func:`xailib.verdicts.claims_from_frames`),
    Li et al.'s recomputed from the per-image consensus table."""
    from .. import data, variants
    spec = pd.read_csv(tables["dissection_claims"])
    draws = pd.read_csv(tables["dissection_draws"], index_col=0)
    n = int(params["n_consensus"])
    pool = (variants.load_variant("bam", "test", n=n) if params["dataset"] == "bam"
            else data.load_shapes("test", n=n, seed=params["seed"]))
    return (verdicts.claims_from_frames(spec, draws)
            + consensus_claims(pd.read_csv(tables["consensus_per_image"]), params["consensus_methods"], n_boot, seed,
                               masks=pool.masks, outliers=list(params["label_pairs"].values())))


def consensus_findings(claims_table: pd.DataFrame, book: pd.DataFrame) -> str:
    """Li et al.'s ranking claim, counted apart for the methods the book trusts and the others."""
    rank = claims_table[claims_table.claim.str.startswith("agreement with the consensus orders")]
    if rank.empty:
        return ""
    trusted_ones = set(book.index[book["trusted"]]) if "trusted" in book else set()
    parts = []
    for label, keep in (("the methods the book trusts", rank.model.isin(trusted_ones)),
                        ("the other methods", ~rank.model.isin(trusted_ones))):
        r = rank[keep]
        if r.empty:
            continue
        whole = r[~r.setting.str.contains("without")]
        without = r[r.setting.str.contains("without")]
        text = (f"for {label} ({', '.join(dict.fromkeys(r.model))}), it holds on the whole committee for "
                f"{int((whole.verdict == 'holds').sum())} of {len(whole)}")
        if len(without):
            text += f" and without the outlier for {int((without.verdict == 'holds').sum())} of {len(without)}"
        parts.append(text)
    return ("**Does agreement with the consensus track agreement with the object?** " + "; ".join(parts)[0].upper()
            + "; ".join(parts)[1:] + ".")


def real_summary(table: pd.DataFrame, name: str, d: nd.Dissection | None = None, quantile: float = nd.QUANTILE) -> str:
    """Generated sentences on a real network's dissection beside its random copy (``d``, the
    trained network's :class:`~xailib.dissection.Dissection`, adds how few positions its last
    layer's top quantile is)."""
    whole = table[table.layer == "all layers"].set_index("network")
    by_layer = table[table.depth > 0]
    t = whole.loc[name]
    text = (f"On the photographs, {name} has {int(t.detectors)} colour detectors among its {int(t.units)} dissected "
            f"units ({100 * t.share:.1f} %), detecting {int(t['unique detectors'])} distinct colours")
    base = RANDOM.format(name)
    if base in whole.index:
        r = whole.loc[base]
        text += (f"; its randomly initialised copy has {int(r.detectors)} ({100 * r.share:.1f} %), detecting "
                 f"{int(r['unique detectors'])}. ")
        per = {n: by_layer[by_layer.network == n]["unique detectors"].astype(int).tolist() for n in (name, base)}
        text += (f"Distinct colours detected per layer, from the input up: trained {', '.join(map(str, per[name]))}; "
                 f"random {', '.join(map(str, per[base]))}.")
        if r.detectors >= t.detectors:
            text += (" The random copy has as many colour detectors or more: a colour survives random filters, so the "
                     "count alone does not tell training apart here; the distinct colours per layer do, where they differ.")
    else:
        text += "."
    if d is not None:
        layer = _layers(d)[-1]
        last = d.units[d.units.layer == layer].iloc[0]
        n = int(last.positions)
        hits = d.table().reset_index(drop=True)
        k = np.flatnonzero((hits.layer == layer).to_numpy() & hits.detector.to_numpy())
        photos = (d.selected[:, k] > 0).sum(0) if len(k) else np.zeros(0)
        text += (f" How thin this is: in the last layer ({layer}), a unit's top {100 * quantile:g} % is about "
                 f"{quantile * n:.0f} of its {n} positions over the {d.inter.shape[0]} photographs")
        if len(k):
            text += (f"; its {len(k)} detectors select pixels on a median of {np.median(photos):g} photographs "
                     f"(at most {int(photos.max())}), nothing to generalise from (the figure below).")
        else:
            text += "."
        s = selected_shares(d)
        wide = int((s > 5 * quantile).sum())
        text += (f" {wide} of the {len(s)} units select more than five times the quantile of the pixels "
                 f"(positions tied at the threshold: capped at 6, or at one value over blank regions), the largest "
                 f"{100 * s.max():.0f} %: such a unit can match a large colour by being flat over it.")
    return text


def this_run(claims_table: pd.DataFrame, here: pd.DataFrame) -> np.ndarray:
    """The verdict the run the page shows gives each claim of ``claims_table`` (None where it does
    not make it), matched on the claim, the model and the setting up to its first ";" (what
    follows names numbers of the data, such as the reference's score, which differ between runs)."""
    key = lambda t: list(zip(t["claim"], t["model"], t["setting"].str.split(";").str[0]))   # noqa: E731
    verdict = dict(zip(key(here), here["verdict"]))
    return np.array([verdict.get(k) for k in key(claims_table)], dtype=object)


def unique_note(cover: pd.DataFrame, whole: pd.DataFrame) -> str:
    """How much room the unique-detector claims have: the concepts any unit could detect in this
    run (``cover``'s ``detectable``) beside each network's distinct concepts detected (``whole``)."""
    k, n = int(cover["detectable"].sum()), len(cover)
    nets = ", ".join(f"{name} {int(v)}" for name, v in whole["unique detectors"].items() if "random init" not in name)
    return (f"**How much room the unique-detector claims have.** In this run {k} of the {n} concepts can be detected "
            f"by some unit at all; the trained networks detect {nets} distinct concepts. A comparison near that "
            "ceiling has little room to show a difference.")
