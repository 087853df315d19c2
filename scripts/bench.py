"""The book's benchmark: seconds per image of every method and metric, eager against fast, beside
the forward passes they cannot avoid and the peers a user would pick instead.

    python scripts/bench.py                          # CPU (and the GPU when one is visible)
    python scripts/bench.py --baseline cb9fcf9       # + that commit's xailib, timed in this run
    python scripts/bench.py --quick                  # a short smoke run
    python scripts/bench.py --out results/bench      # where cpu.json / cpu.md (cuda.*) go

For each benchmark network at the book's defaults (64 px; RISE with 1000 masks as chapters 01-03
run it) it reports, per registered method and metric:

- ``eager`` and ``fast``: seconds per image with ``fast=False`` and with the fast path of
  ``xailib.inference`` (folded batch-norm, channels_last, measured batch size);
- ``rows``: forward passes per image, and ``floor``: their time on the fast path, so
  ``fast / floor`` says how close a method comes to the cost of its own forward passes;
- ``model share``: the part of the fast time spent inside model calls (for LIME and KernelSHAP
  the rest is segmentation and the surrogate fit);
- with ``--baseline REV``: the seconds per image of that commit's code (run in a subprocess from
  a temporary ``git worktree``), and ``speed-up`` = baseline / fast, measured in the same run.

Peers, where installed (``pip install torchray quantus``; neither is a dependency of the book):
TorchRay's RISE given the *same* fast model (``xailib.inference.FastModule``) at each batch size,
against ``xailib``'s RISE at that batch size; Quantus's pixel flipping against ``deletion``;
captum's ``infidelity`` (eager and fast forward) and ``sensitivity_max``. The Markdown table is
copied into the book's build record by ``scripts/run_notebooks.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if os.environ.get("XAILIB_BENCH_ROOT"):          # the baseline worker imports another xailib
    sys.path.insert(0, os.environ["XAILIB_BENCH_ROOT"])
else:
    sys.path.insert(0, str(ROOT))
import xailib  # noqa: E402
from xailib import data, metrics, models  # noqa: E402
try:
    from xailib.methods import METHODS, explain, method_names  # noqa: E402
except ImportError:                               # a baseline commit from before the 2026-12 layout
    from xailib.explain import METHODS, explain, method_names  # noqa: E402  baseline layout

try:
    from xailib import inference
    if Path(inference.__file__).parent != Path(xailib.__file__).parent:
        inference = None                          # found through the editable install, not REV's
except ImportError:                               # a commit from before the fast path
    inference = None

MODELS = ("vgg_mini", "resnet_mini")
METHOD_PARAMS = {"rise": dict(n_masks=1000), "neuromask": dict(iterations=100)}   # NeuroMask: per 100 iterations
METRICS = ("deletion", "insertion", "impact", "impact_strict", "pointing_game", "mask_energy")


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev, repeat=2):
    """Best of ``repeat`` timed runs after one warm-up run."""
    fn()
    sync(dev)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best


def fast_option(fast):
    """``options(fast=...)`` on code that has it; nothing on a baseline commit."""
    if inference is None:
        import contextlib
        return contextlib.nullcontext()
    return inference.options(fast=fast)


class HookTimer:
    """Time inside a model's forward calls, for code without ``xailib.inference`` (a baseline)."""

    def __init__(self, model):
        self.rows, self.seconds, self._t0 = 0, 0.0, None
        self._hooks = [model.register_forward_pre_hook(self._pre),
                       model.register_forward_hook(self._post)]

    def _pre(self, module, args):
        self._t0 = time.perf_counter()

    def _post(self, module, args, out):
        self.seconds += time.perf_counter() - self._t0
        self.rows += len(args[0])

    def remove(self):
        for h in self._hooks:
            h.remove()


