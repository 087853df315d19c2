"""The leaderboard (chapter 10): every method under every metric on one shared set of images,
how far the metrics agree, which of them pass tests against the benchmark's known truths, how
stable their rankings are, and what each costs.

The **columns** (:data:`COLUMNS`) are the book's metrics, each with the parameters and the image
set it is scored on; a registered metric's direction (higher or lower is better) is read from
:data:`xailib.metrics.METRICS`, and only the two derived scores (the similarity after model
randomisation, BAM's contrast) declare their own. The **image sets**:

- ``benchmark``: the first test images every network classifies correctly, with their exact
  object masks and boxes; explained by each network, and by the same network with every layer
  randomised (the sanity checks' last step);
- ``patched``: test images of other classes that a network's committed adversarial patch turns
  into its target (chapter 04), for Impact Coverage;
- ``trojan``: triggered images that the zoo's fixed-trigger trojaned ``vgg_mini`` sends to its
  target, with the trigger's mask (chapter 08);
- ``bam``: BAM images that the object and the scene network both classify correctly;
- ``mosaics``: Focus's mosaics of four test images (:func:`xailib.known_truth.mosaic_images`),
  explained through each network taking the mosaic;
- ``bam pairs``: BAM images the scene network labels by their background with and without their
  object, for BAM's input dependence and independence rates.

The **known truths** (:func:`validity_claims`), judged by the shared rule of
:mod:`xailib.verdicts`:

1. the object's mask, scored as a map, beats a random map (on the benchmark images);
2. on the trojaned network's triggered images the trigger's mask beats the object's mask: the
   network decides by the trigger, so a metric that reads the model must prefer it;
3. the object's mask scores better under BAM's object network than under its scene network: the
   object is the evidence for one and a distraction for the other.

Tests 2 and 3 apply to the metrics that call the model; a metric that compares a map with the
object's pixels cannot see which pixels a network uses, and the table says so ("ignores the
model") instead of failing it. Everything a chapter shows is rebuilt from the long per-image
table by :func:`rebuild`, which the committed CSVs feed as well.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .. import agreement, known_truth, models, patches, variants, verdicts
from ..errors import MissingResourceError, ParameterError
from ..map_cache import Lazy, Maps
from ..map_store import MapStore
from ..metrics import METRICS
from ..metrics import randomisation as rnd
from ..metrics import removal
from ..metrics import similarity as sim
from ..methods import approximate
from ..methods import controls as controls_
from ..methods.controls import NULLS

TRUTH, TRIGGER = "object mask", "trigger mask"
CONTROLS = ("random", "smooth_random", "constant")
TRUST_MODEL = "vgg_mini"            # the zoo's BAM and trojan networks share its architecture
CLEAN = f"clean {TRUST_MODEL}"      # the clean network's maps on the trojan images (the control)
SETS = ("benchmark", "patched", "trojan", "bam", "mosaics", "bam pairs")


@dataclass(frozen=True)
class Column:
    """One leaderboard column: a registered metric with fixed parameters on one image set, or a
    derived score (``metric=None``) that declares its own direction."""

    label: str
    metric: str | None
    question: str
    images: str = "benchmark"
    params: dict = field(default_factory=dict)
    needs: dict = field(default_factory=dict)      # metric parameter -> the image set's tensor
    higher: bool | None = None                     # derived scores only
    uses_model: bool = True

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric].higher_is_better if self.metric else bool(self.higher)

    @property
    def reruns_method(self) -> bool:
        """Whether the metric explains new inputs with the method (robustness, random logit)
        instead of scoring a map."""
        return self.metric is not None and "method" in METRICS[self.metric].required

    @property
    def takes_map(self) -> bool:
        """Whether any map can be scored (a mask too), not only a method's own output."""
        return self.metric is not None and not self.reruns_method


MASKS, BOXES = {"masks": "masks"}, {"boxes": "boxes"}
BLUR_SIGMA = removal.BLUR_SIGMA   # px: the book's one blur (chosen by the calibration tables)
INFIDELITY_NOISE = 0.01    # the Gaussian perturbation's standard deviation, chapter 08's
COLUMNS = (
    Column("pointing game", "pointing_game", "localisation", needs=MASKS, uses_model=False),
    Column("mask energy", "mask_energy", "localisation", needs=MASKS, uses_model=False),
    Column("box IoU", "box_iou", "localisation", needs=BOXES, uses_model=False),
    Column("PxAP", "pxap", "localisation", needs=MASKS, uses_model=False),
    Column("top-k IoU", "top_k_iou", "localisation", needs=MASKS, uses_model=False),
    Column("deletion", "deletion", "faithfulness", params={"removal": "dataset_mean"}),
    # the blur of chapters 02, 05 and 09 (sigma 3 px): the registry's default, the authors' kernel
    # scaled to 64 px (sigma 1.43), leaves 95-97 % of fully blurred images correctly classified
    # (xailib.calibration): it removes nothing here
    Column("deletion (blur)", "deletion", "faithfulness", params={"removal": "blur", "blur_sigma": BLUR_SIGMA}),
    Column("insertion", "insertion", "faithfulness", params={"removal": "blur", "blur_sigma": BLUR_SIGMA}),
    Column("Impact Score", "impact", "faithfulness"),
    Column("I_strict", "impact_strict", "faithfulness"),
    # chapter 08's noise: at the registry's 0.1 every map scores alike (7.2-7.5), a degenerate setting;
    # the relative (scale-free) form: BAM's test compares one map under two networks whose outputs
    # change on different scales (the rescaled infidelity is in their squared units)
    Column("infidelity", "infidelity", "faithfulness", params={"noise": INFIDELITY_NOISE, "relative": True}),
    Column("sensitivity-n", "sensitivity_n", "faithfulness"),
    Column("max-sensitivity", "max_sensitivity", "robustness"),
    Column("roughness", "roughness", "complexity", uses_model=False),
    Column("randomisation similarity", None, "randomisation", higher=False),
    Column("Impact Coverage", "impact_coverage", "trust", images="patched", needs={"patch_masks": "patch_masks"},
           uses_model=False),
    Column("trigger mass", "mask_energy", "trust", images="trojan", needs={"masks": "trigger_masks"}, uses_model=False),
    Column("BAM contrast", None, "trust", images="bam", higher=True),
    # the metrics of Quantus and LATEC (issue 34), at their papers' defaults unless a comment says
    # otherwise. Relevance mass accuracy and unweighted attribution localisation are mask energy
    # under other names (the same number): not repeated as columns
    Column("relevance rank accuracy", "relevance_rank_accuracy", "localisation", needs=MASKS, uses_model=False),
    Column("Focus", "focus", "localisation", images="mosaics", needs=MASKS, uses_model=False),
    Column("faithfulness correlation", "faithfulness_correlation", "faithfulness", params={"removal": "zero"}),
    Column("monotonicity correlation", "monotonicity_correlation", "faithfulness"),
    Column("region perturbation (MoRF)", "region_perturbation_morf", "faithfulness"),
    Column("region perturbation (LeRF)", "region_perturbation_lerf", "faithfulness"),
    Column("monotonicity (Arya)", "monotonicity", "faithfulness", params={"removal": "zero"}),
    Column("average sensitivity", "avg_sensitivity", "robustness"),
    Column("local Lipschitz", "local_lipschitz", "robustness"),
    Column("relative input stability", "relative_input_stability", "robustness"),
    Column("relative output stability", "relative_output_stability", "robustness"),
    Column("sparseness", "sparseness", "complexity", uses_model=False),
    Column("complexity (entropy)", "complexity", "complexity", uses_model=False),
    Column("effective complexity", "effective_complexity", "complexity", uses_model=False),
    Column("random logit", "random_logit", "randomisation"),
    Column("recovering rate", "recovering_rate", "trust", images="trojan",
           needs={"masks": "trigger_masks", "true_labels": "true_labels"}),
    Column("input dependence (BAM)", None, "trust", images="bam pairs", higher=True),
    Column("input independence (BAM)", None, "trust", images="bam pairs", higher=True),
)
BY_LABEL = {c.label: c for c in COLUMNS}
STEPPED = ("deletion", "insertion")       # metrics that take the chapter's n_steps


