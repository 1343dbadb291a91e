"""Mean/std-matched evaluation (Lin & Heckel 2024, out-of-distribution protocol).

Before scoring on data whose intensity scale differs from training, each predicted slice is
affinely rescaled to the mean and standard deviation of the corresponding target slice:
``pred' = (pred - mean(pred)) / std(pred) * std(gt) + mean(gt)``, statistics over the ``H x W``
pixels of the slice. Only the ratio of the two standard deviations enters, so the choice of
population vs sample std does not matter; a constant slice (std 0) becomes the constant
``mean(gt)``.
"""

from __future__ import annotations

import numpy as np
import torch

from mrizoo.metrics._inputs import ArrayLike, volume_pair
from mrizoo.metrics.image import _evaluate

__all__ = ["match_mean_std", "evaluate_matched"]


def _match(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    dims = (-2, -1)
    pm, ps = p.mean(dim=dims, keepdim=True), p.std(dim=dims, correction=0, keepdim=True)
    gm, gs = g.mean(dim=dims, keepdim=True), g.std(dim=dims, correction=0, keepdim=True)
    scale = torch.where(ps > 0, gs / torch.where(ps > 0, ps, torch.ones_like(ps)), torch.zeros_like(ps))
    return (p - pm) * scale + gm


def match_mean_std(pred: ArrayLike, gt: ArrayLike) -> torch.Tensor:
    """``pred`` rescaled slice by slice to ``gt``'s mean and std (float64, shape of ``pred``).

    Accepts ``[H, W]`` or ``[slices, H, W]``; the result is on ``gt``'s device.
    """
    g, p = volume_pair(gt, pred)
    out = _match(p, g)
    ndim = pred.ndim if isinstance(pred, (np.ndarray, torch.Tensor)) else np.ndim(pred)
    return out[0] if ndim == 2 else out


def evaluate_matched(gt: ArrayLike, pred: ArrayLike, maxval: float | None = None) -> dict[str, float]:
    """``{"ssim", "psnr", "nmse"}`` (fastMRI conventions) after :func:`match_mean_std`."""
    g, p = volume_pair(gt, pred)
    return _evaluate(g, _match(p, g), maxval)
