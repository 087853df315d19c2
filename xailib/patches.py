"""Universal targeted adversarial patches (Brown et al., 2017): training, placement, files.

Brown et al. train one patch that, pasted anywhere on any image, makes the network predict a
chosen target class. The patch ``p`` maximises the expected log-probability of the target over
images ``x``, locations ``l`` and transformations ``t`` (rotation, scale):
``p* = argmax_p E_{x, t, l} [log Pr(target | A(p, x, l, t))]``, where ``A`` pastes the
transformed patch onto the image. Here: plain gradient ascent with Adam on the patch's pixels,
kept in [0, 1] after every step, each step over a batch of training images with their own
random scale, rotation and position (expectation over transformation).

Why this is written by hand: none of the libraries the book depends on has it. captum's
``captum.robust`` offers FGSM, PGD (per-image, norm-bounded perturbations of the whole input),
``AttackComparator`` and ``MinParamPerturbation`` (which evaluate given perturbations), but no
universal patch and no expectation over transformation; torchvision, lime and shap have no
attacks at all. (The Adversarial Robustness Toolbox has an implementation, but it is not among
the book's dependencies.)

Geometry. A patch is a (3, P, P) image; its footprint is a disc (``shape="circle"``, Brown et
al.'s round patch, the default) or a square inscribed in that image. Placing it at centre
``(cx, cy)`` (pixel units; pixel ``(i, j)`` spans ``[j, j+1) x [i, i+1)``, centre at
``(j + 0.5, i + 0.5)``), side or diameter ``d`` pixels and angle ``theta`` (counter-clockwise as
displayed, y pointing down) covers exactly the pixels whose centres fall inside the rotated
footprint; each of them takes the patch's colour sampled bilinearly at the inverse-rotated,
inverse-scaled position. The returned mask is that exact set of pixels, which is what Impact
Coverage compares critical regions with.

Scale. Brown et al. give the patch's scale relative to the image. We read ``scale`` as the
patch's side (the disc's diameter) over the image side (``scale_mode="side"``), so a disc at
scale 0.5 covers pi/16, about 20 % of the image; ``scale_mode="area"`` reads it as the share of
the image's area the footprint covers instead.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import inference
from .errors import MissingResourceError, ParameterError, check_choice, check_positive_int

SHAPES = ("circle", "square")
SCALE_MODES = ("side", "area")
PATCH_DIR = Path(__file__).resolve().parent.parent / "data" / "patches"


@dataclass
class Placement:
    """Per image: footprint size in pixels (diameter / side), angle in radians, centre."""

    size: torch.Tensor    # (B,) float, pixels
    angle: torch.Tensor   # (B,) float, radians
    cx: torch.Tensor      # (B,) float, pixels
    cy: torch.Tensor      # (B,) float, pixels


def footprint_size(scale, image_size: tuple[int, int], shape: str = "circle",
                   scale_mode: str = "side") -> torch.Tensor:
    """Side / diameter in pixels of a patch at ``scale`` on an ``image_size`` (H, W) image."""
    check_choice("shape", shape, SHAPES)
    check_choice("scale_mode", scale_mode, SCALE_MODES)
    s = torch.as_tensor(scale, dtype=torch.float64)
    if (s <= 0).any() or (s > 1).any():
        raise ParameterError(f"scale={scale!r} must be in (0, 1]")
    H, W = image_size
    if scale_mode == "side":
        return s * min(H, W)
    area = s * H * W
    return torch.sqrt(4 * area / math.pi) if shape == "circle" else torch.sqrt(area)


def _half_extent(size: torch.Tensor, shape: str) -> torch.Tensor:
    """Radius of the smallest disc around the centre that holds the footprint at any angle."""
    return size / 2 if shape == "circle" else size / 2 * math.sqrt(2)


def random_placement(n: int, scale, image_size: tuple[int, int], generator: torch.Generator,
                     shape: str = "circle", scale_mode: str = "side",
                     max_angle: float = 180.0) -> Placement:
    """Random angle (uniform in +-``max_angle`` degrees) and centre (uniform over the positions
    where the footprint lies fully inside the image at any angle) for ``n`` images; ``scale`` is
    one number, one per image, or a ``(low, high)`` range drawn uniformly."""
    check_positive_int("n", n)
    H, W = image_size
    if isinstance(scale, tuple) and len(scale) == 2:
        lo, hi = scale
        s = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
    else:
        s = torch.as_tensor(scale, dtype=torch.float64).expand(n).clone()
    size = footprint_size(s, image_size, shape, scale_mode)
    r = _half_extent(size, shape)
    if (2 * r > min(H, W) + 1e-9).any():
        raise ParameterError(f"a {shape} patch at scale {float(s.max()):.3g} ({scale_mode}) does "
                             f"not fit inside a {H}x{W} image at every angle")
    angle = (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * math.radians(max_angle)
    cx = r + (W - 2 * r) * torch.rand(n, generator=generator, dtype=torch.float64)
    cy = r + (H - 2 * r) * torch.rand(n, generator=generator, dtype=torch.float64)
    return Placement(size, angle, cx, cy)


def _local_coords(placement: Placement, image_size, device):
    """Each pixel centre in the patch's own frame, normalised so the footprint spans [-1, 1]."""
    H, W = image_size
    f = torch.float64
    v = (torch.arange(H, device=device, dtype=f) + 0.5).view(1, H, 1)
    u = (torch.arange(W, device=device, dtype=f) + 0.5).view(1, 1, W)
    p = {k: getattr(placement, k).to(device, f).view(-1, 1, 1) for k in ("size", "angle", "cx", "cy")}
    dx, dy = u - p["cx"], v - p["cy"]
    c, s = torch.cos(p["angle"]), torch.sin(p["angle"])
    # rotating the patch by +angle (counter-clockwise on screen, where y points down) means a
    # pixel's patch coordinates are its offset rotated by -angle in that frame
    qx = c * dx - s * dy
    qy = s * dx + c * dy
    half = p["size"] / 2
    return qx / half, qy / half