def directions() -> dict:
    """{column label: higher is better}, from the registry."""
    return {c.label: c.higher_is_better for c in COLUMNS}


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------

def _params(col: Column, extra: dict, n_steps: int | None) -> dict:
    p = {**col.params, **{k: extra[v] for k, v in col.needs.items()}}
    if col.metric in STEPPED and n_steps is not None:
        p["n_steps"] = n_steps
    return p


@dataclass
class Scored:
    """The book's score store (:meth:`xailib.map_store.MapStore.scores`) and the seconds each
    (image set, column, map) took at its first computation."""
    store: MapStore
    seconds: dict = field(default_factory=dict)


def score_maps(scored: Scored, key: str, model: str, net, images: torch.Tensor, targets: torch.Tensor, maps: dict,
               extra: dict, *, image_set: str, columns=COLUMNS, n_steps: int | None = None,
               sensitivity_methods=(), method_params: dict | None = None, sensitivity_samples: int = 3,
               seed: int = 0) -> pd.DataFrame:
    """Long rows (model, images, method, column, image, score) of every map of ``maps`` under
    every column scored on ``image_set``; each score read from, or computed into, the score store.
    The columns that re-run a method (:attr:`Column.reruns_method`) score the methods of
    ``sensitivity_methods``, one method under all of them in turn, so that they share its
    explanations of the perturbed copies (:mod:`xailib.metrics.shared`); the seconds of that
    work are counted under the first."""
    n = len(images)
    cols = [c for c in columns if c.images == image_set and c.metric is not None]
    work = [(c, m) for c in cols if not c.reruns_method for m in maps]
    work += [(c, m) for m in maps if m in sensitivity_methods for c in cols if c.reruns_method]
    out = {}
    for col, m in work:
        if col.reruns_method:
            own = METRICS[col.metric].defaults
            p = {"method": m, "method_params": (method_params or {}).get(m, {}), "n_samples": sensitivity_samples,
                 "seed": seed}
            p = {k: v for k, v in p.items() if k in own}
        else:
            p = _params(col, extra, n_steps)
        v, secs = scored.store.scores(net if col.uses_model or col.reruns_method else None,
                                      images, targets, maps[m], col.metric, batch=n, **p)
        scored.seconds[f"{key}/{col.label}/{m}"] = secs * n
        out[col.label, m] = pd.DataFrame({"model": model, "images": image_set, "method": m, "column": col.label,
                                          "image": np.arange(n), "score": v.numpy()})
    rows = [out[c.label, m] for c in cols for m in maps if (c.label, m) in out]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def seconds(scored: Scored, key: str, maps: dict, columns=COLUMNS) -> pd.DataFrame:
    """Seconds each (column, map) of ``key`` took (its first computation)."""
    out = []
    for col in columns:
        for m in maps:
            s = scored.seconds.get(f"{key}/{col.label}/{m}")
            if s:
                out.append({"column": col.label, "method": m, "seconds": s})
    return pd.DataFrame(out)


def randomisation_rows(model: str, maps: dict, random_maps: dict) -> pd.DataFrame:
    """Per (method, image): the Spearman similarity of absolute values between the map of the
    trained network and of the same network with every layer randomised (the sanity checks'
    measure; lower: the map depends on what the network learned)."""
    rows = []
    for m, s in random_maps.items():
        v = sim.similarity(maps[m], s, "spearman_abs")
        rows.append(pd.DataFrame({"model": model, "images": "benchmark", "method": m,
                                  "column": "randomisation similarity", "image": np.arange(len(v)),
                                  "score": np.asarray(v, dtype=float)}))
    return pd.concat(rows, ignore_index=True)


def bam_contrast_rows(maps_object: dict, maps_scene: dict, images) -> pd.DataFrame:
    """BAM's model contrast per (method, image), chapter 08's :func:`xailib.known_truth.bam_rows`."""
    r = known_truth.bam_rows(maps_object, maps_scene, images)
    return pd.DataFrame({"model": TRUST_MODEL, "images": "bam", "method": r.method, "column": "BAM contrast",
                         "image": r.image, "score": r.contrast})


@dataclass
class Run:
    """What :func:`collect` computed: the long per-image table and the seconds."""

    scores: pd.DataFrame
    method_seconds: pd.DataFrame        # model, method, s/image (benchmark maps)
    metric_seconds: pd.DataFrame        # model, column, s/image-map
    approximate: dict                   # (model, method) -> why
    notes: list


def shared_images(pool, predicted: dict, n_images: int) -> torch.Tensor:
    """The indices of the first ``n_images`` images of ``pool`` that every network classifies
    correctly (``predicted``: {name: predicted classes}): the chapter's benchmark images."""
    correct = torch.ones(len(pool), dtype=torch.bool)
    for p in predicted.values():
        correct &= p == pool.labels
    index = torch.nonzero(correct)[:n_images, 0]
    if len(index) < n_images:
        raise ParameterError(f"only {len(index)} test images are classified correctly by every network; "
                             "lower n_images")
    return index


KNOWN_TRUTH_SETS = {"trojan", "bam", "bam pairs", "mosaics"}     # image sets drawn only on the shapes benchmark


def selected(labels=None) -> tuple:
    """The columns named by ``labels`` (None: every one), in the order of :data:`COLUMNS`."""
    if labels is None:
        return COLUMNS
    bad = [c for c in labels if c not in BY_LABEL]
    if bad:
        raise ParameterError(f"unknown leaderboard columns {bad}; known: {list(BY_LABEL)}")
    return tuple(c for c in COLUMNS if c.label in set(labels))


def collect(store, pool, nets: dict, methods, *, n_images: int, n_truth: int, method_params: dict,
            n_steps: int, sensitivity_methods, sensitivity_samples: int, randomisation: dict,
            patch_scale: float, trust_sets: bool, image_size: int, seed: int, progress=None,
            scheduler=None, source: dict | None = None, shard_size: int = 16, columns=None) -> Run:
    """Every map and score of the chapter, read from or computed into the book's map and score
    store (:mod:`xailib.map_store`; an interrupted run resumes), the smoothed maps kept in
    ``store`` (a :class:`~xailib.results.ResultStore`). ``pool`` is the test set; ``nets``
    {name: network}. The maps and scores the store lacks are computed on ``scheduler``'s cluster
    when one is given (else here). ``columns``: the labels of the columns to score (None: all of
    them); an image set no chosen column is scored on is not made.

    With a ``scheduler`` (or ``$XAILIB_SCHEDULER``; :mod:`xailib.shards`) and ``source`` (the
    data set's ``dataset``, ``data_root``, ``annotations`` and the networks' ``weights``, from
    which a worker rebuilds them), the benchmark maps of the trained networks, the bulk of the
    work, are computed as shards of ``shard_size`` images on the cluster; a method whose
    parameters are not plain values (expected gradients' background images) stays here."""
    progress = progress or (lambda it, **_: it)
    cols = selected(columns)
    asked = {c.label for c in cols}
    sets = {c.images for c in cols}
    if not trust_sets and sets <= KNOWN_TRUTH_SETS:
        raise ParameterError(f"the columns {sorted(asked)} are scored only on the known-truth sets (trojan, BAM, "
                             "mosaics), which this data set does not have: add a column scored on its images")
    notes, parts, msec, approx = [], [], [], {}
    predicted = {name: models.predict(net, pool.images).argmax(1) for name, net in nets.items()}   # once per network
    index = shared_images(pool, predicted, n_images)
    imgs = pool.subset(index)
    truth = {TRUTH: imgs.masks.float()} if imgs.masks is not None else {}
    scored = Scored(MapStore(scheduler=scheduler))
    cache = Maps(store, imgs.images, imgs.labels, method_params, maps=scored.store)
    timing = []
    remote = _remote_maps(nets, methods, index.tolist(), method_params, scheduler, source, image_size, seed,
                          shard_size)
    for name, net in nets.items():
        maps = {m: remote[name, m][0] if (name, m) in remote else cache(f"maps/{name}", net, m)
                for m in progress(methods, desc=f"{name} maps")}
        for m in methods:
            took = remote[name, m][1] if (name, m) in remote else cache.seconds(f"maps/{name}", m)
            msec.append({"model": name, "method": m, "s/image": took})
            why = approximate(m, net)
            if why:
                approx[name, m] = why
        if "randomisation similarity" in asked:
            example = imgs.images[:1]
            rnet = Lazy(lambda net=net: rnd.random_network(net, example, **randomisation))
            rmaps = {m: cache(f"maps/{name}/randomised", rnet, m)
                     for m in progress(methods, desc=f"{name} randomised")}
            parts.append(randomisation_rows(name, maps, rmaps))
        extra = {"masks": imgs.masks, "boxes": imgs.boxes}
        parts.append(score_maps(scored, f"{name}/benchmark", name, net, imgs.images, imgs.labels, {**maps, **truth},
                                extra, image_set="benchmark", columns=cols, n_steps=n_steps,
                                sensitivity_methods=sensitivity_methods, method_params=method_params,
                                sensitivity_samples=sensitivity_samples, seed=seed))
        timing.append((name, f"{name}/benchmark", {**maps, **truth}, len(imgs)))
        if "patched" in sets:
            try:
                patch, card = patches.load_patch(name)
            except MissingResourceError as e:          # a network without a committed patch: no Impact Coverage
                notes.append(f"{name}: no Impact Coverage ({e})")
            else:
                parts.append(_patched(store, scored, name, net, pool, predicted[name], patch, card, n_truth,
                                      patch_scale, methods, method_params, seed))
        if trust_sets and "mosaics" in sets:    # the benchmark's mosaics: shapes only, as the other known-truth sets
            parts.append(_mosaics(store, scored, name, net, [m for m in methods if m in sensitivity_methods],
                                  method_params, n_truth, image_size, seed))
    if trust_sets:
        parts += _trust(store, scored, methods, method_params, n_truth, n_steps, image_size, seed, cols)
    parts = [p for p in parts if len(p)]
    if not parts:
        raise MissingResourceError(f"none of the columns {sorted(asked)} could be scored here: " + "; ".join(notes))
    scores = pd.concat(parts, ignore_index=True)
    ms = []
    for name, key, maps, n in timing:
        s = seconds(scored, key, maps)
        if len(s):
            ms.append(s.groupby("column", sort=False).seconds.sum().div(n * len(maps)).rename("s/image-map")
                      .reset_index().assign(model=name))
    return Run(scores, pd.DataFrame(msec), pd.concat(ms, ignore_index=True) if ms else pd.DataFrame(), approx, notes)


