"""Local surrogates on superpixels: LIME (the ``lime`` package) and KernelSHAP (``shap``)."""
from __future__ import annotations

from unittest import mock

import numpy as np
import torch

from .. import inference
from ..errors import ParameterError
from .registry import _seeded, register


def superpixels(image: torch.Tensor, n_segments: int = 50, compactness: float = 10.0) -> np.ndarray:
    """SLIC superpixels of one (3, H, W) image in [0, 1]: (H, W) int labels 0..K-1."""
    from skimage.segmentation import slic
    img = image.detach().permute(1, 2, 0).cpu().double().numpy()
    seg = slic(img, n_segments=n_segments, compactness=compactness, start_label=0)
    _, seg = np.unique(seg, return_inverse=True)  # consecutive labels
    return seg.reshape(img.shape[:2])


def _segment_means(img: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """(3, H, W) image where each superpixel is filled with its mean colour (LIME's default)."""
    k = int(seg.max()) + 1
    flat = seg.flatten()
    sums = torch.zeros(3, k, device=img.device).index_add_(1, flat, img.flatten(1))
    counts = torch.bincount(flat, minlength=k).clamp(min=1)
    return (sums / counts)[:, flat].view_as(img)


def _segments(segments, x, i, n_segments) -> np.ndarray:
    """Image ``i``'s superpixels: the given ``segments`` (B, H, W) labels, or SLIC's."""
    if segments is None:
        return superpixels(x[i], n_segments)
    seg = torch.as_tensor(segments)
    if seg.ndim != 3 or seg.shape[0] != len(x) or seg.shape[1:] != x.shape[-2:]:
        raise ParameterError(f"segments must be (batch, H, W) integer labels matching the images "
                             f"{tuple(x.shape)}, got {tuple(seg.shape)}")
    _, out = np.unique(seg[i].cpu().numpy(), return_inverse=True)   # consecutive labels
    return out.reshape(seg.shape[1:])


@register("lime", family="surrogate", library="lime", reference="ribeiro2016", batch_size=1,
          batch_invariant=True,
          per_image=("segments",), num_samples=1000, n_segments=50, hide="mean", seed=0,
          model_batch_size=250, segments=None)
def _lime(model, x, t, num_samples, n_segments, hide, seed, model_batch_size, segments):
    """LIME (the ``lime`` package) on SLIC superpixels; the map is each superpixel's weight in
    the local linear model of the target's probability. Hidden superpixels take their mean
    colour (LIME's default, ``hide="mean"``) or a constant grey value (``hide=0.5``).
    ``segments`` (B, H, W): the superpixels to use instead of SLIC's (max-sensitivity passes the
    unperturbed image's to its perturbed copies)."""
    from lime.lime_image import LimeImageExplainer
    dev, maps = x.device, []
    for i, (img, target) in enumerate(zip(x, t.tolist())):
        seg = _segments(segments, x, i, n_segments)
        arr = img.permute(1, 2, 0).cpu().double().numpy()

        def classifier_fn(batch):
            b = torch.from_numpy(batch).to(dev, torch.float32).permute(0, 3, 1, 2)
            return inference.probabilities(model, b).cpu().numpy()

        with mock.patch("lime.lime_image.tqdm", lambda it, **_: it):  # silence its per-image bar
            exp = LimeImageExplainer(random_state=seed).explain_instance(
                arr, classifier_fn, labels=(target,), top_labels=None,
                hide_color=None if hide == "mean" else float(hide), num_samples=num_samples,
                batch_size=model_batch_size, segmentation_fn=lambda _: seg, random_seed=seed)
        weights = np.zeros(seg.max() + 1)
        for k, w in exp.local_exp[target]:
            weights[k] = w
        maps.append(torch.from_numpy(weights[seg]).to(dev, torch.float32))
    return torch.stack(maps)


@register("kernel_shap", family="surrogate", library="shap", reference="lundberg2017", batch_size=1,
          batch_invariant=True,
          per_image=("segments",), nsamples=1000, n_segments=50, hide="mean", seed=0, segments=None)
def _kernel_shap(model, x, t, nsamples, n_segments, hide, seed, segments):
    """KernelSHAP (the ``shap`` package) on SLIC superpixels: Shapley values of the target's
    probability, with absent superpixels filled as in LIME (mean colour or a constant);
    ``segments`` as for LIME."""
    import shap
    dev, maps = x.device, []
    for i, (img, target) in enumerate(zip(x, t.tolist())):
        seg = torch.from_numpy(_segments(segments, x, i, n_segments)).to(dev)
        k = int(seg.max()) + 1
        fill = _segment_means(img, seg) if hide == "mean" else torch.full_like(img, float(hide))

        def f(z):
            keep = torch.from_numpy(np.asarray(z)).to(dev, torch.float32)[:, seg][:, None]
            masked = img * keep + fill * (1 - keep)
            return inference.probabilities(model, masked)[:, target].cpu().numpy()

        with _seeded(seed):
            phi = shap.KernelExplainer(f, np.zeros((1, k))).shap_values(
                np.ones((1, k)), nsamples=nsamples, silent=True)
        phi = np.asarray(phi, dtype=np.float64).reshape(-1)[:k]
        maps.append(torch.from_numpy(phi).to(dev, torch.float32)[seg])
    return torch.stack(maps)