def footprint(placement: Placement, image_size: tuple[int, int], shape: str = "circle",
              device=None) -> torch.Tensor:
    """(B, H, W) bool: the pixels whose centres lie inside each placed footprint."""
    check_choice("shape", shape, SHAPES)
    nx, ny = _local_coords(placement, image_size, device or placement.size.device)
    if shape == "circle":
        return nx * nx + ny * ny <= 1.0
    return torch.maximum(nx.abs(), ny.abs()) <= 1.0


def apply_patch(images: torch.Tensor, patch: torch.Tensor, placement: Placement,
                shape: str = "circle") -> tuple[torch.Tensor, torch.Tensor]:
    """Paste ``patch`` (3, P, P) onto ``images`` (B, 3, H, W): (patched images, mask (B, H, W)).

    Differentiable with respect to ``patch`` (the mask is fixed by the placement).
    """
    if images.ndim != 4 or patch.ndim != 3 or patch.shape[0] != images.shape[1]:
        raise ParameterError(f"images must be (B, 3, H, W) and patch (3, P, P); got "
                             f"{tuple(images.shape)} and {tuple(patch.shape)}")
    if len(placement.size) != len(images):
        raise ParameterError(f"placement is for {len(placement.size)} images, got {len(images)}")
    check_choice("shape", shape, SHAPES)
    dev = images.device
    H, W = images.shape[-2:]
    nx, ny = _local_coords(placement, (H, W), dev)
    mask = (nx * nx + ny * ny <= 1.0) if shape == "circle" else (torch.maximum(nx.abs(), ny.abs()) <= 1.0)
    grid = torch.stack([nx, ny], -1).to(patch.dtype)
    src = patch.to(dev)[None].expand(len(images), -1, -1, -1)
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = torch.where(mask[:, None], warped.to(images.dtype), images)
    return out, mask