def _plain(value) -> bool:
    import json
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False


def _remote_maps(nets, methods, index, method_params, scheduler, source, image_size, seed, shard_size) -> dict:
    """{(network, method): (maps, seconds per image)} computed as shards, or {} without a scheduler."""
    from .. import shards
    where = shards.resolve_scheduler(scheduler)
    if where is None or source is None:
        return {}
    work = {(name, m): shards.shards_for(name, m, index, shard_size, dataset=source["dataset"], split="test",
                                         size=image_size, seed=seed, data_root=source.get("data_root"),
                                         annotations=source.get("annotations"),
                                         weights=(source.get("weights") or {}).get(name),
                                         params=method_params.get(m, {}))
            for name in nets for m in methods if _plain(method_params.get(m, {}))}
    flat = [s for v in work.values() for s in v]
    values = shards.compute(flat, scheduler=where)
    out, i = {}, 0
    for k, v in work.items():
        out[k] = (torch.cat(values[i:i + len(v)]), shards.seconds(v) / len(index))
        i += len(v)
    return out


def _patched(store, scored, name, net, pool, predicted, patch, card, n, scale, methods, method_params, seed):
    target = card["target"]
    ok = (predicted == pool.labels) & (pool.labels != target)
    idx = ok.nonzero()[:, 0][:4 * n]
    xp, pmasks, pred, _ = patches.attack(net, pool.images[idx], patch, scale, seed=seed,
                                         shape=card["config"]["shape"], scale_mode=card["config"]["scale_mode"])
    hit = torch.nonzero(pred == target)[:n, 0]
    if len(hit) < n:
        raise ParameterError(f"{name}: only {len(hit)} successful patch attacks at scale {scale}; lower n_truth")
    x, pm = xp[hit], pmasks[hit]
    t = torch.full((n,), target, dtype=torch.long)
    pc = Maps(store, x, t, method_params, maps=scored.store)
    maps = {m: pc(f"maps/{name}/patched", net, m) for m in methods}
    return score_maps(scored, f"{name}/patched", name, net, x, t, maps, {"patch_masks": pm}, image_set="patched")


def _mosaics(store, scored, name, net, methods, method_params, n, image_size, seed):
    """Focus's rows: ``n`` mosaics the network labels by their target (:func:`xailib.known_truth.mosaic_images`),
    explained by ``methods`` through the same network taking mosaics; expected gradients' reference
    images tiled 2 x 2 to the mosaics' size."""
    mimgs, mnet = known_truth.mosaic_images(net, n, size=image_size, seed=seed)
    mc = Maps(store, mimgs.images, mimgs.labels, mosaic_params(method_params), maps=scored.store)
    maps = {m: mc(f"maps/{name}/mosaics", mnet, m) for m in methods}
    return score_maps(scored, f"{name}/mosaics", name, mnet, mimgs.images, mimgs.labels, maps, {"masks": mimgs.masks},
                      image_set="mosaics")


def mosaic_params(method_params: dict) -> dict:
    """``method_params`` for the mosaics: expected gradients' reference images tiled 2 x 2 to
    the mosaics' size (the other methods' parameters scale with the image by themselves)."""
    params = dict(method_params)
    eg = params.get("expected_gradients", {})
    if eg.get("background") is not None:
        params["expected_gradients"] = {**eg, "background": torch.as_tensor(eg["background"]).repeat(1, 1, 2, 2)}
    return params


def input_dependence_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """BAM's input dependence and independence per (method, image), from
    :func:`xailib.known_truth.input_dependence_rows`, as two leaderboard columns (1 when the
    image passes, 0 when not; their means are Yang and Kim's rates)."""
    out = [pd.DataFrame({"model": TRUST_MODEL, "images": "bam pairs", "method": rows.method, "column": label,
                         "image": rows.image, "score": rows[flag].astype(float)})
           for label, flag in (("input dependence (BAM)", "dependent"), ("input independence (BAM)", "independent"))]
    return pd.concat(out, ignore_index=True)


