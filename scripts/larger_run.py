"""Make a chapter's committed larger run: the notebook executed by papermill with larger parameters,
its tables published into ``results/<notebook>/larger_run/`` (and nowhere else), with the
parameters, command and wall time recorded in ``run.json`` there.

    python scripts/larger_run.py 02_rise            # one chapter
    python scripts/larger_run.py --list             # the larger runs and their parameters
    python scripts/larger_run.py --real 02_rise     # the chapter on the real network (below)

The chapters judge their claims on these tables when they exist (the run's own claims and verdicts
tables are not kept: the chapter recomputes them with the current rule), and show the default run
beside them; ``tests/test_larger_runs.py`` recomputes a random slice of each and compares.
Each run takes at most about an hour on 2 CPU cores (the wall time is recorded).

``--real`` runs a chapter instead on the real ImageNet network (EfficientNet-Lite0) and the
photographs (``data.load_photos``), with the parameters of ``REAL``, into
``results/<notebook>/real_network/``; the chapter reads it back for its section on whether its
verdicts carry over (``xailib.carryover``). The chapters run one after another in one process,
so the maps they share are computed once (the map store).
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import papermill as pm

ROOT = Path(__file__).resolve().parent.parent

# The parameters of each larger run (everything else at the notebook's defaults).
LARGER = {
    # three RISE seeds as the paper (the second and third on the first 48 images: their spread), and
    # the pointing game on 96 two-object images, where it discriminates
    "02_rise": dict(n_images=200, n_masks={"vgg_mini": 4000, "resnet_mini": 8000}, rise_seeds=[0, 1, 2],
                    seed_images=48, pixel_masks=True, sweep_images=1, n_hard=96,
                    sweep_masks=[250, 500, 1000, 2000, 4000, 8000]),
    "03_impact_score": dict(n_images=200, method_params={"rise": {"n_masks": 2000}}),
    "04_adversarial_patch": dict(n_explain=20),
    "05_neuromask": dict(n_images=100, sweep_images=8),
    # every registered method (the learned masks and the edge detector included) through the
    # cascade and the data test; the rule comparison and the smoothed test on the chapter's
    # default list (its panel but RISE); the independent test on that list too (on every method it
    # would cost as much as the cascade again, about an hour)
    "06_sanity_checks": dict(n_images=16, methods="all", tests=["cascading", "independent"],
                             independent_methods=["gradient", "gradient_x_input", "integrated_gradients", "smoothgrad",
                                                  "guided_backprop", "gradcam", "guided_gradcam", "edge"],
                             smooth_samples=8, method_params={"rise": {"n_masks": 1000}}),
    # every registered method but the learned masks (the controls included), on more images
    "07_localisation": dict(n_images=40, n_heldout=40, methods="all"),
    # every registered method but the learned masks, max-sensitivity for every one of them
    # (LIME and KernelSHAP included), RISE at 2000 masks for time
    "08_trustworthiness": dict(n_images=24, n_bam=40, n_trojan=40, methods="all", sensitivity_methods="all",
                               method_params={"rise": {"n_masks": 2000}}),
    # every registered method but the learned masks, on more images and finer curves; the
    # hyper-parameter table for every method that has hyper-parameters but NeuroMask, on 16
    # images (8 cannot pass Holm's correction over the chapter's 200-odd claims: 2 / 2^8 > 0.05 / 200);
    # ROAR is scripts/roar.py's, not this one's
    "09_faithfulness": dict(n_images=24, n_steps=16, methods="all", hyper_images=16,
                            hyper_methods=["smoothgrad", "integrated_gradients", "deeplift", "expected_gradients",
                                           "lrp_epsilon", "occlusion", "lime", "kernel_shap", "rise"]),
    # every registered method, the learned masks included, and the columns that explain new inputs
    # (the five robustness metrics, the random logit test, Focus's mosaics) for every one of them
    # but NeuroMask and RISE (661 s and 596 s of max-sensitivity on vgg_mini alone, most of the
    # run's time; chapter 08's larger run has RISE's)
    "10_leaderboard": dict(n_images=20, n_truth=12, methods="every",
                           sensitivity_methods=["gradient", "gradient_x_input", "integrated_gradients", "smoothgrad",
                                                "guided_backprop", "deconvolution", "deeplift", "expected_gradients",
                                                "lrp_epsilon", "gradcam", "guided_gradcam", "occlusion", "lime",
                                                "kernel_shap", "edge", "random", "smooth_random", "constant",
                                                "extremal_perturbation"]),
    # the whole BAM test split dissected (the defaults leave three claims open), and the committee
    # explaining four times the images with every method chapter 10 trusts on vgg_mini (expected
    # gradients and extremal perturbation added) beside Li et al.'s and Grad-CAM
    "11_model_interpretability": dict(n_images=1000, n_consensus=96,
                                      consensus_methods=["smoothgrad", "lime", "gradcam", "gradient", "guided_backprop",
                                                         "guided_gradcam", "lrp_epsilon", "occlusion",
                                                         "expected_gradients", "extremal_perturbation"]),
}


# The chapters on the real network: EfficientNet-Lite0 on the eight photographs at 224 px. Every
# image is used (n_images 8: the few that the network classifies right, where a chapter needs that).
# The chapters use the photographs whose top-1 class is the annotated one, four of the eight:
# n_images 4 takes them all, in the same order in every chapter, so the chapters share their maps.
PHOTOS = dict(dataset="photos", model_names=["efficientnet_lite0"], image_size=224)
REAL = {
    # every method under every column (the known-truth columns stay on the benchmark's own sets)
    "10_leaderboard": dict(n_images=4, n_truth=3, methods="all", n_steps=16),
    # RISE as the paper ran VGG16 (4000 masks), its spread over three seeds on the first photograph;
    # curves in 28 steps
    "02_rise": dict(n_images=4, n_masks=4000, rise_seeds=[0, 1, 2], seed_images=1, pixel_masks=False,
                    methods="all", n_steps=28, n_hard=0, sweep_masks=[500, 2000], sweep_images=1),
    # the hyper-parameter table for SmoothGrad, integrated gradients and occlusion (the first run
    # ran out of the machine's 24 GB in it, before SmoothGrad's and integrated gradients' passes
    # were bounded at large sizes); RISE is left out: its grid's 8000 masks and 10-cell masks at
    # 224 px are some 60 000 passes of the network, most of an hour for four photographs
    "09_faithfulness": dict(n_images=4, methods="all", n_steps=8, sensitivity_subsets=32,
                            hyper_methods=["smoothgrad", "integrated_gradients", "occlusion"],
                            hyper_model="efficientnet_lite0", hyper_images=4),
    # the cascade over the network's 50 layers on three photographs; the methods whose maps cost
    # one or a few backward passes (SmoothGrad and RISE would take most of the hour)
    "06_sanity_checks": dict(n_images=3, methods=["gradient", "gradient_x_input", "integrated_gradients",
                                                  "guided_backprop", "gradcam", "guided_gradcam", "edge"],
                             tests=["cascading"], alternatives=[], label_pairs={}, smooth_samples=0),
    # two scored photographs and two on which MaxBoxAcc chooses its threshold
    "07_localisation": dict(n_images=2, n_heldout=2),
    "03_impact_score": dict(n_images=4, methods="all", method_params={"rise": {"n_masks": 2000}}, n_show=2),
    "05_neuromask": dict(n_images=4, iterations=300, sweep_images=1),
    # infidelity and max-sensitivity only: BAM's pair and the trojaned networks are trained on the
    # benchmark's shapes, and no ImageNet network with a known cue can be trained here
    "08_trustworthiness": dict(n_images=4, methods="all", bam_models=[], trojans={}),
    # the four photographs attacked at the five scales with the network's own patch
    # (data/patches/efficientnet_lite0.*, scripts/train_patches.py: its card has the command), and
    # every successful attack explained
    "04_adversarial_patch": dict(n_attack=4, n_explain=0),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", help="chapter names (without .ipynb)")
    ap.add_argument("--list", action="store_true", help="print the larger runs' parameters and stop")
    ap.add_argument("--real", action="store_true", help="run the chapters on the real network and the photographs")
    args = ap.parse_args()
    runs = {k: {**PHOTOS, **v} for k, v in REAL.items()} if args.real else LARGER
    if args.list or not args.notebooks:
        print(json.dumps(runs, indent=1))
        return
    for name in args.notebooks:
        if name not in runs:
            sys.exit(f"no {'real-network' if args.real else 'larger'} run is defined for {name!r}; "
                     f"choose from {', '.join(runs)}")
    os.environ["XAILIB_LARGER_RUN"] = "real" if args.real else "1"
    sub = "real_network" if args.real else "larger_run"
    sys.path.insert(0, str(ROOT))
    from xailib import determinism
    kernels = determinism.apply()     # the pinned kernels and batch size (xailib/determinism.py)
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    from xailib import map_store
    for name in args.notebooks:
        folder = ROOT / "results" / name / sub
        for old in folder.glob("*.csv"):
            old.unlink()                       # no table of an earlier larger run survives
        stored = map_store.stored_count()      # a run whose maps were in the store takes less than a cold one
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(Path(tmp) / f"{name}.ipynb"),
                                parameters=runs[name], cwd=str(ROOT / "notebooks"), progress_bar=True)
        seconds = time.perf_counter() - t0
        # the chapter judges a larger run's data itself; the real network's verdicts are kept, as that
        # run judged them (the chapter sets them beside the benchmark's: xailib.carryover.directions)
        for judged in () if args.real else ("claims.csv", "verdicts.csv", "grid_verdicts.csv"):
            (folder / judged).unlink(missing_ok=True)
        record = {"command": f"python scripts/larger_run.py {'--real ' if args.real else ''}{name}", "parameters": runs[name],
                  "seconds": round(seconds, 1), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "kernels": kernels,
                  "maps stored at the start": stored, "maps computed": map_store.stored_count() - stored,
                  "ties": "random"}          # xailib.metrics.order: how tied pixels are ranked
        (folder / "run.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"{name}: {'real-network' if args.real else 'larger'} run published to {folder} in {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
