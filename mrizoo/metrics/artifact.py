"""Artifact score (Lin & Heckel 2024): variance of the Laplacian of the error image.

The Laplacian is the 3x3 discrete kernel ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` (OpenCV's
``Laplacian`` with ``ksize=1``) with OpenCV's default border, reflect-101 (``d c b | a b c d |
c b a``; torch's ``"reflect"`` padding). The score of a slice is the population variance
(``ddof=0``) of the Laplacian of ``|target - recon|`` over all ``H x W`` pixels; a volume's score
is the mean over slices. Structured, high-frequency errors (streaks, aliasing, noise) score
high; a smooth error such as a global offset scores zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mrizoo.errors import InputError
from mrizoo.metrics._inputs import ArrayLike, to_tensor, volume_pair

__all__ = ["laplacian", "artifact_score", "LAPLACIAN_KERNEL"]

LAPLACIAN_KERNEL = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def _laplacian(x: torch.Tensor, name: str = "image") -> torch.Tensor:
    """3x3 Laplacian of a float64 ``[..., H, W]`` tensor, reflect-101 border."""
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    if h < 2 or w < 2:
        raise InputError(
            "image too small for a 3x3 Laplacian", field=name, expected="H, W >= 2", got=f"H={h}, W={w}"
        )
    flat = x.reshape(-1, 1, h, w)
    padded = F.pad(flat, (1, 1, 1, 1), mode="reflect")
    kernel = torch.tensor(LAPLACIAN_KERNEL, dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
    return F.conv2d(padded, kernel).reshape(*lead, h, w)


def laplacian(image: ArrayLike) -> torch.Tensor:
    """Discrete Laplacian (module docstring) of a real ``[..., H, W]`` array, float64."""
    x = to_tensor(image, "image")
    if x.ndim < 2:
        raise InputError(
            "wrong number of dimensions", field="image", expected="[..., H, W]", got=f"shape {tuple(x.shape)}"
        )
    return _laplacian(x)


def artifact_score(target: ArrayLike, recon: ArrayLike) -> float:
    """Mean over slices of ``var(Laplacian(|target - recon|))``; inputs ``[H, W]`` or ``[slices, H, W]``."""
    t, r = volume_pair(target, recon, "target", "recon")
    lap = _laplacian((t - r).abs(), "target")
    return float(lap.var(dim=(-2, -1), correction=0).mean())