def counted(fn, dev, n_images, model, repeat=2):
    """(seconds per image, forward rows per image, seconds inside model calls per image)."""
    timer = HookTimer(model) if inference is None else inference.STATS
    try:
        fn()
        sync(dev)
        best, rows, inside = float("inf"), 0, 0.0
        for _ in range(repeat):
            s0 = (timer.rows, timer.seconds)
            t0 = time.perf_counter()
            fn()
            sync(dev)
            dt = time.perf_counter() - t0
            if dt < best:
                best, rows, inside = dt, timer.rows - s0[0], timer.seconds - s0[1]
    finally:
        if inference is None:
            timer.remove()
    return best / n_images, rows / n_images, inside / n_images


def workload(dev, n_images):
    """The first test images, their object masks, and 16 validation images as references."""
    test = data.load_shapes("test", n=n_images, seed=0)
    ref = data.load_shapes("val", n=16, seed=0).images
    return test.images.to(dev), test.masks, ref


def methods_and_metrics(model_name, dev, n_images, quick):
    """Rows for one network: every method and metric, eager and fast (or the baseline's)."""
    model = models.load_model(model_name, device=str(dev))
    x, masks, ref = workload(dev, n_images)
    t = models.predict(model, x).argmax(1).to(dev)
    rows = []
    for name in method_names(learned=True):
        params = dict(METHOD_PARAMS.get(name, {}))
        if "background" in METHODS[name].required:
            params["background"] = ref
        if quick and name in ("lime", "kernel_shap"):
            params.update(num_samples=200) if name == "lime" else params.update(nsamples=200)
        n = 2 if name in ("lime", "kernel_shap", "occlusion", "rise") else n_images
        row = dict(model=model_name, kind="method", name=name, images=n)
        for label, fast in (("eager", False), ("fast", True)):
            if inference is None and label == "eager":
                continue
            with fast_option(fast):
                sec, r, inside = counted(lambda: explain(model, x[:n], t[:n], name, **params),
                                         dev, n, model)
            row.update({label: sec, f"{label}_model_s": inside, "rows": r})
        rows.append(row)
    maps = explain(model, x, t, "gradcam")
    metric_params = {"pointing_game": dict(masks=masks), "mask_energy": dict(masks=masks)}
    for name in METRICS:
        row = dict(model=model_name, kind="metric", name=name, images=n_images)
        for label, fast in (("eager", False), ("fast", True)):
            if inference is None and label == "eager":
                continue
            with fast_option(fast):
                sec, r, inside = counted(lambda: metrics.score(model, x, t, maps, name,
                                                               **metric_params.get(name, {})),
                                         dev, n_images, model)
            row.update({label: sec, f"{label}_model_s": inside, "rows": r})
        rows.append(row)
    return rows


@torch.no_grad()
def forward_floor(model, dev, n_rows=4000):
    """Seconds per forward row, fast and eager, for one image repeated ``n_rows`` times."""
    x = torch.rand(1, 3, 64, 64, device=dev).expand(n_rows, -1, -1, -1).contiguous()
    out = {}
    for label, fast in (("eager", False), ("fast", True)):
        with inference.options(fast=fast):
            out[label] = timed(lambda: inference.forward(model, x), dev) / n_rows
    return out