def patch_images(images: torch.Tensor, patch: torch.Tensor, scale, generator: torch.Generator,
                 shape: str = "circle", scale_mode: str = "side", max_angle: float = 180.0):
    """Random translation and rotation at ``scale``: (patched, mask, placement)."""
    pl = random_placement(len(images), scale, tuple(images.shape[-2:]), generator, shape,
                          scale_mode, max_angle)
    out, mask = apply_patch(images, patch, pl, shape)
    return out, mask, pl


# --------------------------------------------------------------------------------------------
# Training (expectation over transformation)
# --------------------------------------------------------------------------------------------

@dataclass
class PatchConfig:
    """Everything that determines a trained patch (saved in its JSON card)."""

    target: int
    patch_size: int = 32
    shape: str = "circle"
    scale_mode: str = "side"
    scale_range: tuple = (0.3, 0.7)
    max_angle: float = 180.0
    steps: int = 600
    batch_size: int = 32
    lr: float = 0.05
    seed: int = 0


def train_patch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: PatchConfig,
                progress: bool = False) -> tuple[torch.Tensor, dict]:
    """Train a universal targeted patch on ``images`` (N, 3, H, W; images of the target class are
    left out). Returns the patch (3, P, P) in [0, 1] on the CPU and a training log."""
    check_positive_int("patch_size", config.patch_size, minimum=2)
    check_positive_int("steps", config.steps)
    check_positive_int("batch_size", config.batch_size)
    check_choice("shape", config.shape, SHAPES)
    check_choice("scale_mode", config.scale_mode, SCALE_MODES)
    lo, hi = config.scale_range
    if not 0 < lo <= hi <= 1:
        raise ParameterError(f"scale_range={config.scale_range!r} must satisfy 0 < low <= high <= 1")
    dev = inference.model_device(model, fallback=images.device)
    pool = images[labels != config.target]
    if len(pool) == 0:
        raise ParameterError("no training image outside the target class")
    g = torch.Generator().manual_seed(config.seed)
    patch = torch.rand(3, config.patch_size, config.patch_size, generator=g).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([patch], lr=config.lr)
    was_training = model.training
    model.eval()
    losses, hits = [], []
    steps = range(config.steps)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="patch", leave=False)
    t0 = time.perf_counter()
    try:
        for _ in steps:
            idx = torch.randint(len(pool), (config.batch_size,), generator=g)
            x = pool[idx].to(dev, torch.float32)
            pl = random_placement(len(x), (lo, hi), tuple(x.shape[-2:]), g, config.shape,
                                  config.scale_mode, config.max_angle)
            xp, _ = apply_patch(x, patch, pl, config.shape)
            logits = model(xp)
            if not 0 <= config.target < logits.shape[1]:
                    raise ParameterError(f"target={config.target} is not a class of the model "
                                     f"(0..{logits.shape[1] - 1})")
            target = torch.full((len(x),), config.target, device=dev, dtype=torch.long)
            loss = F.cross_entropy(logits, target)   # = -E[log Pr(target | A(p, x, l, t))]
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                patch.clamp_(0, 1)
            losses.append(loss.item())
            hits.append((logits.argmax(1) == target).float().mean().item())
    finally:
        model.train(was_training)
    k = max(1, len(losses) // 10)
    log = {"final_loss": sum(losses[-k:]) / k, "final_batch_success": sum(hits[-k:]) / k,
           "seconds": time.perf_counter() - t0, "n_train_images": int(len(pool))}
    return patch.detach().cpu(), log


@torch.no_grad()
def attack(model: nn.Module, images: torch.Tensor, patch: torch.Tensor, scale, seed: int,
           shape: str = "circle", scale_mode: str = "side", max_angle: float = 180.0,
           batch_size: int = 256):
    """Patch every image once at ``scale`` (random position and angle from ``seed``).

    Returns (patched images, patch masks, predictions, probabilities) on the CPU.
    """
    g = torch.Generator().manual_seed(seed)
    pl = random_placement(len(images), scale, tuple(images.shape[-2:]), g, shape, scale_mode,
                          max_angle)
    dev = inference.model_device(model, fallback=images.device)
    outs, masks, probs = [], [], []
    for i in range(0, len(images), batch_size):
        sl = slice(i, i + batch_size)
        sub = Placement(pl.size[sl], pl.angle[sl], pl.cx[sl], pl.cy[sl])
        xp, m = apply_patch(images[sl].to(dev, torch.float32), patch.to(dev), sub, shape)
        probs.append(inference.probabilities(model, xp).cpu())
        outs.append(xp.cpu())
        masks.append(m.cpu())
    p = torch.cat(probs)
    return torch.cat(outs), torch.cat(masks), p.argmax(1), p


def drawn_object(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor | None,
                 target: int, size: tuple[int, int]) -> torch.Tensor | None:
    """A drawn object of class ``target`` as a patch texture (3, *size): the first image of that
    class the model names correctly, cropped to its object's box and resized (antialiased). The
    control of an attack: a patch that only draws the target class succeeds about as often as this.
    None where the data has no masks or no such image."""
    if masks is None:
        return None
    named = (labels == target) & (inference.probabilities(model, images).argmax(1).cpu() == target)
    if not named.any():
        return None
    j = int(named.nonzero()[0, 0])
    rows, cols = masks[j].any(1).nonzero()[:, 0], masks[j].any(0).nonzero()[:, 0]
    crop = images[j][:, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return F.interpolate(crop[None].float(), size=tuple(size), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


# --------------------------------------------------------------------------------------------
# Files: data/patches/<model>.pt (the tensor) and <model>.json (the card)
# --------------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_patch(patch: torch.Tensor, card: dict, path: str | Path) -> Path:
    """Write ``<path>.pt`` (the patch tensor) and ``<path>.json`` (its card, with the sha256)."""
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    pt = path.with_suffix(".pt")
    torch.save(patch.detach().cpu().float().contiguous().clone(), pt)
    card = {**card, "file": pt.name, "sha256": _sha256(pt)}
    path.with_suffix(".json").write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
    return pt


def load_patch(name_or_path: str | Path, directory: str | Path | None = None) -> tuple[torch.Tensor, dict]:
    """Load a trained patch and its card (``torch.load(..., weights_only=True)``, sha256 checked).

    ``name_or_path`` is a model name (looked up in ``data/patches/``) or a path without suffix.
    """
    p = Path(name_or_path)
    base = p.with_suffix("") if p.suffix in (".pt", ".json") or p.parent != Path(".") else \
        Path(directory or PATCH_DIR) / p.name
    pt, js = base.with_suffix(".pt"), base.with_suffix(".json")
    missing = [str(f) for f in (pt, js) if not f.exists()]
    if missing:
        out = "" if base.parent.resolve() == PATCH_DIR.resolve() else f" --out {base.parent}"
        raise MissingResourceError(f"trained patch missing: {', '.join(missing)}; run "
                                   f"`python scripts/train_patches.py --models {base.name}{out}` "
                                   "to train it")
    card = json.loads(js.read_text())
    if card.get("sha256") and _sha256(pt) != card["sha256"]:
        raise MissingResourceError(f"{pt} does not match the sha256 in its card {js}; retrain it "
                                   "with scripts/train_patches.py")
    patch = torch.load(pt, map_location="cpu", weights_only=True)
    if not isinstance(patch, torch.Tensor) or patch.ndim != 3 or patch.shape[0] != 3:
        raise ParameterError(f"{pt} does not hold a (3, P, P) patch tensor")
    return patch, card


def config_dict(config: PatchConfig) -> dict:
    d = asdict(config)
    d["scale_range"] = list(d["scale_range"])
    return d