def _trust(store, scored, methods, method_params, n, n_steps, image_size, seed, columns=COLUMNS):
    """The rows of the known-truth sets (trojan, BAM, BAM pairs) under ``columns``: the methods'
    maps under the columns scored on each set, and the known truths under the columns that call
    the model (the validity tests)."""
    out = []
    asked = {c.label for c in columns}
    model_cols = [c for c in columns if c.uses_model and c.takes_map]
    troj = models.load_model(f"{TRUST_MODEL}_trojan_fixed")
    timgs, trig = known_truth.trojan_images(troj, "fixed", n, size=image_size, seed=seed)
    tt = torch.full((n,), variants.TROJAN_TARGET, dtype=torch.long)
    tc = Maps(store, timgs.images, tt, method_params, maps=scored.store)
    if any(c.images == "trojan" for c in columns):
        maps = {m: tc("maps/trojan", troj, m) for m in methods}
        maps[TRIGGER], maps[TRUTH] = trig.float(), timgs.masks.float()
        out.append(score_maps(scored, "trojan", TRUST_MODEL, troj, timgs.images, tt, maps,
                              {"trigger_masks": trig, "true_labels": timgs.labels}, image_set="trojan",
                              columns=columns))
    if "trigger mass" in asked:
        # the control: the clean network explaining the same images for the same class (chapter 08's)
        clean = models.load_model(TRUST_MODEL)
        cmaps = {m: tc("maps/trojan/clean", clean, m) for m in methods}
        out.append(score_maps(scored, "trojan/clean", CLEAN, clean, timgs.images, tt, cmaps, {"trigger_masks": trig},
                              image_set="trojan", columns=[BY_LABEL["trigger mass"]]))
    # known truth 2: the trigger's and the object's masks under the metrics that call the model
    out.append(score_maps(scored, "trojan/truth", TRUST_MODEL, troj, timgs.images, tt,
                          {TRIGGER: trig.float(), TRUTH: timgs.masks.float()}, {"masks": timgs.masks, "boxes": timgs.boxes},
                          image_set="benchmark", columns=model_cols, n_steps=n_steps).assign(images="trojan"))
    obj_net = models.load_model(f"{TRUST_MODEL}_bam_object")
    scene_net = models.load_model(f"{TRUST_MODEL}_bam_scene")
    bimgs, obj, scene = known_truth.bam_images(obj_net, scene_net, n, size=image_size, seed=seed)
    if "BAM contrast" in asked:
        mo = Maps(store, bimgs.images, obj, method_params, maps=scored.store)
        ms = Maps(store, bimgs.images, scene, method_params, maps=scored.store)
        maps_o = {m: mo("maps/bam/object", obj_net, m) for m in methods}
        maps_s = {m: ms("maps/bam/scene", scene_net, m) for m in methods}
        out.append(bam_contrast_rows(maps_o, maps_s, bimgs))
    if any(c.images == "bam pairs" for c in columns):
        # BAM's input dependence and independence: the scene network explaining images with their
        # object and the same images drawn again without it
        pimgs, without = known_truth.bam_pairs(scene_net, n, size=image_size, seed=seed)
        pt = pimgs.info["scene_labels"]
        pw = Maps(store, pimgs.images, pt, method_params, maps=scored.store)
        pwo = Maps(store, without, pt, method_params, maps=scored.store)
        rows = known_truth.input_dependence_rows({m: pw("maps/bam/pairs", scene_net, m) for m in methods},
                                                 {m: pwo("maps/bam/pairs/without", scene_net, m) for m in methods},
                                                 pimgs)
        rows = input_dependence_scores(rows)
        out.append(rows[rows.column.isin(asked)])
    # known truth 3: the object's mask under the object and the scene network
    for tag, net, t in (("object", obj_net, obj), ("scene", scene_net, scene)):
        out.append(score_maps(scored, f"bam/{tag}", f"bam {tag}", net, bimgs.images, t, {TRUTH: bimgs.masks.float()},
                              {"masks": bimgs.masks, "boxes": bimgs.boxes}, image_set="benchmark", columns=model_cols,
                              n_steps=n_steps).assign(images="bam"))
    return out


# --------------------------------------------------------------------------------------------
# Tables (all rebuilt from the long per-image table)
# --------------------------------------------------------------------------------------------

def _wide(scores: pd.DataFrame, model: str, column: str, images: str, methods=None) -> pd.DataFrame:
    g = scores[(scores.model == model) & (scores.column == column) & (scores.images == images)]
    w = g.pivot(index="image", columns="method", values="score")
    return w if methods is None else w[[m for m in methods if m in w.columns]]


def ranked(scores: pd.DataFrame) -> pd.DataFrame:
    """The rows that the leaderboard ranks: the methods' own maps on their column's image set
    (not the masks, and not the known-truth checks of other networks)."""
    own = scores.images == scores.column.map({c.label: c.images for c in COLUMNS})
    return scores[own & ~scores.method.isin([TRUTH, TRIGGER]) & scores.model.isin(_models(scores))]


def _models(scores: pd.DataFrame) -> list:
    """The networks the leaderboard ranks (not BAM's pair, not the clean network's control rows)."""
    return [m for m in dict.fromkeys(scores.model) if not str(m).startswith(("bam ", "clean "))]


def summary(scores: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, approximate: dict | None = None) -> pd.DataFrame:
    """Per (model, column, method): the mean with its 95 % interval (bootstrap over images, or
    the exact interval of a 0 / 1 score: :func:`xailib.verdicts.paired`) and the rank (1 = best,
    the registry's direction) with its bootstrap interval; ``approximate`` rows are marked."""
    out = []
    r = ranked(scores)
    r = r.assign(order=r.column.map({c.label: i for i, c in enumerate(COLUMNS)})).sort_values("order", kind="stable")
    for (model, column), g in r.groupby(["model", "column"], sort=False):
        wide = g.pivot(index="image", columns="method", values="score").dropna(axis=1)
        if wide.shape[1] < 2:
            continue
        ranks = verdicts.bootstrap_ranks(wide, BY_LABEL[column].higher_is_better, n_boot=n_boot, seed=seed)
        for m in wide.columns:
            v = wide[m].to_numpy()
            c = verdicts.paired(v, n_boot=n_boot, seed=seed, n_perm=1, p_value=False)     # mean and interval only
            out.append({"model": model, "column": column, "question": BY_LABEL[column].question, "method": m,
                        "mean": c.mean, "low": c.low, "high": c.high, "n": len(v),
                        "rank": ranks.at[m, "rank"], "rank low": ranks.at[m, "low"], "rank high": ranks.at[m, "high"],
                        "of": wide.shape[1], "approximate": (approximate or {}).get((model, m), "")})
    return pd.DataFrame(out)


def leaderboard_table(summ: pd.DataFrame, model: str, flagged=()) -> pd.DataFrame:
    """Methods x columns for one network: 'mean [low, high] · rank (low-high)'; flagged columns
    carry a mark, approximate rows '(approximate)'."""
    g = summ[summ.model == model].copy()
    g["cell"] = [f"{r['mean']:.3g} [{r['low']:.3g}, {r['high']:.3g}] · {r['rank']:g} ({r['rank low']:g}–{r['rank high']:g})"
                 for _, r in g.iterrows()]
    g["method"] = [m + (" (approximate)" if a else "") for m, a in zip(g.method, g.approximate)]
    t = g.pivot(index="method", columns="column", values="cell")
    cols = [c.label for c in COLUMNS if c.label in t.columns]
    t = t[cols].fillna("—")
    t.columns = [c + (" ⚑" if c in flagged else "") + (" ↑" if BY_LABEL[c].higher_is_better else " ↓") for c in cols]
    order = g.groupby("method")["rank"].mean().sort_values().index
    return t.reindex(order)


def method_means(summ: pd.DataFrame, model: str, columns=None) -> pd.DataFrame:
    """Methods x columns of mean scores, oriented so that larger is better."""
    g = summ[summ.model == model]
    w = g.pivot(index="method", columns="column", values="mean")
    cols = [c.label for c in COLUMNS if c.label in w.columns and (columns is None or c.label in columns)]
    return agreement.orient(w[cols], directions())


def agreement_tables(summ: pd.DataFrame, method: str = "spearman") -> dict:
    """Per model: the rank correlation of every pair of columns over the methods, and Kendall's W
    over the columns that score every method."""
    out = {}
    for model in dict.fromkeys(summ.model):
        w = method_means(summ, model)
        full = w.dropna(axis=1)
        out[model] = {"matrix": agreement.agreement_matrix(w, method),
                      "w": agreement.kendall_w(full.T.to_numpy()), "w columns": list(full.columns),
                      "w methods": len(full)}
    return out


def image_agreement(scores: pd.DataFrame, model: str, method: str = "spearman") -> pd.DataFrame:
    """The rank correlation over methods of every pair of benchmark columns, per image, averaged
    over the images (the columns with per-image scores for every method)."""
    r = ranked(scores)
    cols = [c.label for c in COLUMNS if c.images == "benchmark"]
    wide = {c: agreement.orient(_wide(r, model, c, "benchmark"), {m: BY_LABEL[c].higher_is_better
                                                                  for m in _wide(r, model, c, "benchmark").columns})
            for c in cols}
    wide = {c: w for c, w in wide.items() if w.shape[1] > 2 and not w.isna().any().any()}
    keys = list(wide)
    out = pd.DataFrame(np.nan, index=keys, columns=keys)
    for i, a in enumerate(keys):          # symmetric: each pair once
        for b in keys[i:]:
            out.loc[a, b] = out.loc[b, a] = agreement.per_image_agreement(wide[a], wide[b], method).mean()
    return out


def controls(summ: pd.DataFrame) -> pd.DataFrame:
    """Where the random, the smooth random and the constant map rank under each column: a column
    that puts a control in the better half of the methods rewards something other than the explanation."""
    out = []
    for (model, column), g in summ.groupby(["model", "column"], sort=False):
        row = {"model": model, "column": column}
        for c in CONTROLS:
            r = g[g.method == c]
            if len(r):
                r = r.iloc[0]
                row[f"{c} rank"] = f"{r['rank']:g} of {r['of']} ({r['rank low']:g}–{r['rank high']:g})"
                row[f"rewards {c}"] = bool(r["rank"] <= r["of"] / 2)
        out.append(row)
    return pd.DataFrame(out)


