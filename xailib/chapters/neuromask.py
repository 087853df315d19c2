"""Chapter 05's plumbing (NeuroMask, Alzantot et al. 2019): its figures of the masks as they are
learned and of the sweep of the loss weights. NeuroMask itself is the library's
(:mod:`xailib.methods.learned_masks`)."""
from __future__ import annotations

import matplotlib.pyplot as plt

from .. import plots


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

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
        axes[r, 0].imshow(plots.to_hwc(images[r]), interpolation="nearest")
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
        ax.imshow(grid.to_numpy(), cmap="viridis", origin="lower")
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
