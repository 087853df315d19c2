"""Train the universal targeted adversarial patches of the adversarial-patch chapter.

    python scripts/train_patches.py                              # both benchmark models
    python scripts/train_patches.py --models resnet_mini --steps 800

For each model: one patch (Brown et al.'s expectation over transformation: random scale,
rotation and position on every step, over training images) that makes the model predict
``--target``; written to ``data/patches/<model>.pt`` (the (3, P, P) tensor, 12 KB at P = 32)
and ``data/patches/<model>.json`` (its card: every training parameter, the model checkpoint's
sha256, the training log and the attack success on held-out validation images per scale).
Deterministic on the CPU: the same command gives the same patch with the same torch build.

For an ImageNet model, e.g. ``--models resnet50 --dataset imagenet --data-root /data/imagenet/train
--target 859 --image-size 224 --device cuda`` (859 is torchvision's index of "toaster", Brown et
al.'s target); then pass the patch directory to the chapter with ``-p patch_dir ...``.
"""
import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xailib import data, models, patches  # noqa: E402
from xailib.errors import ParameterError  # noqa: E402

EVAL_SCALES = (0.3, 0.4, 0.5, 0.6, 0.7)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["vgg_mini", "resnet_mini"])
    ap.add_argument("--target", default="heart", help="class name or index the patch aims at")
    ap.add_argument("--dataset", default="shapes")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--n-train", type=int, default=2000, help="training images the patch sees")
    ap.add_argument("--n-check", type=int, default=500, help="validation images for the card")
    ap.add_argument("--patch-size", type=int, default=32)
    ap.add_argument("--shape", default="circle", choices=patches.SHAPES)
    ap.add_argument("--scale-mode", default="side", choices=patches.SCALE_MODES)
    ap.add_argument("--scale-min", type=float, default=0.3)
    ap.add_argument("--scale-max", type=float, default=0.7)
    ap.add_argument("--max-angle", type=float, default=180.0)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(patches.PATCH_DIR))
    args = ap.parse_args(argv)

    train = data.load_dataset(args.dataset, "train", n=args.n_train, data_root=args.data_root,
                              size=args.image_size, seed=args.seed)
    check = data.load_dataset(args.dataset, "val", n=args.n_check, data_root=args.data_root,
                              size=args.image_size, seed=args.seed)
    names = train.class_names
    target = int(args.target) if str(args.target).isdigit() else names.index(args.target) \
        if args.target in names else None
    if target is None:
        raise ParameterError(f"--target={args.target!r} is neither a class index nor one of {names}")
    for name in args.models:
        model = models.load_model(name, device=args.device)
        cfg = patches.PatchConfig(target=target, patch_size=args.patch_size, shape=args.shape,
                                  scale_mode=args.scale_mode,
                                  scale_range=(args.scale_min, args.scale_max),
                                  max_angle=args.max_angle, steps=args.steps,
                                  batch_size=args.batch_size, lr=args.lr, seed=args.seed)
        torch.manual_seed(args.seed)
        patch, log = patches.train_patch(model, train.images, train.labels, cfg, progress=True)
        # held-out check: correctly classified validation images outside the target class
        pred = models.predict(model, check.images).argmax(1)
        keep = (pred == check.labels) & (check.labels != target)
        success = {}
        for k, s in enumerate(EVAL_SCALES):
            _, _, adv, _ = patches.attack(model, check.images[keep], patch, s, seed=1000 + k,
                                          shape=args.shape, scale_mode=args.scale_mode,
                                          max_angle=args.max_angle)
            success[str(s)] = round((adv == target).float().mean().item(), 4)
        card = {
            "model": name,
            "model_sha256": models.model_card(name)["sha256"] if name in models.BENCHMARK_MODELS else None,
            "dataset": args.dataset, "train_split": "train", "image_size": args.image_size,
            "target": target, "target_name": names[target],
            "config": patches.config_dict(cfg),
            "optimiser": "Adam on the patch pixels, clamped to [0, 1] after each step",
            "loss": "cross-entropy to the target = -log Pr(target | patched image), averaged "
                    "over a batch of random images, scales, angles and positions",
            "training": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in log.items()},
            "check": {"split": "val" if args.dataset != "photos" else "the training photographs (one set)",
                      "images": int(keep.sum()), "success_by_scale": success},
            "torch": torch.__version__,
            "command": " ".join(["python scripts/train_patches.py", *(argv if argv is not None else sys.argv[1:])]),
        }
        path = patches.save_patch(patch, card, Path(args.out) / name)
        print(f"{name}: {path} target={names[target]} "
              f"loss={log['final_loss']:.3f} success(val)={success} ({log['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