def reliability(scores: pd.DataFrame, summ: pd.DataFrame, *, n_splits: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per (model, column), over the explanation methods only (the null maps and the known-truth
    masks left out: their fixed places would make any metric look reliable): Tomsett et al.'s
    inter-rater reliability (Krippendorff's alpha, each image a rater ranking the methods), the
    split-half agreement of the method ranking (mean Spearman over random halves of the images,
    with the spread of the splits) and its Spearman-Brown step-up to all the images, and the mean
    width of the rank intervals (of every row of the leaderboard)."""
    out = []
    r = ranked(scores)
    r = r[~r.method.isin(NULLS)]
    r = r.assign(order=r.column.map({c.label: i for i, c in enumerate(COLUMNS)})).sort_values("order", kind="stable")
    for (model, column), g in r.groupby(["model", "column"], sort=False):
        wide = g.pivot(index="image", columns="method", values="score").dropna(axis=1)
        hib = BY_LABEL[column].higher_is_better
        mean, lo, hi = agreement.split_half(wide, hib, n_splits=n_splits, seed=seed)
        s = summ[(summ.model == model) & (summ.column == column)]
        out.append({"model": model, "column": column,
                    "inter-rater alpha": agreement.inter_rater_alpha(wide, hib) if wide.size else np.nan,
                    "split-half rho": mean, "low": lo, "high": hi,
                    "all images (Spearman-Brown)": agreement.spearman_brown(mean),
                    "mean rank-interval width": float((s["rank high"] - s["rank low"]).mean()) if len(s) else np.nan,
                    "methods": wide.shape[1], "images": len(wide)})
    return pd.DataFrame(out).sort_values("model", key=lambda m: m.map({k: i for i, k in enumerate(_models(scores))}),
                                         kind="stable").reset_index(drop=True)


def _oriented(v: np.ndarray, column: str) -> np.ndarray:
    return v if BY_LABEL[column].higher_is_better else -v


OBJECT_TEST = "object mask beats the strongest null"


def validity_claims(scores: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> list:
    """The known-truth tests of the module's doc, one claim per (column, network, test)."""
    out = []
    bench = scores[scores.images == "benchmark"]
    for (model, column), g in bench[bench.model.isin(_models(scores))].groupby(["model", "column"], sort=False):
        w = g.pivot(index="image", columns="method", values="score")
        null = strongest_null(w, column)
        if TRUTH in w and null is not None and not w[TRUTH].isna().any():
            out.append(verdicts.Claim(
                f"{column}: the object mask beats the strongest null", model,
                verdicts.paired(_oriented(w[TRUTH].to_numpy(), column), _oriented(w[null].to_numpy(), column),
                                n_boot=n_boot, seed=seed),
                effect=0.05, paper="known truth: the object's pixels",
                setting=f"benchmark images, against the {null.replace('_', ' ')} map", group=OBJECT_TEST))
    for images, a, b, test, ma, mb in (("trojan", TRIGGER, TRUTH, "the trigger beats the object on a trojaned network",
                                        TRUST_MODEL, TRUST_MODEL),
                                       ("bam", TRUTH, TRUTH, "the object matters more to BAM's object network",
                                        "bam object", "bam scene")):
        sub = scores[(scores.images == images) & scores.method.isin([a, b])]
        for column in dict.fromkeys(sub.column):
            if column not in BY_LABEL or not BY_LABEL[column].uses_model:
                continue
            ga = sub[(sub.model == ma) & (sub.method == a) & (sub.column == column)].sort_values("image")
            gb = sub[(sub.model == mb) & (sub.method == b) & (sub.column == column)].sort_values("image")
            if not len(ga) or len(ga) != len(gb):
                continue
            out.append(verdicts.Claim(
                f"{column}: {test}", TRUST_MODEL,
                verdicts.paired(_oriented(ga.score.to_numpy(), column), _oriented(gb.score.to_numpy(), column),
                                n_boot=n_boot, seed=seed),
                effect=0.05, paper="known truth: " + ("the trojan's trigger" if images == "trojan" else "BAM"),
                setting=f"{images} images", group=test))
    return out


TESTS = {OBJECT_TEST: "object mask > strongest null",
         "the trigger beats the object on a trojaned network": "trigger > object (trojan)",
         "the object matters more to BAM's object network": "object net > scene net (BAM)"}


def removals() -> dict:
    """The removal operator of each column that removes pixels with an explicit one ({label: removal})."""
    return {c.label: c.params["removal"] for c in COLUMNS if "removal" in c.params}


def removes_nothing(calibration: pd.DataFrame | None, image_size: int) -> dict:
    """{column label: "97 % / 95 %"} for each column whose removal leaves the decision mostly
    intact on some network (:func:`xailib.calibration.full_removal`'s table): the accuracy on
    fully removed images, per network. Such a column is degenerate: no verdict rests on it."""
    from ..calibration import describe
    if calibration is None or not len(calibration):
        return {}
    out = {}
    for label, r in removals().items():
        rows = calibration[calibration.removal == describe(r, image_size, BY_LABEL[label].params.get("blur_sigma"))]
        if len(rows) and rows.degenerate.any():
            out[label] = " / ".join(f"{100 * a:.0f} %" for a in rows["accuracy, all removed"])
    return out


def scores_alike(scores: pd.DataFrame) -> dict:
    """{column label: the value} for each column under which every map of every ranked network
    (the methods, the nulls and the known truths) scores the same on the column's own image set:
    such a column tells nothing apart here, whatever its definition (Arya's monotonicity at 64 px,
    where the target's probability falls somewhere along every curve)."""
    out = {}
    for column, g in scores[scores.model.isin(_models(scores))].groupby("column", sort=False):
        if column not in BY_LABEL:
            continue
        v = g[g.images == BY_LABEL[column].images].score.dropna().unique()
        if len(v) == 1 and g.method.nunique() > 1:
            out[column] = f"{v[0]:g}"
    return out


def validity_table(claims: pd.DataFrame, ctrl: pd.DataFrame, degenerate: dict | None = None,
                   alike: dict | None = None, columns=COLUMNS) -> pd.DataFrame:
    """Columns x tests: the verdict of each known-truth test (one per network where it was run,
    in the order of the networks, joined by " / "), which control map ranks in the better half,
    whether fully removed images are still classified correctly (``degenerate``: column -> the
    accuracies, from :func:`removes_nothing`), whether every map scores alike (``alike``, from
    :func:`scores_alike`), and the resulting flag; one row per column of ``columns`` (those scored)."""
    degenerate, alike = degenerate or {}, alike or {}
    if not {"group", "claim", "verdict", "model"} <= set(claims.columns):     # no test could run
        claims = pd.DataFrame(columns=["claim", "model", "group", "verdict"], dtype=str)
    rows = {}
    for c in columns:
        row = {"question": c.question, "direction": "higher" if c.higher_is_better else "lower"}
        for group, label in TESTS.items():
            sub = claims[(claims.group == group) & claims.claim.str.startswith(c.label + ":")]
            if len(sub):
                row[label] = " / ".join(sub.verdict)
            elif group != OBJECT_TEST and not c.uses_model and c.takes_map:
                row[label] = "ignores the model"
            else:
                row[label] = "n/a"
        cs = ctrl[ctrl.column == c.label]
        rewards = sorted({k for k in CONTROLS for v in cs.get(f"rewards {k}", []) if pd.notna(v) and bool(v)})
        row["rewards a control"] = ", ".join(rewards) or "no"
        row["all removed, still correct"] = (degenerate[c.label] + " (removes nothing)" if c.label in degenerate
                                             else "—" if c.label not in removals() else "no")
        row["every map alike"] = f"every map scores {alike[c.label]}" if c.label in alike else "no"
        failed = claims[claims.claim.str.startswith(c.label + ":") & (claims.verdict == verdicts.FAILS)]
        row["flag"] = bool(len(failed) or rewards or c.label in degenerate or c.label in alike)
        row["standing"] = standing(c, claims, row["flag"])
        rows[c.label] = row
    return pd.DataFrame(rows).T.rename_axis("column")


TRUSTED, UNTESTED = "trusted", "untested"


def evidence_tests(column: Column) -> tuple:
    """The known-truth tests that are evidence for ``column`` (groups of :data:`TESTS`): the three
    for a metric that calls the model; none for a score defined against a known truth itself (the
    localisation scores against the object's mask, the trust scores against the trigger, the patch
    or BAM's pair: the object mask "beating" a null under them is their definition, a circular
    test), nor for one that scores no map the truth could be (max-sensitivity, the randomisation
    similarity) or that does not ask where the evidence is (roughness)."""
    if column.metric is None or not column.takes_map or not column.uses_model or column.question == "trust":
        return ()
    return tuple(TESTS)


def standing(column: Column, claims: pd.DataFrame, flagged: bool) -> str:
    """What the validity table says of a column (``claims`` as :func:`validity_table` normalises
    them): ``flagged``; ``trusted`` when at least one known-truth
    test that is evidence for it (:func:`evidence_tests`) holds on some network and none does not hold;
    ``not resolved`` when such tests ran and none held yet; ``untested`` (with the reason) when no
    test is evidence for it. Not refuted is never read as trusted."""
    if flagged:
        return "flagged"
    tests = evidence_tests(column)
    if not tests:
        why = {"localisation": "defined by the known truth it would be tested on (circular)",
               "trust": "defined by the known truth it would be tested on (circular)",
               "complexity": "asks nothing a known truth answers"}.get(
            column.question, "scores a method's own output, which no known truth gives")
        return f"{UNTESTED}: {why}"
    sub = claims[claims.group.isin(tests) & claims.claim.str.startswith(column.label + ":")]
    held = sub[sub.verdict == verdicts.HOLDS]
    # networks where the object mask does not even lead the strongest null on its mean: the
    # column's claims there get no verdict (question_claims), whatever holds elsewhere
    obj = sub[sub.group == OBJECT_TEST]
    lost = [m for m, d in zip(obj.model, obj["difference [95 % CI]"]) if float(str(d).split(" [")[0]) <= 0] \
        if "difference [95 % CI]" in obj else []
    caveat = (f"; no verdict on {', '.join(lost)}, where the object mask does not beat the strongest null"
              if lost else "")
    if len(held):
        return f"{TRUSTED}: " + ", ".join(TESTS[g] + f" ({m})" for g, m in zip(held.group, held.model)) + caveat
    return (verdicts.OPEN + caveat) if len(sub) else f"{UNTESTED}: no test ran"


QUESTIONS = {
    "localises the object": ("mask energy", "pointing game"),
    "is faithful to the model": ("deletion (blur)", "insertion"),
    "passes the randomisation check": ("randomisation similarity",),
    "finds a trojan's trigger": ("trigger mass",),
}


def unusable(validity: pd.DataFrame) -> list:
    """The columns no verdict may rest on: a known-truth test does not hold, the removal leaves
    fully removed images mostly classified correctly, every map scores alike, or the random map ranks in the better half (a column that rewards only the constant map stays usable for claims
    against the random map, and the validity table says what it rewards)."""
    out = []
    for c, r in validity.iterrows():
        failed = any(isinstance(r[k], str) and verdicts.FAILS in r[k] for k in TESTS.values() if k in r)
        removes_nothing_here = "removes nothing" in str(r.get("all removed, still correct", ""))
        alike = str(r.get("every map alike", "no")) != "no"
        if failed or removes_nothing_here or alike or "random" in str(r.get("rewards a control", "")).split(", "):
            out.append(c)
    return out


def strongest_null(w: pd.DataFrame, column: str) -> str | None:
    """The null map (:data:`xailib.methods.controls.NULLS`) with the best mean score under ``column``
    among the columns of ``w`` (images x methods), in the column's direction; None when none was scored."""
    means = {n: _oriented(w[n].to_numpy(dtype=float), column).mean() for n in NULLS
             if n in w and not w[n].isna().any()}
    return controls_.strongest_null(means, higher_is_better=True)


def _reference_loses(scores: pd.DataFrame, model: str, column: str, null: str | None) -> str:
    """Why no verdict may rest on ``column`` for ``model``: the object mask does not beat the
    strongest null there on its mean (a benchmark column whose object mask was scored); else ""."""
    if null is None or BY_LABEL[column].images != "benchmark":
        return ""
    w = _wide(scores, model, column, "benchmark")
    if TRUTH not in w or null not in w or w[TRUTH].isna().any():
        return ""
    lead, why = verdicts.reference_margin(_oriented(w[TRUTH].to_numpy(dtype=float), column),
                                          _oriented(w[null].to_numpy(dtype=float), column),
                                          names=("the object mask", f"the {null.replace('_', ' ')} map"))
    return "" if lead is not None else (f"{why.replace(' here', '')} under {column} on {model} (oriented so that higher "
                                        "is better): the column measures something else than the explanation there")


def question_claims(scores: pd.DataFrame, *, threshold: float = sim.THRESHOLD, n_boot: int = 1000,
                    seed: int = 0, skip=()) -> list:
    """Per question of :data:`QUESTIONS`, method and network: the method beats the *strongest*
    null map under each of the question's columns (paired over images; the null, named in the
    claim's setting, is whichever of the random map, the constant map and the edge detector scores
    best there, so beating i.i.d. noise alone is not enough), or, for the randomisation check, its
    similarity lies below ``threshold`` (the sanity checks' rule). A trigger finder must also put
    more mass on the trigger under the trojaned network than under the clean one on the same
    images (:data:`CLEAN`'s rows): an edge detector finds a high-contrast trigger on any network.
    The nulls are not judged as methods. Columns in ``skip`` (:func:`unusable`) are left out. On a
    network where the object mask does not beat that null under a benchmark column (its mean, the
    known-truth test's own numbers), the column measures something else than the explanation there:
    its claims on that network get no verdict, and their rule says why."""
    out = []
    r = ranked(scores)
    for q, cols in QUESTIONS.items():
        for column in [c for c in cols if c not in skip]:
            for model in _models(r):
                w = _wide(r, model, column, BY_LABEL[column].images)
                if w.empty:
                    continue
                null = strongest_null(w, column)
                dead = _reference_loses(scores, model, column, null)
                for m in w.columns:
                    if m in NULLS or w[m].isna().any():
                        continue
                    v = w[m].to_numpy()
                    if column == "randomisation similarity":
                        c, kind = verdicts.paired(v, threshold, n_boot=n_boot, seed=seed, outcomes=False), "below"
                        setting = f"{column} below {threshold:g}"
                    elif null is not None:
                        c = verdicts.paired(_oriented(v, column), _oriented(w[null].to_numpy(), column),
                                            n_boot=n_boot, seed=seed)
                        kind, setting = "better", f"{column} against the {null} map"
                    else:
                        continue
                    out.append(verdicts.Claim(f"{m}: {column}", model, c, kind=kind, effect=0.05, paper=q,
                                              setting=setting, group=q, degenerate=dead))
                    if column == "trigger mass":
                        wc = _wide(scores, CLEAN, column, BY_LABEL[column].images)
                        if m in wc and len(wc[m]) == len(v) and not wc[m].isna().any():
                            out.append(verdicts.Claim(
                                f"{m}: {column}, trojaned over clean network", model,
                                verdicts.paired(v, wc[m].to_numpy(), n_boot=n_boot, seed=seed), kind="better",
                                effect=0.05, paper=q, setting=f"{column}, the trojaned network's minus the clean "
                                                             "network's on the same images", group=q))
    return out


NOT_SCORED = " (not scored)"      # question_table's mark on a question none of whose columns was scored


def question_table(claims: pd.DataFrame, approximate: dict | None = None, skipped=(), scored=None) -> pd.DataFrame:
    """Per question and network: the methods whose every claim for the question holds, and how
    many methods failed or were not resolved. A question whose every column is ``skipped``
    (:func:`unusable`) or not among the ``scored`` columns (None: all were) gets one row that
    says so: it is not answered here."""
    out = []
    for q, cols in QUESTIONS.items():
        present = [c for c in cols if scored is None or c in scored]
        if not present:
            out.append({"question": q, "model": "—", "methods that hold up": "not asked: no column of it was scored",
                        "hold up": 0, "fail": 0, "not resolved": 0, "no verdict": 0, "of": 0,
                        "columns": " and ".join(cols) + NOT_SCORED})
        elif all(c in skipped for c in present):
            out.append({"question": q, "model": "—", "methods that hold up": "not answered: no usable column",
                        "hold up": 0, "fail": 0, "not resolved": 0, "no verdict": 0, "of": 0,
                        "columns": " and ".join(present) + " (flagged)"})
    claims = claims.assign(method=claims.claim.str.split(":").str[0])
    for (q, model), g in claims.groupby(["group", "model"], sort=False):
        judged = g[g.verdict != verdicts.UNJUDGED]         # a claim on a degenerate setting answers nothing
        per = judged.groupby("method").verdict.agg(list)
        hold = [m + (" (approximate)" if (approximate or {}).get((model, m)) else "")
                for m, v in per.items() if all(x == verdicts.HOLDS for x in v)]
        fail = [m for m, v in per.items() if any(x == verdicts.FAILS for x in v)]
        out.append({"question": q, "model": model,
                    "methods that hold up": (", ".join(hold) or "none") if len(per) else
                    "not answered on this network: no verdict (the claims' rule says why)",
                    "hold up": len(hold), "fail": len(fail), "not resolved": len(per) - len(hold) - len(fail),
                    "no verdict": g.method.nunique() - len(per), "of": g.method.nunique(),
                    "columns": " and ".join(dict.fromkeys(g.setting))})
    return pd.DataFrame(out)


def cost_table(method_seconds: pd.DataFrame, summ: pd.DataFrame, valid_columns) -> pd.DataFrame:
    """Per (model, method): seconds per image for the map and the mean rank over the columns
    that are not flagged (lower is better)."""
    q = (summ[summ.column.isin(valid_columns)].groupby(["model", "method"]).agg(
        **{"mean rank": ("rank", "mean"), "columns": ("rank", "size")}).reset_index())
    return method_seconds.merge(q, on=["model", "method"], how="inner")


def rebuild(scores: pd.DataFrame | str | Path, *, method_seconds=None, approximate: dict | None = None,
            n_boot: int = 1000, seed: int = 0, calibration: pd.DataFrame | None = None,
            image_size: int = 64) -> dict:
    """Every table of the chapter from the long per-image table (a frame or its CSV path), so a
    reader can re-rank the committed scores with other weights: summary, controls, validity
    (claims and table), reliability, agreement, questions (claims and table), cost.
    ``calibration``: :func:`xailib.calibration.full_removal`'s table for the networks (at
    ``image_size``), which flags the columns whose removal removes nothing."""
    if not isinstance(scores, pd.DataFrame):
        scores = pd.read_csv(scores)
    need = {"model", "images", "method", "column", "image", "score"}
    if need - set(scores.columns):
        raise ParameterError(f"the per-image table needs the columns {sorted(need)}; "
                             f"missing {sorted(need - set(scores.columns))}")
    unknown = set(scores.column) - set(BY_LABEL)
    if unknown:
        raise ParameterError(f"unknown leaderboard columns {sorted(unknown)}; known: {sorted(BY_LABEL)}")
    summ = summary(scores, n_boot=n_boot, seed=seed, approximate=approximate)
    ctrl = controls(summ)
    vclaims = verdicts.claims_table(validity_claims(scores, n_boot=n_boot, seed=seed))
    valid = validity_table(vclaims, ctrl, removes_nothing(calibration, image_size), scores_alike(scores),
                           columns=[c for c in COLUMNS if c.label in set(scores.column)])
    skip = unusable(valid)
    qclaims = verdicts.claims_table(question_claims(scores, n_boot=n_boot, seed=seed, skip=skip))
    out = {"summary": summ, "controls": ctrl, "validity claims": vclaims, "validity": valid,
           "reliability": reliability(scores, summ, seed=seed), "agreement": agreement_tables(summ),
           "question claims": qclaims, "questions": question_table(qclaims, approximate, skip, set(scores.column))}
    if method_seconds is not None:
        if not isinstance(method_seconds, pd.DataFrame):
            method_seconds = pd.read_csv(method_seconds)
        out["cost"] = cost_table(method_seconds, summ, [c for c, f in valid.flag.items() if not f])
    return out


def findings(tables: dict) -> str:
    """Markdown generated from the tables: which columns pass every known-truth test, which are
    flagged and why, the metrics' concordance, and the questions' answers."""
    v = tables["validity"]
    ok = [c for c, f in v.flag.items() if not f]
    bad = [c for c, f in v.flag.items() if f]
    lines = [f"- **{len(ok)} of {len(v)} columns are not flagged** (no known-truth test fails under them, no "
             f"control ranks in their better half, and the maps do not all score alike): {', '.join(ok) or 'none'}."]
    st = v["standing"] if "standing" in v else pd.Series(dtype=str)
    trusted = [c for c, x in st.items() if str(x).startswith(TRUSTED)]
    open_ = [c for c, x in st.items() if str(x).startswith(verdicts.OPEN)]
    untested = [c for c, x in st.items() if str(x).startswith(UNTESTED)]
    if len(st):
        lines.append(f"- **Trusted ({len(trusted)})**, a known-truth test that is evidence for the column holds and "
                     f"nothing flags it: {', '.join(trusted) or 'none'}. **Not resolved ({len(open_)})**, such tests "
                     f"ran and none held yet: {', '.join(open_) or 'none'}. **Untested ({len(untested)})**, no "
                     f"test here is evidence for them (passing is not the same as being trusted): "
                     f"{', '.join(untested) or 'none'}.")
    if bad:
        why = []
        for c in bad:
            r = v.loc[c]
            fails = [k for k in v.columns if isinstance(r[k], str) and verdicts.FAILS in r[k]]
            parts = [f"{k} does not hold" for k in fails]
            if r["rewards a control"] != "no":
                parts.append(f"rewards {r['rewards a control']}")
            if "removes nothing" in str(r.get("all removed, still correct", "")):
                parts.append(f"fully removed images still classified correctly: {r['all removed, still correct']}")
            if str(r.get("every map alike", "no")) != "no":
                parts.append(r["every map alike"] + ", the known truths included")
            why.append(f"{c} ({'; '.join(parts)})")
        lines.append(f"- **Flagged ({len(bad)})**: " + "; ".join(why) + ".")
    for model, a in tables["agreement"].items():
        m = a["matrix"].to_numpy(dtype=float)
        off = m[~np.eye(len(m), dtype=bool)]
        off = off[np.isfinite(off)]
        if len(off):
            lines.append(f"- **{model}**: Kendall's W over the {len(a['w columns'])} columns that score all "
                         f"{a['w methods']} methods is {a['w']:.2f}; the pairwise rank correlations range from "
                         f"{off.min():+.2f} to {off.max():+.2f} (median {np.median(off):+.2f}).")
    skipped = unusable(v)
    left = [c for q in QUESTIONS.values() for c in q if c in skipped]
    if left:
        lines.append(f"- **Left out of the verdicts below**, because a known-truth test does not hold, their removal "
                     f"removes nothing, every map scores alike under them, or the random map ranks in their better "
                     f"half: {', '.join(dict.fromkeys(left))}.")
    for _, r in tables["questions"].iterrows():
        if r["of"] and r["no verdict"] == r["of"]:
            lines.append(f"- **{r['question']}** ({r['model']}): not answered on this network; under its columns "
                         f"({r['columns']}) the object mask does not beat the strongest null, so no verdict rests on them.")
            continue
        if r["of"] == 0 and str(r["columns"]).endswith(NOT_SCORED):
            lines.append(f"- **{r['question']}**: not asked in this run; none of its columns "
                         f"({r['columns'].removesuffix(NOT_SCORED)}) was scored.")
            continue
        if r["of"] == 0:
            lines.append(f"- **{r['question']}**: not answered here; every column that would answer it "
                         f"({r['columns']}) is flagged.")
            continue
        how = r["columns"]
        cols = [c for c in QUESTIONS.get(r["question"], ()) if c in st.index and c not in skipped]
        own = [c for c in cols if "circular" in str(st[c])]
        shaky = [f"{c}: {str(st[c]).split(':')[0]}" for c in cols
                 if c not in own and not str(st[c]).startswith(TRUSTED)]
        lines.append(f"- **{r['question']}** ({r['model']}; {how}): {r['hold up']} of {r['of']} "
                     f"methods hold up ({r['methods that hold up']}); {r['fail']} fail, {r['not resolved']} not resolved"
                     + (f", {r['no verdict']} without a verdict (the object mask does not beat the strongest null under "
                        "one of the columns on this network)" if r.get("no verdict", 0) else "")
                     + (f"; {' and '.join(own)} measure{'s' if len(own) == 1 else ''} the known truth itself "
                        "(exact for this question: no test of the column is needed)" if own else "")
                     + (f"; read with care, the columns are not trusted ({'; '.join(shaky)})" if shaky else "") + ".")
    return "\n".join(lines)


def columns_rule():
    """The chapter's ``columns`` parameter: a list of column labels, or "all"."""
    from ..params import Choice, ListOf
    return ListOf(Choice(BY_LABEL, accepts="a leaderboard column (its label)"),
                  keywords={"all": [c.label for c in COLUMNS]})


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def agreement_heatmaps(matrices: dict, title: str = "", flagged=()):
    """One panel per model: the rank correlation of every pair of metrics over the methods (a
    square matrix, -1 to 1); flagged metrics are labelled."""
    fig, axes = plt.subplots(len(matrices), 1, figsize=(7.5, 6.6 * len(matrices)), squeeze=False,
                             layout="constrained")
    for ax, (model, m) in zip(axes[:, 0], matrices.items()):
        im = ax.imshow(m.to_numpy(dtype=float), cmap="RdBu", vmin=-1, vmax=1)
        labels = [c + (" (flagged)" if c in flagged else "") for c in m.columns]
        ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=60, ha="right")
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        for i in range(len(m)):
            for j in range(len(m)):
                v = m.iat[i, j]
                if np.isfinite(v) and i != j:
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=5.5,
                            color="white" if abs(v) > 0.6 else "black")
        ax.set_title(model, fontsize=8)
    fig.colorbar(im, ax=axes[:, 0].tolist(), shrink=0.5, label="rank correlation over methods")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def cost_quality(cost, controls=("random", "constant", "edge"), marked=()):
    """Seconds per image (log scale) against the mean rank over the unflagged metrics, one
    panel per model, every method labelled; the controls in grey, (model, method) pairs in
    ``marked`` (an approximation) labelled so."""
    models = list(dict.fromkeys(cost.model))
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.0), squeeze=False)
    for ax, model in zip(axes[0], models):
        g = cost[cost.model == model]
        for _, r in g.iterrows():
            c = "0.55" if r.method in controls else "C0"
            ax.scatter(r["s/image"], r["mean rank"], color=c, s=18)
            label = r.method.replace("_", " ") + (" (approx.)" if (model, r.method) in marked else "")
            ax.annotate(label, (r["s/image"], r["mean rank"]), fontsize=6,
                        xytext=(3, 2), textcoords="offset points", color=c)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("seconds per image (map)", fontsize=8)
        ax.set_ylabel("mean rank over the unflagged metrics (1 = best)", fontsize=8)
        ax.set_title(model, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def wide_scores(per_image: pd.DataFrame, images: str = "benchmark") -> pd.DataFrame:
    """The committed long per-image table (model, images, column, method, image, score) as one
    row per model, method and image of the ``images`` set, one column per metric column (the
    form :func:`xailib.carryover.section` compares)."""
    t = per_image[per_image["images"] == images]
    wide = t.pivot_table(index=["model", "method", "image"], columns="column", values="score", sort=False)
    wide.columns.name = None
    return wide.reset_index()


# --------------------------------------------------------------------------------------------
# Side by side with Quantus (scripts/quantus_compare.py's committed run)
# --------------------------------------------------------------------------------------------

QUANTUS_DIR = Path(__file__).resolve().parents[2] / "results" / "quantus_comparison"


def quantus_tables(root: str | Path = QUANTUS_DIR) -> dict | None:
    """The committed comparison with Quantus as two tables and a generated summary, or None when
    it was not made: ``map only`` (per metric: the largest difference with Quantus's settings
    matched, and at its defaults, over the maps; milliseconds per image in each), ``model based``
    (per metric: the rank correlation of the methods' means in the two libraries, the median
    per-image correlation, milliseconds per image, how the two differ) and ``note`` (Markdown)."""
    import json
    root = Path(root)
    if not (root / "comparison.csv").exists():
        return None
    run = json.loads((root / "run.json").read_text())
    c = pd.read_csv(root / "comparison.csv")
    refused = c["quantus defaults"].astype(str).str.startswith("refused")
    maps_t = c.groupby("metric", sort=False).agg(
        **{"Quantus": ("quantus", "first"), "largest difference, matched": ("largest difference, matched", "max"),
           "largest difference, defaults": ("largest difference, defaults", "max"),
           "book ms/image": ("book ms per image", "median"), "Quantus ms/image": ("quantus ms per image", "median"),
           "why the defaults differ": ("why the defaults differ", "first")})
    out = {"map only": maps_t, "run": run}
    lines = [f"- **Map-only metrics** ({len(maps_t)}: {', '.join(maps_t.index)}), on {run['n_images']} benchmark "
             f"images of `{run['model']}` and {len(run['methods'])} maps ({', '.join(run['methods'])}): with Quantus "
             f"{run['quantus']}'s settings matched to the papers and one image per call, every score agrees to "
             f"{c['largest difference, matched'].max():.0e}. At its defaults the largest difference is "
             f"{c['largest difference, defaults'].max():.3g}, each explained in the table's last column"
             + (f"; Quantus refuses {', '.join(sorted(set(c.method[refused])))} outright under "
                f"{refused.sum()} metrics" if refused.any() else "") + ". Median time per image: the book "
             f"{maps_t['book ms/image'].min():.2g}-{maps_t['book ms/image'].max():.2g} ms, Quantus "
             f"{maps_t['Quantus ms/image'].min():.2g}-{maps_t['Quantus ms/image'].max():.2g} ms (one thread, one run)."]
    if (root / "model_based.csv").exists():
        m = pd.read_csv(root / "model_based.csv")
        order = pd.read_csv(root / "model_based_order.csv").set_index("metric")
        model_t = m.groupby("metric", sort=False).agg(
            **{"Quantus": ("quantus", "first"), "book mean": ("book mean", "mean"),
               "Quantus mean": ("quantus mean", "mean"), "median per-image r": ("per-image r", "median"),
               "Quantus NaN": ("quantus NaN", "sum"), "book ms/image": ("book ms per image", "median"),
               "Quantus ms/image": ("quantus ms per image", "median"), "how they differ": ("how they differ", "first")})
        model_t.insert(1, "order of the methods (rho)", order["rank correlation of the method means"])
        out["model based"] = model_t
        mb = run.get("model-based", {})
        agree = model_t[model_t["order of the methods (rho)"] >= 0.8].index.tolist()
        lines.append(f"- **Metrics that call the network or re-run the method** ({len(model_t)}), on "
                     f"{mb.get('n_images', '?')} images and {len(mb.get('methods', []))} methods: their random draws "
                     f"cannot be shared between the libraries, so their distributions are compared. The two order the "
                     f"methods alike (rank correlation of the means at least 0.8) under {len(agree)}: "
                     f"{', '.join(agree) or 'none'}.")
        for metric, g in m.groupby("metric", sort=False):
            same = {who: g[col].iloc[0] for who, col in (("the book", "book mean"), ("Quantus", "quantus mean"))
                    if g[col].nunique() == 1}
            if same:
                other = {"the book": ("Quantus", "quantus mean"), "Quantus": ("the book", "book mean")}
                spread = [f"{o} from {g[col].min():.3g} to {g[col].max():.3g}" for w, (o, col) in other.items()
                          if w in same and o not in same]
                lines.append(f"- Under {metric}, every one of the {len(g)} methods (the random map included) gets the "
                             f"same mean in " + " and ".join(f"{w} ({v:g})" for w, v in same.items())
                             + (f"; its means range in {spread[0]}" if spread else "") + ".")
    out["note"] = "\n".join(lines)
    return out
