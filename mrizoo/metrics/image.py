"""SSIM, PSNR and NMSE exactly as the fastMRI challenge computes them.

Conventions (``fastmri.evaluate``):

- inputs are real magnitude volumes ``[slices, H, W]`` (a single ``[H, W]`` image counts as a
  one-slice volume), numpy arrays or torch tensors on any device;
- the data range is ``gt.max()`` over the *whole volume* unless ``maxval`` is given;
- SSIM is scikit-image's ``structural_similarity`` with its defaults, computed per slice and
  averaged over slices: a uniform 7x7 window, ``K1 = 0.01``, ``K2 = 0.03``, local variances and
  covariance with the sample correction ``49 / 48``, and the SSIM map averaged after cropping
  ``(7 - 1) / 2 = 3`` pixels from every border (so padding never enters the result);
- PSNR is ``10 log10(maxval^2 / MSE)`` with the MSE over the whole volume;
- NMSE is ``||gt - pred||^2 / ||gt||^2`` over the whole volume.

All arithmetic is float64 on the device of ``gt`` (float32 inputs are promoted first, which is
slightly more accurate than scikit-image's float32 path).
"""

from __future__ import annotations

import math

import torch

from mrizoo.errors import InputError
from mrizoo.metrics._inputs import ArrayLike, data_range, volume_pair

__all__ = ["ssim", "ssim_map", "local_ssim", "psnr", "nmse", "mse", "evaluate_volume"]

K1 = 0.01
K2 = 0.03
WIN_SIZE = 7


def _check_window(shape: torch.Size, win_size: int) -> None:
    if not isinstance(win_size, int) or win_size < 3 or win_size % 2 == 0:
        raise InputError("window size must be an odd integer >= 3", field="win_size", got=win_size)
    h, w = shape[-2:]
    if h < win_size or w < win_size:
        raise InputError(
            "image smaller than the SSIM window", field="gt",
            expected=f"H and W >= {win_size}", got=f"H={h}, W={w}",
        )


def _box_mean(x: torch.Tensor, win_size: int) -> torch.Tensor:
    """Mean over every ``win_size x win_size`` window fully inside ``[..., H, W]`` (no padding)."""
    return x.unfold(-1, win_size, 1).sum(-1).unfold(-2, win_size, 1).sum(-1) / (win_size * win_size)


def local_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: torch.Tensor | float,
    *,
    win_size: int = WIN_SIZE,
    k1: float = K1,
    k2: float = K2,
) -> torch.Tensor:
    """SSIM map ``[..., H - win_size + 1, W - win_size + 1]`` of two same-shape ``[..., H, W]`` tensors.

    The one SSIM formula of the package (metrics and the training loss both use it): uniform
    window, unbiased local (co)variances, no padding. It computes in the inputs' dtype and is
    differentiable; ``data_range`` is a number or a tensor broadcastable to the map (e.g. one
    value per item, ``[B, 1, 1, 1]``). Callers validate shapes and window size.
    """
    stack = torch.stack([x, y, x * x, y * y, x * y], dim=-3)
    ux, uy, uxx, uyy, uxy = _box_mean(stack, win_size).unbind(dim=-3)
    n = win_size * win_size
    cov_norm = n / (n - 1.0)  # unbiased local (co)variances, as scikit-image's default
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    num = (2.0 * ux * uy + c1) * (2.0 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return num / den


def _ssim_map_tensors(
    gt: torch.Tensor, pred: torch.Tensor, drange: float, win_size: int, k1: float, k2: float
) -> torch.Tensor:
    """SSIM map over the valid (border-cropped) region of float64 ``[S, H, W]`` tensors.

    Slices are processed in chunks: one at a time on the CPU (the intermediates then stay in
    cache, which makes it several times faster), up to ~64 M pixels at a time elsewhere.
    """
    pixels = gt.shape[-2] * gt.shape[-1]
    chunk = 1 if gt.device.type == "cpu" else max(1, (1 << 26) // pixels)
    if gt.shape[0] <= chunk:
        return local_ssim(gt, pred, drange, win_size=win_size, k1=k1, k2=k2)
    parts = [
        local_ssim(gt[i : i + chunk], pred[i : i + chunk], drange, win_size=win_size, k1=k1, k2=k2)
        for i in range(0, gt.shape[0], chunk)
    ]
    return torch.cat(parts)


def ssim_map(
    gt: ArrayLike,
    pred: ArrayLike,
    maxval: float | None = None,
    *,
    win_size: int = WIN_SIZE,
    k1: float = K1,
    k2: float = K2,
) -> torch.Tensor:
    """Per-pixel SSIM ``[slices, H - win_size + 1, W - win_size + 1]`` (float64).

    Entry ``[s, i, j]`` belongs to pixel ``(i + r, j + r)`` of the input, ``r = win_size // 2``:
    the map covers exactly the region scikit-image averages over.
    """
    g, p = volume_pair(gt, pred)
    _check_window(g.shape, win_size)
    return _ssim_map_tensors(g, p, data_range(g, maxval), win_size, k1, k2)


def ssim(
    gt: ArrayLike,
    pred: ArrayLike,
    maxval: float | None = None,
    *,
    win_size: int = WIN_SIZE,
    k1: float = K1,
    k2: float = K2,
) -> float:
    """Mean over slices of the per-slice SSIM (fastMRI's ``evaluate.ssim``)."""
    smap = ssim_map(gt, pred, maxval, win_size=win_size, k1=k1, k2=k2)
    return float(smap.mean(dim=(-2, -1)).mean())


def _psnr(g: torch.Tensor, p: torch.Tensor, drange: float) -> float:
    err = float(torch.mean((g - p) ** 2))
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(drange * drange / err)


def _nmse(g: torch.Tensor, p: torch.Tensor) -> float:
    denom = float(torch.sum(g * g))
    if denom == 0.0:
        raise InputError("reference is all zeros, NMSE is undefined", field="gt", expected="a non-zero image")
    return float(torch.sum((g - p) ** 2)) / denom


def _evaluate(g: torch.Tensor, p: torch.Tensor, maxval: float | None) -> dict[str, float]:
    _check_window(g.shape, WIN_SIZE)
    drange = data_range(g, maxval)
    smap = _ssim_map_tensors(g, p, drange, WIN_SIZE, K1, K2)
    return {
        "ssim": float(smap.mean(dim=(-2, -1)).mean()),
        "psnr": _psnr(g, p, drange),
        "nmse": _nmse(g, p),
    }


def mse(gt: ArrayLike, pred: ArrayLike) -> float:
    """Mean squared error over the whole volume."""
    g, p = volume_pair(gt, pred)
    return float(torch.mean((g - p) ** 2))


def psnr(gt: ArrayLike, pred: ArrayLike, maxval: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB over the whole volume; ``inf`` when ``pred == gt``."""
    g, p = volume_pair(gt, pred)
    return _psnr(g, p, data_range(g, maxval))


def nmse(gt: ArrayLike, pred: ArrayLike) -> float:
    """Normalised MSE ``||gt - pred||^2 / ||gt||^2`` over the whole volume."""
    g, p = volume_pair(gt, pred)
    return _nmse(g, p)


def evaluate_volume(gt: ArrayLike, pred: ArrayLike, maxval: float | None = None) -> dict[str, float]:
    """``{"ssim", "psnr", "nmse"}`` of one volume, fastMRI conventions."""
    g, p = volume_pair(gt, pred)
    return _evaluate(g, p, maxval)
