"""Benchmark RISE and deletion / insertion against the forward passes they cannot avoid.

    python scripts/bench_rise.py                     # CPU (and the GPU when one is visible)
    python scripts/bench_rise.py --device cuda --masks 8000 --json results/bench_rise_gpu.json

RISE costs N forward passes per image; everything else (drawing and upsampling masks, the
products, the weighted sum) should be small beside them. The script times, per image:
``forward``: N plain forward passes of the same image at the best batch size found;
``rise``: ``xailib.explain.explain(..., "rise")`` with the same N; and the same for deletion +
insertion (2 x (steps + 1) forward passes). Models: the benchmark's ``vgg_mini`` at 64 px, and
torchvision's ResNet-50 at 224 px with random weights (timing does not need trained weights).
"""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from xailib import explain, metrics, models  # noqa: E402


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev, repeat=2):
    fn()                                   # warm-up (allocations, cuDNN autotuning)
    sync(dev)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def forward_time(model, x, n, batch, dev):
    """Seconds for n forward passes of image x in batches of ``batch``."""
    xb = x.expand(batch, -1, -1, -1).contiguous()

    def run():
        done = 0
        while done < n:
            k = min(batch, n - done)
            model(xb[:k])
            done += k
    return timed(run, dev)


def bench(name, model, size, n_masks, batches, dev, repeat_images=2, steps=None):
    torch.manual_seed(0)
    x = torch.rand(repeat_images, 3, size, size, device=dev)
    t = torch.zeros(repeat_images, dtype=torch.long, device=dev)
    fwd = {b: forward_time(model, x[:1], n_masks, b, dev) for b in batches}
    best_b = min(fwd, key=fwd.get)
    rise = timed(lambda: explain.explain(model, x, t, "rise", n_masks=n_masks,
                                         model_batch_size=best_b), dev, repeat=2) / repeat_images
    steps = steps or size                          # the metrics' default: one step per row's worth
    n_causal = 2 * (steps + 1)
    causal_fwd = forward_time(model, x[:1], n_causal, best_b, dev)
    sal = torch.rand(repeat_images, size, size, device=dev)

    def causal():
        metrics.score(model, x, t, sal, "deletion", n_steps=steps, batch_size=best_b)
        metrics.score(model, x, t, sal, "insertion", n_steps=steps, batch_size=best_b)
    causal_t = timed(causal, dev, repeat=2) / repeat_images
    return dict(model=name, size=size, device=str(dev), n_masks=n_masks, best_batch=best_b, steps=steps,
                forward_s_by_batch={str(k): round(v, 4) for k, v in fwd.items()},
                forward_s=round(fwd[best_b], 4), rise_s=round(rise, 4),
                rise_overhead=round(rise / fwd[best_b] - 1, 3),
                causal_forward_s=round(causal_fwd, 4), causal_s=round(causal_t, 4),
                causal_overhead=round(causal_t / causal_fwd - 1, 3))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--masks", type=int, default=None, help="N (default on a GPU: 4000 for "
                    "vgg_mini, 8000 for ResNet-50; on a CPU 1000 and 128, to keep the run short)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    devices = ([torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
               if args.device == "auto" else [models.resolve_device(args.device)])
    rows = []
    for dev in devices:
        gpu = dev.type == "cuda"
        if gpu:
            torch.backends.cudnn.benchmark = True
        mini = models.load_model("vgg_mini", device=str(dev))
        rows.append(bench("vgg_mini", mini, 64, args.masks or (4000 if gpu else 1000),
                          [128, 256, 512, 1024] + ([2048, 4096] if gpu else []), dev))
        import torchvision
        net = torchvision.models.resnet50(weights=None).eval()
        r50 = models.ImageNetClassifier(net).to(dev).eval()
        for p in r50.parameters():
            p.requires_grad_(False)
        rows.append(bench("resnet50 (random weights)", r50, 224,
                          args.masks or (8000 if gpu else 128),
                          [64, 128, 256, 512] if gpu else [32, 64], dev, repeat_images=1,
                          steps=None if gpu else 56))
        for r in rows[-2:]:
            print(json.dumps(r), flush=True)
    env = dict(torch=torch.__version__, threads=torch.get_num_threads(), machine=platform.machine(),
               gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    print("\n| model | device | N | batch | N forwards (s) | RISE (s/image) | overhead | steps | "
          "del+ins forwards (s) | del+ins (s/image) | overhead |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['model']} {r['size']} px | {r['device']} | {r['n_masks']} | {r['best_batch']} | "
              f"{r['forward_s']:.3f} | {r['rise_s']:.3f} | {100 * r['rise_overhead']:+.0f} % | {r['steps']} | "
              f"{r['causal_forward_s']:.3f} | {r['causal_s']:.3f} | {100 * r['causal_overhead']:+.0f} % |")
    print(f"\n{env}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(env=env, rows=rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
