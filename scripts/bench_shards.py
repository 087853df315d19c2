"""Time a chapter's heavy loop in this process against a local Dask cluster, and the overhead
per shard; writes results/bench/shards.json and .md.

    python scripts/bench_shards.py                  # 2 local workers (this machine has 2 cores)
    python scripts/bench_shards.py --workers 4 --images 32

The heavy loop is chapter 10's: every method but the learned masks explains the same test images
on vgg_mini, shards of --shard-size images. In process it runs with torch's default threads (all
cores); on the cluster each worker runs one thread, so the two use the same cores. The overhead
per shard is measured with shards that do almost nothing (the gradient of one image): the
workers' time (wall time x workers) minus the shards' own compute seconds, over the number of
shards. Each timing
starts from an empty store (nothing is read from an earlier run); the cluster's start-up is
timed apart.
"""
import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# Forward-pass equivalents per image at the papers' ImageNet settings (a backward pass counted as
# two forwards): the methods' defaults at 224 px, RISE at the paper's 8000 masks, NeuroMask at its
# authors' 1000 ImageNet iterations.
PASSES = {
    "gradient, gradient x input, guided backprop, deconvolution, DeepLIFT, LRP, Grad-CAM, guided Grad-CAM":
        (8, 3),
    "integrated gradients (32 steps)": (1, 96), "expected gradients (32 samples)": (1, 96),
    "SmoothGrad (25 samples)": (1, 75), "occlusion (64 px window, stride 8: 441 positions)": (1, 441),
    "LIME (1000 samples)": (1, 1000), "KernelSHAP (1000 samples)": (1, 1000), "RISE (8000 masks)": (1, 8000),
    "extremal perturbation (300 iterations)": (1, 900), "NeuroMask (1000 iterations)": (1, 3000),
}
NETWORKS = {"resnet50": 224, "vgg16": 224, "inception_v3": 299}


def plan(device: str, batch: int = 32, n_val: int = 50_000) -> str:
    """The paper-size run's cost: a forward pass of each torchvision network timed here (its
    architecture; the weights do not change the time), times the passes each method needs."""
    import torchvision
    t_fwd = {}
    for name, side in NETWORKS.items():
        kw = {"aux_logits": False, "init_weights": False} if name == "inception_v3" else {}
        net = getattr(torchvision.models, name)(weights=None, **kw).eval().to(device)
        x = torch.rand(batch, 3, side, side, device=device)
        def run(net=net, x=x):
            with torch.inference_mode():
                for _ in range(2):
                    net(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        run()                                        # warm-up
        t, _ = timed(run)
        t_fwd[name] = t / (2 * batch)
    per_image = sum(k * p for k, p in PASSES.values())
    lines = [f"Forward passes timed on `{device}` ({platform.processor() or platform.machine()}), batches of {batch}, "
             "float32:", "", "| network | s per forward pass per image | all methods, s per image | "
             f"{n_val:,} validation images, hours |", "| --- | --- | --- | --- |"]
    total = 0.0
    for name, t in t_fwd.items():
        hours = per_image * t * n_val / 3600
        total += hours
        lines.append(f"| {name} | {t:.4f} | {per_image * t:.0f} | {hours:,.0f} |")
    lines += ["", f"Every method, one map per image and network: **{per_image:,} forward-pass equivalents per image**, "
              f"**{total:,.0f} hours** for the three networks on this device.", "",
              "| method | forward-pass equivalents per image |", "| --- | --- |"]
    lines += [f"| {m} | {k} x {p}" + (" each" if k > 1 else "") + " |" for m, (k, p) in PASSES.items()]
    lines += ["", *at_scale(t_fwd, per_image, n_val, device)]
    return "\n".join(lines) + "\n"


WORKERS = (1, 8, 64)        # machines like the one the forward passes were timed on
SHARD = 64                  # images per shard (the overhead per shard is measured in shards.md)


def at_scale(t_fwd: dict, per_image: int, n_val: int, device: str) -> list[str]:
    """The paper-size run on the map store: how many maps and shards, how large the store, and the
    hours on N workers like this one (arithmetic on the times measured above)."""
    n_maps = sum(k for k, _ in PASSES.values())                   # one map per method
    rows = ["The same run through the book's map store (`xailib.map_store`: one file per map, a "
            f"shard of {SHARD} images per network and method):", "",
            "| network | maps | shards | store (GB) | "
            + " | ".join(f"hours on {n} worker{'s' if n > 1 else ''}" for n in WORKERS) + " |",
            "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in WORKERS) + " |"]
    for name, t in t_fwd.items():
        side = NETWORKS[name]
        maps = n_val * n_maps
        shards = -(-n_val // SHARD) * n_maps
        gb = maps * side * side * 4 / 1e9
        hours = per_image * t * n_val / 3600
        rows.append(f"| {name} | {maps:,} | {shards:,} | {gb:,.0f} | "
                    + " | ".join(f"{hours / n:,.0f}" for n in WORKERS) + " |")
    rows += ["", f"A worker here is a machine like the one the passes were timed on (`{device}`); the hours "
             "divide by the number of workers because every shard is independent (the overhead per shard "
             "that scripts/bench_shards.py measures is far below a shard's work at this size). The store keeps float32 "
             "maps at the network's input size; the map store makes a re-run, or another chapter, read the "
             "maps instead of computing them again."]
    return rows


def main():
    from xailib import shards
    from xailib.methods import method_names
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--shard-size", type=int, default=4)
    ap.add_argument("--tiny", type=int, default=40, help="one-image gradient shards for the overhead")
    ap.add_argument("--plan", action="store_true", help="also time the torchvision networks' forward pass and "
                                                         "write the paper-size plan (results/bench/plan.md)")
    ap.add_argument("--plan-only", action="store_true", help="write the plan and stop (no cluster timings)")
    ap.add_argument("--device", default="cpu", help="the device for --plan")
    args = ap.parse_args()
    args.plan = args.plan or args.plan_only
    if args.plan:         # before the cluster timings
        text = plan(args.device)
        (ROOT / "results" / "bench").mkdir(parents=True, exist_ok=True)
        (ROOT / "results" / "bench" / ("plan.md" if args.device == "cpu" else f"plan_{args.device}.md")).write_text(text)
        print(text)
        if args.plan_only:
            return
    methods = method_names(controls=True)
    background = {"expected_gradients": {"background": {"images": "val", "n": 16}}}     # the chapters' reference
    heavy = [s for m in methods for s in shards.shards_for("vgg_mini", m, range(args.images), args.shard_size,
                                                           params=background.get(m, {}))]
    tiny = [s for i in range(args.tiny) for s in shards.shards_for("vgg_mini", "gradient", [i], 1)]
    out = {"workers": args.workers, "images": args.images, "shard_size": args.shard_size, "methods": methods,
           "heavy_shards": len(heavy), "tiny_shards": len(tiny), "torch_threads_in_process": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        out["in_process_s"], _ = timed(lambda: shards.compute(heavy, store=f"{tmp}/a", progress=False))
        out["tiny_in_process_s"], _ = timed(lambda: shards.compute(tiny, store=f"{tmp}/c", progress=False))
        t0 = time.perf_counter()
        with shards.client(f"local:{args.workers}") as c:
            out["cluster_start_s"] = time.perf_counter() - t0
            out["cluster_s"], _ = timed(lambda: shards.compute(heavy, store=f"{tmp}/b", scheduler=c, progress=False))
            out["tiny_cluster_s"], _ = timed(lambda: shards.compute(tiny, store=f"{tmp}/d", scheduler=c, progress=False))
        out["tiny_compute_s"] = shards.seconds(tiny, store=f"{tmp}/d")
    out["speed_up"] = out["in_process_s"] / out["cluster_s"]
    # a worker's time on a shard beyond the shard's own computation (the maps): scheduling, the
    # data and network lookups, the store's write
    out["overhead_per_shard_s"] = (args.workers * out["tiny_cluster_s"] - out["tiny_compute_s"]) / len(tiny)
    dest = ROOT / "results" / "bench"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "shards.json").write_text(json.dumps(out, indent=1) + "\n")
    md = ["| what | in process | local cluster | ratio |", "| --- | --- | --- | --- |",
          f"| chapter 10's maps: {len(methods)} methods x {args.images} images, {len(heavy)} shards of "
          f"{args.shard_size} | {out['in_process_s']:.1f} s | {out['cluster_s']:.1f} s ({args.workers} workers, "
          f"1 thread each) | {out['speed_up']:.2f} x |",
          f"| {len(tiny)} one-image gradient shards | {out['tiny_in_process_s']:.2f} s | {out['tiny_cluster_s']:.2f} s "
          f"| overhead {1000 * out['overhead_per_shard_s']:.0f} ms of a worker's time per shard |",
          f"| starting the local cluster | | {out['cluster_start_s']:.1f} s | |"]
    (dest / "shards.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
