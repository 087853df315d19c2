"""Figures the chapters share: sample grids with ground truth, saliency galleries, bar charts."""
from __future__ import annotations

import matplotlib.colors as plt_colors
import matplotlib.pyplot as plt
import numpy as np
import torch


def _hwc(img: torch.Tensor) -> np.ndarray:
    return img.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()


def show_samples(data, n: int = 16, ncols: int = 8, ground_truth: bool = True):
    """A grid of the first ``n`` images, titled by class, with object outline and box."""
    n = min(n, len(data))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.75 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in zip(range(n), axes.flat):
        ax.imshow(_hwc(data.images[i]), interpolation="nearest")
        ax.set_title(data.class_names[int(data.labels[i])], fontsize=9)
        if ground_truth and data.masks is not None:
            ax.contour(data.masks[i].numpy(), [0.5], colors="white", linewidths=0.8)
        if ground_truth and data.boxes is not None:
            for x0, y0, x1, y1 in data.boxes[i].tolist():
                ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                           ec="yellow", lw=1))
    fig.tight_layout()
    return fig


def _display_map(ax, s: np.ndarray):
    """Signed maps on a diverging scale centred at 0; non-negative ones on a sequential scale
    from their 0.5th to their 99.5th percentile (RISE maps carry a large constant offset, the
    mean probability). Clipping keeps one hot pixel from washing out the rest."""
    if s.min() < 0:
        lim = np.percentile(np.abs(s), 99.5) or 1.0
        return ax.imshow(s, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    lo, hi = np.percentile(s, [0.5, 99.5])
    return ax.imshow(s, cmap="magma", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")


def _image_grid(images, names, draw, row_titles=None, cell: float = 1.45, row_height=None,
                first_title: str = "image", label_size: int = 8, draw_first=None):
    """Rows: images; first column the image, then one panel per name drawn by
    ``draw(ax, row, name)``. The scaffolding shared by the galleries below."""
    n = len(images)
    h = (row_height or cell) * n + (0.3 if row_height else 0.4)
    fig, axes = plt.subplots(n, len(names) + 1, figsize=(cell * (len(names) + 1), h), squeeze=False)
    for r in range(n):
        axes[r, 0].imshow(_hwc(images[r]), interpolation="nearest")
        if draw_first is not None:
            draw_first(axes[r, 0], r)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=label_size)
        for c, name in enumerate(names, start=1):
            draw(axes[r, c], r, name)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title(first_title, fontsize=8)
    for c, name in enumerate(names, start=1):
        axes[0, c].set_title(name.replace("_", " "), fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def saliency_gallery(images: torch.Tensor, maps: dict, row_titles=None, masks=None,
                     cell: float = 1.45):
    """Rows: images; columns: the image, then one saliency map per method (``maps[name]``)."""
    def draw(ax, r, name):
        _display_map(ax, maps[name][r].detach().cpu().float().numpy())
        if masks is not None:
            ax.contour(masks[r].cpu().numpy(), [0.5], colors="lime", linewidths=0.6)
    return _image_grid(images, list(maps), draw, row_titles, cell)


def bar_chart(table, column: str, xlabel: str, log: bool = False):
    """Horizontal bars of ``table[column]`` per row, one colour per column level 0 group."""
    ax = table[column].unstack(0).plot.barh(figsize=(7, 0.32 * len(table) + 1), logx=log)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("")
    ax.legend(title=None, fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


# --- Impact Score and adversarial patches

def confidence_bars(ax, probs_a, probs_b, class_names, labels=("with", "without"), k: int = 5,
                    mark=None):
    """Grouped horizontal bars of two probability vectors over the ``k`` classes that are most
    probable in either; ``mark`` (a class index) is drawn in bold."""
    a = probs_a.detach().cpu().double().numpy()
    b = probs_b.detach().cpu().double().numpy()
    top = np.argsort(-np.maximum(a, b), kind="stable")[:k][::-1]
    pos = np.arange(len(top))
    ax.barh(pos + 0.2, a[top], height=0.4, color="tab:blue", label=labels[0])
    ax.barh(pos - 0.2, b[top], height=0.4, color="tab:orange", label=labels[1])
    ax.set_yticks(pos)
    ax.set_yticklabels([class_names[i] for i in top], fontsize=8)
    for t, i in zip(ax.get_yticklabels(), top):
        if mark is not None and i == mark:
            t.set_fontweight("bold")
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def before_after(image_a, image_b, probs_a, probs_b, class_names, titles=("image", "changed"),
                 labels=("with", "without"), outline=None, mark=None, suptitle=None):
    """Three panels (the paper's Fig. 1 and Fig. 2): an image, its changed copy (``outline``:
    a (H, W) mask drawn on it), and the confidences of the two."""
    fig, axes = plt.subplots(1, 3, figsize=(8.2, 2.7), gridspec_kw={"width_ratios": [1, 1, 1.35]})
    for ax, img, title in zip(axes[:2], (image_a, image_b), titles):
        ax.imshow(_hwc(img), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if outline is not None:
        axes[1].contour(outline.cpu().numpy().astype(float), [0.5], colors="yellow", linewidths=0.8)
    confidence_bars(axes[2], probs_a, probs_b, class_names, labels, mark=mark)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.9))
    else:
        fig.tight_layout()
    return fig


def impact_examples(images, removed: dict, regions: dict, outcomes: dict, class_names,
                    row_titles=None, cell: float = 1.55):
    """The paper's Fig. 3: rows are images; columns the image, then for each method the image
    without its critical region (outlined in yellow), captioned with the decision and the
    confidence in it before -> after. Red captions: the removal had impact (eq. 5)."""
    def draw(ax, r, name):
        out = outcomes[name]
        ax.imshow(_hwc(removed[name][r]), interpolation="nearest")
        ax.contour(regions[name][r].cpu().numpy().astype(float), [0.5], colors="yellow",
                   linewidths=0.4, alpha=0.7)
        y, y2 = int(out.decision[r]), int(out.new_decision[r])
        text = f"{float(out.confidence[r]):.2f} → {float(out.new_confidence[r]):.2f}"
        if y2 != y:
            text += f"\nnow: {class_names[y2]}"
        ax.set_xlabel(text, fontsize=7, color="tab:red" if bool(out.impact[r]) else "black")
    return _image_grid(images, list(removed), draw, row_titles, cell, row_height=cell + 0.45)


def patch_regions(images, patch_masks, regions: dict, row_titles=None, cell: float = 1.45):
    """The paper's Fig. 4: rows are patched images; columns the image, then each method's
    critical region (bright; the rest dimmed) with the patch's outline in yellow."""
    def outline(r):
        return patch_masks[r].cpu().numpy().astype(float)

    def draw(ax, r, name):
        img, keep = _hwc(images[r]), regions[name][r].cpu().numpy()[..., None]
        ax.imshow(np.where(keep, img, 0.25 * img), interpolation="nearest")
        ax.contour(outline(r), [0.5], colors="yellow", linewidths=0.7)
    return _image_grid(images, list(regions), draw, row_titles, cell, first_title="patched image",
                       label_size=7, draw_first=lambda ax, r: ax.contour(
                           outline(r), [0.5], colors="yellow", linewidths=0.7))


def score_heatmap(table, title: str = "", fmt: str = "{:.0f}", scale: float = 100.0, cmap="viridis"):
    """A (rows x columns) table of scores as an annotated heat map (values times ``scale``)."""
    vals = table.to_numpy(dtype=float) * scale
    fig, ax = plt.subplots(figsize=(0.75 * vals.shape[1] + 2.6, 0.3 * vals.shape[0] + 1.2))
    im = ax.imshow(vals, cmap=cmap, aspect="auto", vmin=0, vmax=scale)
    ax.set_xticks(range(vals.shape[1]))
    ax.set_xticklabels([str(c) for c in table.columns], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(vals.shape[0]))
    ax.set_yticklabels([str(i).replace("_", " ") for i in table.index], fontsize=8)
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            ax.text(j, i, fmt.format(vals[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if vals[i, j] < 0.6 * scale else "black")
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


VERDICT_COLOURS = {"holds": "#1b9e77", "does not hold": "#d95f02", "not resolved": "#d9d9d9",
                   "no verdict (degenerate setting)": "#ffffff"}


def verdict_grid(panels: dict, title: str = "", fmt: str = "{:+.0f}", scale: float = 100.0):
    """Verdicts over a grid of settings, one panel per ``{name: (verdicts, gaps)}``: two tables of
    the same shape (rows: methods, columns: settings), the cell coloured by its verdict and
    labelled with its gap (times ``scale``); a degenerate cell is left white and marked "deg."."""
    from matplotlib.patches import Patch
    first = next(iter(panels.values()))[0]
    fig, axes = plt.subplots(1, len(panels), sharey=True, squeeze=False,
                             figsize=(0.62 * first.shape[1] * len(panels) + 2.8, 0.3 * first.shape[0] + 1.9))
    for ax, (name, (verdict, gap)) in zip(axes[0], panels.items()):
        colours = [[plt_colors.to_rgb(VERDICT_COLOURS.get(v, "#ffffff")) for v in row] for row in verdict.to_numpy()]
        ax.imshow(colours, aspect="auto")
        for i in range(verdict.shape[0]):
            for j in range(verdict.shape[1]):
                v, g = verdict.iat[i, j], gap.iat[i, j]
                text = "deg." if v.startswith("no verdict") else ("" if not np.isfinite(g) else fmt.format(scale * g))
                ax.text(j, i, text, ha="center", va="center", fontsize=6.5)
        ax.set_xticks(range(verdict.shape[1]))
        ax.set_xticklabels([str(c) for c in verdict.columns], rotation=40, ha="right", fontsize=7.5)
        ax.set_yticks(range(verdict.shape[0]))
        ax.set_yticklabels([str(i).replace("_", " ") for i in verdict.index], fontsize=7.5)
        ax.set_title(name, fontsize=8.5)
    fig.legend(handles=[Patch(facecolor=c, edgecolor="0.6", label=v) for v, c in VERDICT_COLOURS.items()],
               loc="lower center", ncol=4, fontsize=7.5, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title, fontsize=9.5)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


# --- RISE: deletion / insertion curves and the number of masks

def causal_curves(fractions, curves: dict, title: str = "", highlight=("rise",)):
    """Mean deletion and insertion curves per method: ``curves[name]`` is (N, 2, steps + 1)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, k, label in zip(axes, (0, 1), ("deletion (lower AUC is better)",
                                          "insertion (higher AUC is better)")):
        for name, c in curves.items():
            bold = any(name.startswith(h) for h in highlight)
            ax.plot(fractions, c[:, k].mean(0), lw=2.2 if bold else 1.0,
                    alpha=1.0 if bold else 0.75, label=name.replace("_", " "))
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("fraction of pixels changed, most salient first")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("probability of the explained class")
    axes[1].legend(fontsize=7, ncol=2, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def example_curves(image, saliency, fractions, curve, title=""):
    """The paper's Fig. 4 layout: image, saliency map, deletion curve, insertion curve."""
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.6))
    axes[0].imshow(_hwc(image), interpolation="nearest")
    _display_map(axes[1], saliency.detach().cpu().float().numpy())
    for ax in axes[:2]:
        ax.axis("off")
    for ax, k, name in zip(axes[2:], (0, 1), ("deletion", "insertion")):
        y = curve[k].numpy()
        ax.fill_between(fractions, y, alpha=0.3)
        ax.plot(fractions, y)
        area = float(np.trapezoid(y, fractions))
        ax.set_title(f"{name}: AUC {area:.3f}", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("fraction of pixels", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def mask_sweep(table):
    """RISE against the number of masks: seconds per image, agreement with a reference map,
    deletion and insertion (``table`` indexed by N)."""
    cols = [c for c in table.columns]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.1 * len(cols), 2.8))
    for ax, c in zip(axes, cols):
        ax.plot(table.index, table[c], "o-")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(list(table.index), [str(n) for n in table.index], fontsize=7, rotation=45)
        ax.set_xlabel("number of masks N")
        ax.set_title(c, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def variant_grid(sets: dict, n: int = 6, cell: float = 1.35):
    """One row per image set (``{title: ImageSet}``), its first ``n`` images with the target's
    outline (white), another object's outline (cyan, ``info["other_masks"]``) and a trojan
    trigger (yellow, ``info["trigger_masks"]``); titles are the class (and scene) names."""
    fig, axes = plt.subplots(len(sets), n, figsize=(cell * n, (cell + 0.25) * len(sets)), squeeze=False)
    for r, (title, s) in enumerate(sets.items()):
        info = s.info or {}
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(s):
                ax.axis("off")
                continue
            ax.imshow(_hwc(s.images[c]), interpolation="nearest")
            for key, colour in (("masks", "white"), ("other_masks", "cyan"), ("trigger_masks", "yellow")):
                m = s.masks if key == "masks" else info.get(key)
                if m is not None and m[c].any():
                    ax.contour(m[c].numpy(), [0.5], colors=colour, linewidths=0.7)
            name = s.class_names[int(s.labels[c])]
            if "scene_labels" in info:
                name += f" / {info['scene_classes'][int(info['scene_labels'][c])]}"
            ax.set_title(name, fontsize=7)
        axes[r, 0].set_ylabel(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


# --- NeuroMask

def learning_progress(images, snapshots: dict, history: dict, setting, row_titles=None, cell: float = 1.3,
                      title: str = ""):
    """The paper's Fig. 4 with its loss terms: per image, the mask at the recorded iterations,
    then each weighted loss term (and the total) over the iterations."""
    steps = sorted(snapshots)
    n = len(images)
    fig, axes = plt.subplots(n, len(steps) + 2, figsize=(cell * (len(steps) + 1) + 3.2, cell * n + 0.4),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * (len(steps) + 1) + [2.4]})
    weights = {"pred": setting.lambda_p, "sparse": setting.lambda_sp, "smooth": setting.lambda_sm}
    for r in range(n):
        axes[r, 0].imshow(_hwc(images[r]), interpolation="nearest")
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=8)
        for c, step in enumerate(steps, start=1):
            axes[r, c].imshow(snapshots[step][r].numpy(), cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            if r == 0:
                axes[r, c].set_title(f"step {step}", fontsize=8)
        for ax in axes[r, :-1]:
            ax.set_xticks([])
            ax.set_yticks([])
        ax = axes[r, -1]
        for k, w in weights.items():
            ax.plot((w * history[k][r]).numpy(), lw=1, label=f"λ {k}")
        ax.plot(history["total"][r].numpy(), lw=1.2, color="k", label="total")
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
        if r == 0:
            ax.legend(fontsize=6, ncol=2, loc="upper right")
            ax.set_title("weighted loss terms", fontsize=8)
        if r == n - 1:
            ax.set_xlabel("iteration", fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 0.9 if title else 1))
    return fig


def sweep_heatmaps(table, metrics: dict, x: str, y: str, title: str = ""):
    """One small heat map per score (``metrics``: column -> label) over two swept parameters."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.3 * len(metrics), 2.3), squeeze=False)
    for ax, (col, label) in zip(axes[0], metrics.items()):
        grid = table.pivot_table(index=y, columns=x, values=col)
        im = ax.imshow(grid.to_numpy(), cmap="viridis", origin="lower")
        ax.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns], fontsize=7)
        ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index], fontsize=7)
        ax.set_xlabel(x, fontsize=8)
        ax.set_ylabel(y, fontsize=8)
        ax.set_title(label, fontsize=8)
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, f"{grid.iat[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.4, rect=(0, 0, 1, 0.88 if title else 1))
    return fig


# --- Sanity checks

def cascade_grid(image: torch.Tensor, maps: dict, methods, steps, title: str = "", cell: float = 0.82):
    """Adebayo et al.'s cascading figure for one image: rows are methods, columns the trained model
    and then the layers randomised so far (``steps``: [(index, label)], index 0 the trained model);
    ``maps[(step index, method)]`` is a (H, W) map, shown as its absolute value."""
    cols = len(steps) + 1
    fig, axes = plt.subplots(len(methods), cols, figsize=(cell * cols, cell * len(methods) + 0.9), squeeze=False)
    for r, method in enumerate(methods):
        axes[r, 0].imshow(_hwc(image), interpolation="nearest")
        axes[r, 0].set_ylabel(method.replace("_", " "), fontsize=7, rotation=0, ha="right", va="center")
        for c, (index, _) in enumerate(steps, start=1):
            s = np.abs(maps[index, method].detach().cpu().float().numpy())
            _display_map(axes[r, c], s)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=7)
    for c, (_, label) in enumerate(steps, start=1):
        axes[0, c].set_title(label, fontsize=6, rotation=60, ha="left", va="bottom")
    if title:
        fig.suptitle(title, fontsize=9, y=0.995)
    fig.tight_layout(pad=0.2)
    return fig


def randomisation_curves(summary, model: str, methods, layer_labels, measure_label: str, threshold=None,
                         ncols: int = 3):
    """One panel per method: the mean similarity (with its interval) to the trained model's map
    after each step of the cascading (solid) and independent (dashed) tests, the noise floor (grey
    band: two random networks) and the ceiling (green band: the method against itself with
    another seed). ``summary`` is :func:`xailib.chapters.sanity_checks.summary`'s table."""
    rows = (len(methods) + ncols - 1) // ncols
    fig, axes = plt.subplots(rows, ncols, figsize=(3.3 * ncols, 2.5 * rows + 0.6), squeeze=False, sharey=True)
    s = summary[summary.model == model]
    x = np.arange(1, len(layer_labels) + 1)
    for ax, method in zip(axes.flat, methods):
        m = s[s.method == method]
        for test, style in (("cascading", "-"), ("independent", "--")):
            t = m[m.test == test].sort_values("step")
            if len(t):
                ax.plot(t.step, t["mean"], style, marker="o", ms=3, lw=1.2, label=test)
                ax.fill_between(t.step, t.low, t.high, alpha=0.2)
        for test, colour, label in (("floor", "0.5", "floor"), ("ceiling", "tab:green", "ceiling")):
            ref = m[m.test == test]
            if len(ref):
                r = ref.iloc[0]
                ax.axhspan(r.low if np.isfinite(r.low) else r["mean"], r.high if np.isfinite(r.high) else r["mean"],
                           color=colour, alpha=0.25, lw=0, label=label)
                ax.axhline(r["mean"], color=colour, lw=0.8)
        if threshold is not None:
            ax.axhline(threshold, color="tab:red", lw=0.8, ls=":", label="threshold")
        ax.set_title(method.replace("_", " "), fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(layer_labels, rotation=70, fontsize=6)
        ax.set_ylim(-0.3, 1.05)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(methods):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(measure_label, fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.suptitle(f"{model}: similarity to the trained model's map as layers are randomised "
                 "(from the output layer down)", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    return fig


def paired_maps(images, maps: dict, methods, pair=("trained", "permuted labels"), cell: float = 0.95):
    """Two rows per image (``maps[(pair[0], method)]`` and ``maps[(pair[1], method)]``, each
    (n, H, W)), one column per method, maps in absolute value: the data-randomisation gallery."""
    n = len(images)
    rows = torch.stack([images[i] for i in range(n) for _ in pair])

    def draw(ax, r, method):
        _display_map(ax, np.abs(maps[pair[r % 2], method][r // 2].detach().cpu().float().numpy()))
    titles = [f"image {i}\n{p}" for i in range(n) for p in pair]
    return _image_grid(rows, list(methods), draw, titles, cell, label_size=7)


def _rect(ax, box, colour, style="-"):
    x0, y0, x1, y1 = [float(v) for v in box]
    if x1 > x0 and y1 > y0:
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1.2, ls=style))


def wsol_boxes(images, maps: dict, gt_boxes, threshold: float, row_titles=None, cell: float = 1.3):
    """Rows: images; columns: methods. Each panel: the normalised map (positive part, min-max),
    the region at or above ``threshold`` outlined, the box around its largest connected
    component (solid), around all of it (dashed), and the ground-truth box (white)."""
    from .metrics import localisation as loc
    names = list(maps)
    norm = {m: loc.normalise(maps[m]).numpy() for m in names}
    boxes = {(m, c): loc.boxes(maps[m], threshold, c) for m in names for c in ("largest", "all")}

    def draw(ax, r, m):
        ax.imshow(norm[m][r], cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        ax.contour(norm[m][r] > threshold, [0.5], colors="cyan", linewidths=0.6)
        _rect(ax, boxes[m, "largest"][r], "lime")
        _rect(ax, boxes[m, "all"][r], "orange", "--")
        for b in torch.as_tensor(gt_boxes[r]).reshape(-1, 4).tolist():
            _rect(ax, b, "white", ":")
    return _image_grid(images, names, draw, row_titles, cell, label_size=7)


def threshold_curves(table, title: str = "", highlight=("random", "constant", "ground-truth mask")):
    """Box accuracy (rows of ``table``: methods; columns: thresholds) against the threshold, one
    line per method; the references dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for m, row in table.iterrows():
        ref = m in highlight
        ax.plot(table.columns, 100 * row.to_numpy(), ls="--" if ref else "-", lw=1.0 if ref else 1.4,
                label=str(m).replace("_", " "), color="grey" if m in ("random", "constant") else None)
    ax.axvline(0.2, color="k", lw=0.6, ls=":")
    ax.set_xlabel("threshold (share of the map's maximum)")
    ax.set_ylabel("box accuracy (IoU >= 0.5), %")
    ax.set_ylim(-2, 102)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2, frameon=False, loc="upper right")
    fig.tight_layout()
    return fig


PAGE_WIDTH = 7.5      # inches: the book's column, where a figure is shown at about its own size


def rank_heatmap(ranks, metric: str, title: str = "", order=None, columns: str = "operator",
                 panel: str = "{model}: rank by {metric}", flagged=(), marked=()):
    """Methods (rows, in ``order`` when given) x ``columns`` (removal operators, or metrics) per
    model, one model under the other at the page's width: each cell the method's rank under
    ``metric`` (1 = best) and, where the cell is wide enough to print it at a readable size, its
    bootstrap interval (else the rank alone, said in the title); colour by rank. Column labels in
    ``flagged`` get a flag; (model, method) rows in ``marked`` (an approximation) are labelled so."""
    models = list(dict.fromkeys(ranks.model))
    n_cols, n_rows = ranks[columns].nunique(), ranks.method.nunique()
    cell = (PAGE_WIDTH - 1.7) / max(n_cols, 1)         # inches per column, beside the method names
    with_interval = cell >= 0.55                       # "[10.5-14]" at 7 pt needs about half an inch
    fig, axes = plt.subplots(len(models), 1, squeeze=False, figsize=(
        PAGE_WIDTH, len(models) * (0.9 + (0.85 if n_cols >= 8 else 0.4) + (0.34 if with_interval else 0.24) * n_rows)))
    axes = axes[:, 0]
    for ax, model in zip(axes, models):
        g = ranks[ranks.model == model]
        ops = list(dict.fromkeys(g[columns]))
        methods = [m for m in (order or []) if m in set(g.method)] + sorted(set(g.method) - set(order or []))
        r = g.pivot(index="method", columns=columns, values="rank").reindex(index=methods, columns=ops)
        lo = g.pivot(index="method", columns=columns, values="low").reindex(index=methods, columns=ops)
        hi = g.pivot(index="method", columns=columns, values="high").reindex(index=methods, columns=ops)
        worst = np.nanmax(r.to_numpy(dtype=float)) if r.notna().any().any() else len(methods)
        ax.imshow(r.to_numpy(dtype=float), cmap="viridis_r", aspect="auto", vmin=1, vmax=worst)
        for i in range(len(methods)):
            for j in range(len(ops)):
                v = r.iat[i, j]
                if np.isfinite(v):
                    text = f"{v:g}\n[{lo.iat[i, j]:g}-{hi.iat[i, j]:g}]" if with_interval else f"{v:g}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=7,
                            color="black" if v < 0.6 * worst else "white")
        ax.set_xticks(range(len(ops)), [str(o).replace("_", " ") + (" (flagged)" if o in flagged else "")
                                        for o in ops], fontsize=8, rotation=0 if n_cols < 8 else 60,
                      ha="center" if n_cols < 8 else "right")
        ax.set_yticks(range(len(methods)), [m.replace("_", " ") + (" (approx.)" if (model, m) in marked else "")
                                            for m in methods], fontsize=8)
        ax.set_title(panel.format(model=model, metric=metric), fontsize=9)
    if title or not with_interval:
        fig.suptitle(title + ("" if with_interval else "\n(ranks only: their intervals are in the tables)"),
                     fontsize=10)
    fig.tight_layout()
    return fig


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


def roar_curves(roar, control: str = "random"):
    """Accuracy of the retrained network against the share of pixels removed, one line per method
    (the random control dashed), from ``scripts/roar.py``'s table."""
    import pandas as pd
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    base = roar[roar.fraction == 0]
    for m, g in roar[roar.fraction > 0].groupby("method", sort=False):
        g = pd.concat([base, g]).sort_values("fraction")
        ax.plot(100 * g.fraction, 100 * g.accuracy, marker="o", ms=3, ls="--" if m == control else "-",
                color="grey" if m == control else None, label=m.replace("_", " "))
    ax.set_xlabel("top k % of pixels removed (each method's own), retrained")
    ax.set_ylabel("test accuracy, %")
    ax.set_ylim(0, 102)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def sensitivity_n_curves(rows, controls=("random", "constant", "edge")):
    """Mean sensitivity-n correlation against n (share of the features), one panel per model."""
    models = list(dict.fromkeys(rows.model))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.2), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        g = rows[rows.model == model].groupby(["method", "share"], sort=False).correlation.mean().reset_index()
        for m, h in g.groupby("method", sort=False):
            ctrl = m in controls
            ax.plot(100 * h.share, h.correlation, marker="o", ms=2.5, ls="--" if ctrl else "-",
                    color="grey" if ctrl else None, lw=1.0 if ctrl else 1.4, label=m.replace("_", " "))
        ax.set_xscale("log")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("n, % of the features removed")
        ax.set_title(model, fontsize=8)
    axes[0, 0].set_ylabel("correlation (sum of attributions, output change)")
    axes[0, -1].legend(fontsize=6, ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def removal_row(image: torch.Tensor, region: torch.Tensor, removed: dict, cell: float = 1.5):
    """One image, the removed region, and the image after each operator (``{name: (1, C, H, W)}``)."""
    n = 2 + len(removed)
    fig, axes = plt.subplots(1, n, figsize=(cell * n, cell + 0.3))
    axes[0].imshow(_hwc(image))
    axes[0].set_title("image", fontsize=8)
    axes[1].imshow(region.cpu().numpy(), cmap="gray")
    axes[1].set_title("removed (white)", fontsize=8)
    for ax, (name, x) in zip(axes[2:], removed.items()):
        ax.imshow(_hwc(x[0]))
        ax.set_title(name.replace("_", " "), fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig
