"""Figures the chapters share: sample grids with ground truth, saliency galleries, bar charts."""
from __future__ import annotations

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
    """Signed maps on a diverging scale centred at 0, non-negative ones on a sequential scale;
    both clipped at the 99.5th percentile of |value| so one hot pixel does not wash out the rest."""
    lim = np.percentile(np.abs(s), 99.5) or 1.0
    if s.min() < 0:
        return ax.imshow(s, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    return ax.imshow(s, cmap="magma", vmin=0, vmax=lim, interpolation="nearest")


def saliency_gallery(images: torch.Tensor, maps: dict, row_titles=None, masks=None,
                     cell: float = 1.45):
    """Rows: images; columns: the image, then one saliency map per method (``maps[name]``)."""
    names = list(maps)
    n = len(images)
    fig, axes = plt.subplots(n, len(names) + 1, figsize=(cell * (len(names) + 1), cell * n + 0.4),
                             squeeze=False)
    for r in range(n):
        axes[r, 0].imshow(_hwc(images[r]), interpolation="nearest")
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=8)
        for c, name in enumerate(names, start=1):
            _display_map(axes[r, c], maps[name][r].detach().cpu().float().numpy())
            if masks is not None:
                axes[r, c].contour(masks[r].cpu().numpy(), [0.5], colors="lime", linewidths=0.6)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=8)
    for c, name in enumerate(names, start=1):
        axes[0, c].set_title(name.replace("_", " "), fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def bar_chart(table, column: str, xlabel: str, log: bool = False):
    """Horizontal bars of ``table[column]`` per row, one colour per column level 0 group."""
    ax = table[column].unstack(0).plot.barh(figsize=(7, 0.32 * len(table) + 1), logx=log)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("")
    ax.legend(title=None, fontsize=8)
    ax.figure.tight_layout()
    return ax.figure
