"""Figures more than one chapter draws, and the pieces every figure is built from: sample grids with
ground truth, saliency galleries, image grids, heat maps of scores, verdicts and ranks. A figure
only one chapter draws lives in that chapter's plumbing (:mod:`xailib.chapters`)."""
from __future__ import annotations

import matplotlib.colors as plt_colors
import matplotlib.pyplot as plt
import numpy as np
import torch

from ._moved import names_getattr


def to_hwc(img: torch.Tensor) -> np.ndarray:
    """A (3, H, W) image as an (H, W, 3) array in [0, 1] for imshow."""
    return img.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()


def show_samples(data, n: int = 16, ncols: int = 8, ground_truth: bool = True):
    """A grid of the first ``n`` images, titled by class, with object outline and box."""
    n = min(n, len(data))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.75 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in zip(range(n), axes.flat):
        ax.imshow(to_hwc(data.images[i]), interpolation="nearest")
        ax.set_title(data.class_names[int(data.labels[i])], fontsize=9)
        if ground_truth and data.masks is not None:
            ax.contour(data.masks[i].numpy(), [0.5], colors="white", linewidths=0.8)
        if ground_truth and data.boxes is not None:
            for x0, y0, x1, y1 in data.boxes[i].tolist():
                ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                           ec="yellow", lw=1))
    fig.tight_layout()
    return fig


def pooled(s: torch.Tensor, size: int) -> torch.Tensor:
    """A 2-D map average-pooled by the smallest whole factor that brings it to at most ``size`` px
    (the last window cut short): small enough to commit as a table and draw again."""
    s = s.detach().cpu().float()
    factor = max(1, -(-s.shape[-1] // size))
    return torch.nn.functional.avg_pool2d(s[None, None], factor, ceil_mode=True)[0, 0] if factor > 1 else s


def show_map(ax, s: np.ndarray):
    """Signed maps on a diverging scale centred at 0; non-negative ones on a sequential scale
    from their 0.5th to their 99.5th percentile (RISE maps carry a large constant offset, the
    mean probability). Clipping keeps one hot pixel from washing out the rest."""
    if s.min() < 0:
        lim = np.percentile(np.abs(s), 99.5) or 1.0
        return ax.imshow(s, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    lo, hi = np.percentile(s, [0.5, 99.5])
    return ax.imshow(s, cmap="magma", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")


def image_grid(images, names, draw, row_titles=None, cell: float = 1.45, row_height=None,
                first_title: str = "image", label_size: int = 8, draw_first=None):
    """Rows: images; first column the image, then one panel per name drawn by
    ``draw(ax, row, name)``. The scaffolding shared by the galleries below."""
    n = len(images)
    h = (row_height or cell) * n + (0.3 if row_height else 0.4)
    fig, axes = plt.subplots(n, len(names) + 1, figsize=(cell * (len(names) + 1), h), squeeze=False)
    for r in range(n):
        axes[r, 0].imshow(to_hwc(images[r]), interpolation="nearest")
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
        show_map(ax, maps[name][r].detach().cpu().float().numpy())
        if masks is not None:
            ax.contour(masks[r].cpu().numpy(), [0.5], colors="lime", linewidths=0.6)
    return image_grid(images, list(maps), draw, row_titles, cell)


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
        ax.imshow(to_hwc(img), interpolation="nearest")
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
            ax.imshow(to_hwc(s.images[c]), interpolation="nearest")
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


# --- Sanity checks


def paired_maps(images, maps: dict, methods, pair=("trained", "permuted labels"), cell: float = 0.95):
    """Two rows per image (``maps[(pair[0], method)]`` and ``maps[(pair[1], method)]``, each
    (n, H, W)), one column per method, maps in absolute value: the data-randomisation gallery."""
    n = len(images)
    rows = torch.stack([images[i] for i in range(n) for _ in pair])

    def draw(ax, r, method):
        show_map(ax, np.abs(maps[pair[r % 2], method][r // 2].detach().cpu().float().numpy()))
    titles = [f"image {i}\n{p}" for i in range(n) for p in pair]
    return image_grid(rows, list(methods), draw, titles, cell, label_size=7)


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


__getattr__ = names_getattr(__name__)   # the figures of one chapter each moved to xailib.chapters


def top_classes(images, probs, class_names, boxes=None, titles=None, right=None, k: int = 5, ncols: int = 4,
                cell: float = 2.3):
    """Each image (with its object box, yellow) over a bar chart of the network's ``k`` most
    probable classes, ``ncols`` images a row; ``right`` (per image, a bool per class index, or
    None) colours green the bars of classes that count as right."""
    n = len(images)
    rows = -(-n // ncols)
    fig, axes = plt.subplots(2 * rows, ncols, figsize=(cell * ncols, cell * 1.75 * rows), squeeze=False,
                             gridspec_kw={"height_ratios": [1.0, 0.75] * rows})
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax, bx = axes[2 * (i // ncols), i % ncols], axes[2 * (i // ncols) + 1, i % ncols]
        ax.imshow(to_hwc(images[i]))
        if boxes is not None:
            for x0, y0, x1, y1 in boxes[i].tolist():
                ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="yellow", lw=1.2))
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
        p, c = torch.as_tensor(probs[i]).float().topk(k)
        colours = ["tab:green" if right is not None and bool(right[i][j]) else "tab:grey" for j in c.tolist()]
        bx.axis("on")
        bx.barh(range(k), p.numpy(), color=colours)
        bx.set_yticks(range(k), [class_names[j][:20] for j in c.tolist()], fontsize=7)
        bx.invert_yaxis()
        bx.set_xlim(0, 1)
        bx.tick_params(axis="x", labelsize=6.5)
        for side in ("top", "right"):
            bx.spines[side].set_visible(False)
    fig.tight_layout()
    return fig