def peers(model_name, dev):
    """TorchRay's RISE, Quantus's pixel flipping, captum's infidelity and sensitivity."""
    model = models.load_model(model_name, device=str(dev))
    x, _, _ = workload(dev, 2)
    t = models.predict(model, x).argmax(1).to(dev)
    rows, n_masks = [], 1000
    try:
        from torchray.attribution.rise import rise as torchray_rise
    except ImportError:
        torchray_rise = None
        print("  (TorchRay not installed: pip install torchray --no-deps)")
    for b in ((32, 64, 128, 256) if dev.type == "cpu" else (256, 1024, 4096)):
        with inference.options(batch_size=b):
            ours = timed(lambda: explain(model, x, t, "rise", n_masks=n_masks,
                                                 model_batch_size=b), dev, repeat=3) / len(x)
            row = dict(model=model_name, name=f"RISE, N={n_masks}, batch {b}", xailib=ours)
            if torchray_rise is not None:
                fm = inference.FastModule(model)
                row["peer"] = timed(lambda: torchray_rise(fm, x, num_masks=n_masks, batch_size=b),
                                    dev, repeat=3) / len(x)
                row["peer_name"] = "TorchRay rise (same fast model)"
        rows.append(row)
    maps = explain(model, x, t, "gradcam")
    steps = x.shape[-1]
    ours = timed(lambda: metrics.score(model, x, t, maps, "deletion", n_steps=steps, removal=0.0), dev) / len(x)
    row = dict(model=model_name, name=f"deletion, {steps} steps, black fill", xailib=ours)
    try:
        import quantus  # noqa: F401
    except ImportError:
        quantus = None
        print("  (Quantus not installed: pip install quantus)")
    if quantus is not None:
        pf = quantus.PixelFlipping(features_in_step=x.shape[-1] * x.shape[-2] // steps,
                                   perturb_baseline="black", normalise=False, disable_warnings=True)
        xn, yn, an = x.cpu().numpy(), t.cpu().numpy(), maps[:, None].cpu().numpy()
        fm = inference.FastModule(model)
        row["peer"] = timed(lambda: pf(model=fm, x_batch=xn, y_batch=yn, a_batch=an,
                                       device=str(dev), channel_first=True), dev, repeat=1) / len(x)
        row["peer_name"] = "Quantus PixelFlipping (same fast model)"
    rows.append(row)
    from captum.attr import Saliency
    from captum.metrics import infidelity, sensitivity_max

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.03
        return noise, inputs - noise
    grads = Saliency(model).attribute(x.clone().requires_grad_(True), target=t)
    for label, fwd in (("eager", model), ("fast", inference.FastModule(model))):
        sec = timed(lambda: infidelity(fwd, perturb, x, grads, target=t, n_perturb_samples=64,
                                       max_examples_per_batch=64), dev) / len(x)
        rows.append(dict(model=model_name, name=f"captum infidelity, 64 perturbations ({label} forward)",
                         peer=sec, peer_name="captum.metrics.infidelity"))
    sal = Saliency(model)
    sec = timed(lambda: sensitivity_max(sal.attribute, x.clone(), target=t, n_perturb_samples=10),
                dev) / len(x)
    rows.append(dict(model=model_name, name="captum sensitivity_max of the gradient, 10 perturbations",
                     peer=sec, peer_name="captum.metrics.sensitivity_max (autograd: no fast path)"))
    return rows


def baseline_rows(rev, dev, n_images, quick):
    """Run this script's method and metric rows on commit ``rev`` in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp) / "wt"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), rev],
                       check=True, capture_output=True)
        try:
            env = {**os.environ, "XAILIB_BENCH_ROOT": str(wt), "XAILIB_CACHE": str(ROOT / ".cache")}
            out = subprocess.run([sys.executable, __file__, "--worker", "--device", str(dev),
                                  "--images", str(n_images)] + (["--quick"] if quick else []),
                                 check=True, capture_output=True, text=True, env=env)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)],
                           capture_output=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(v, digits=4):
    return "" if v is None else f"{v:.{digits}f}"


def markdown(res):
    env = res["env"]
    lines = [f"Benchmark on {env['device_name']} ({env['threads']} threads), torch {env['torch']}, "
             f"{env['date']}; seconds per image unless stated. `python scripts/bench.py"
             + (f" --baseline {res['baseline']}" if res.get("baseline") else "") + "`.", ""]
    base = ("| baseline (s) | speed-up | baseline model (s) | model speed-up "
            if res.get("baseline") else "")
    lines += [f"| network | method or metric | eager (s) | fast (s) | eager / fast | forward rows "
              f"| fast / floor | model share {base}|",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: "
              + ("| ---: | ---: | ---: | ---: " if base else "") + "|"]
    for r in res["rows"]:
        floor = res["floor"][r["model"]]["fast"] * r["rows"] if r.get("rows") else None
        cells = [r["model"], f"{r['kind']}: {r['name']}", fmt(r.get("eager")), fmt(r["fast"]),
                 f"{r['eager'] / r['fast']:.2f}", f"{r['rows']:.0f}" if r.get("rows") else "0",
                 f"{r['fast'] / floor:.2f}" if floor else "",
                 f"{100 * r['fast_model_s'] / r['fast']:.0f} %" if r.get("rows") else ""]
        if base:
            b, bm = r.get("baseline"), r.get("baseline_model_s")
            cells += [fmt(b), f"{b / r['fast']:.2f}" if b else "",
                      fmt(bm) if r.get("rows") else "",
                      f"{bm / r['fast_model_s']:.2f}" if r.get("rows") and bm else ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Forward floor (seconds per forward row, one 64 px image repeated 4000 times):", "",
              "| network | eager | fast | eager / fast |", "| --- | ---: | ---: | ---: |"]
    for m, f in res["floor"].items():
        lines.append(f"| {m} | {f['eager']:.2e} | {f['fast']:.2e} | {f['eager'] / f['fast']:.2f} |")
    if res.get("peers"):
        lines += ["", "Peers (seconds per image):", "",
                  "| network | task | xailib (s) | peer (s) | peer / xailib | peer |",
                  "| --- | --- | ---: | ---: | ---: | --- |"]
        for r in res["peers"]:
            ratio = f"{r['peer'] / r['xailib']:.2f}" if r.get("xailib") and r.get("peer") else ""
            lines.append(f"| {r['model']} | {r['name']} | {fmt(r.get('xailib'))} | {fmt(r.get('peer'))} "
                         f"| {ratio} | {r.get('peer_name', 'not installed')} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--images", type=int, default=8, help="images per row (4 for LIME, KernelSHAP, "
                    "occlusion and RISE are capped at 2)")
    ap.add_argument("--baseline", default=None, help="a git revision to time in the same run")
    ap.add_argument("--quick", action="store_true", help="fewer samples for LIME / KernelSHAP")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="folder for <device>.json and <device>.md")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.worker:
        dev = torch.device(args.device)
        rows = [r for m in MODELS for r in methods_and_metrics(m, dev, args.images, args.quick)]
        print(json.dumps(rows))
        return
    devices = ([torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
               if args.device == "auto" else [models.resolve_device(args.device)])
    for dev in devices:
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
        res = dict(env=dict(torch=torch.__version__, threads=torch.get_num_threads(),
                            machine=platform.machine(), date=time.strftime("%Y-%m-%d"),
                            device_name=torch.cuda.get_device_name() if dev.type == "cuda"
                            else f"CPU ({platform.processor() or platform.machine()})"),
                   baseline=args.baseline)
        # Timings on a shared machine drift by 10-20 % over minutes: with a baseline, the two
        # codes are measured in alternation, twice each, and the faster of the two runs is kept.
        rounds = 2 if args.baseline else 1
        rows = {}
        for k in range(rounds):
            if args.baseline:
                print(f"== {dev}: baseline {args.baseline} (round {k + 1} of {rounds})", flush=True)
                for r in baseline_rows(args.baseline, dev, args.images, args.quick):
                    row = rows.setdefault((r["model"], r["name"]), {})
                    if r["fast"] < row.get("baseline", float("inf")):
                        row.update(baseline=r["fast"], baseline_model_s=r["fast_model_s"])
            print(f"== {dev}: methods and metrics (round {k + 1} of {rounds})", flush=True)
            for r in (r for m in MODELS for r in methods_and_metrics(m, dev, args.images, args.quick)):
                row = rows.setdefault((r["model"], r["name"]), {})
                for label in ("eager", "fast"):
                    if r[label] < row.get(label, float("inf")):
                        row.update({label: r[label], f"{label}_model_s": r[f"{label}_model_s"]})
                row.update({k2: r[k2] for k2 in ("model", "kind", "name", "images", "rows")})
        res["rows"] = list(rows.values())
        res["floor"] = {m: forward_floor(models.load_model(m, device=str(dev)), dev) for m in MODELS}
        if not args.no_peers:
            print(f"== {dev}: peers", flush=True)
            res["peers"] = [r for m in MODELS for r in peers(m, dev)]
        md = markdown(res)
        print(md, flush=True)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{dev.type}.json").write_text(json.dumps(res, indent=1) + "\n")
            (args.out / f"{dev.type}.md").write_text(md)


if __name__ == "__main__":
    main()
