"""Coil combination and coil compression.

Layouts: coil images ``[..., C, H, W]`` (complex), sensitivity maps of the same shape.
"""

from __future__ import annotations

import torch

__all__ = ["rss", "sense_combine", "sense_expand", "coil_compress", "compression_matrix"]


def rss(coil_images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Root-sum-of-squares over the coil axis: ``sqrt(sum_c |x_c|^2)`` (real)."""
    return torch.sqrt(torch.sum(coil_images.abs() ** 2, dim=dim))


def sense_combine(
    coil_images: torch.Tensor, maps: torch.Tensor, dim: int = -3, eps: float = 1e-12
) -> torch.Tensor:
    """SENSE / MVUE coil combination: ``sum_c conj(S_c) x_c / sqrt(sum_c |S_c|^2)``.

    With ESPIRiT maps (``sum_c |S_c|^2`` = 1 inside the object, 0 outside) this is the
    minimum-variance unbiased estimate of the image; pixels where every map is zero give 0.
    """
    if coil_images.shape != maps.shape:
        raise ValueError(
            f"sense_combine: coil images {tuple(coil_images.shape)} and maps "
            f"{tuple(maps.shape)} must have the same shape"
        )
    num = torch.sum(maps.conj() * coil_images, dim=dim)
    norm = torch.sqrt(torch.sum(maps.abs() ** 2, dim=dim))
    return torch.where(norm > eps, num / norm.clamp_min(eps), torch.zeros_like(num))


def sense_expand(image: torch.Tensor, maps: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Coil images from one image: ``x_c = S_c x`` (the adjoint of the un-normalised combine)."""
    return maps * image.unsqueeze(dim)


def compression_matrix(
    kspace: torch.Tensor, num_virtual: int, calib: tuple[int, int] | None = None
) -> torch.Tensor:
    """SVD coil-compression matrix ``[V, C]`` for k-space ``[C, H, W]``.

    Computed from the calibration region (``calib = (rows, cols)`` at the centre) when given,
    otherwise from all samples. The rows are the ``num_virtual`` leading left singular vectors
    (conjugated), so ``compressed = matrix @ kspace.reshape(C, -1)``.
    """
    if kspace.ndim != 3:
        raise ValueError(f"compression_matrix expects k-space [C, H, W]; got {tuple(kspace.shape)}")
    c, h, w = kspace.shape
    if not 1 <= num_virtual <= c:
        raise ValueError(f"num_virtual must be in [1, {c}] for {c} coils; got {num_virtual}")
    data = kspace
    if calib is not None:
        ch, cw = min(calib[0], h), min(calib[1], w)
        r0, c0 = h // 2 - ch // 2, w // 2 - cw // 2
        data = kspace[:, r0 : r0 + ch, c0 : c0 + cw]
    u, _, _ = torch.linalg.svd(data.reshape(c, -1), full_matrices=False)
    return u[:, :num_virtual].conj().transpose(0, 1).contiguous()


def coil_compress(
    kspace: torch.Tensor, num_virtual: int, calib: tuple[int, int] | None = None
) -> torch.Tensor:
    """SVD coil compression of ``[..., C, H, W]`` k-space (or coil images) to ``num_virtual`` coils.

    Batched inputs are compressed one item at a time with their own matrix. The transform is
    unitary per pixel when ``num_virtual == C``, so RSS and noise statistics are preserved.
    """
    if kspace.ndim < 3:
        raise ValueError(f"coil_compress expects [..., C, H, W]; got {tuple(kspace.shape)}")
    lead = kspace.shape[:-3]
    flat = kspace.reshape(-1, *kspace.shape[-3:])
    out = []
    for item in flat:
        mat = compression_matrix(item, num_virtual, calib)
        out.append((mat @ item.reshape(item.shape[0], -1)).reshape(num_virtual, *item.shape[-2:]))
    return torch.stack(out).reshape(*lead, num_virtual, *kspace.shape[-2:])
