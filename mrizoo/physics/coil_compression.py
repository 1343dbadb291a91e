"""SVD coil compression to a fixed number of virtual coils, for any coil count.

Networks that read coil images (rcGAN) are built for a fixed number of coils ``V``; Bendel et
al. (2023) compress fastMRI's arrays to 8 virtual coils by SVD. :func:`compress_coils` maps
``C`` physical coils to exactly ``V`` virtual ones:

- ``C > V``: the ``V`` leading left singular vectors of the measured samples (a projection that
  keeps the most energy);
- ``C <= V``: all ``C`` singular vectors (a unitary rotation: RSS and noise statistics are
  unchanged), followed by ``V - C`` all-zero virtual coils.

The matrix comes from the measured data only (zeros outside the mask add nothing to the coil
covariance), or from a central calibration window, so it is the same whether the caller holds
fully sampled or undersampled k-space. Each virtual coil's phase is fixed (its largest sample
is made real and positive), so the result does not depend on the SVD's arbitrary phases.
"""

from __future__ import annotations

import torch

from mrizoo.errors import InputError
from mrizoo.physics.coils import compression_matrix

__all__ = ["virtual_coil_matrix", "compress_coils", "apply_compression", "expand_coils"]


def _check(kspace: object, num_virtual: object) -> None:
    if not isinstance(kspace, torch.Tensor) or not kspace.is_complex() or kspace.ndim < 3:
        got = tuple(kspace.shape) if isinstance(kspace, torch.Tensor) else type(kspace).__name__
        raise InputError("coil compression needs complex k-space [..., C, H, W]", field="kspace",
                         expected="complex tensor [..., C, H, W]", got=got)
    if isinstance(num_virtual, bool) or not isinstance(num_virtual, int) or num_virtual < 1:
        raise InputError("must be a positive integer", field="num_virtual", expected="int >= 1",
                         got=repr(num_virtual))


@torch.no_grad()
def virtual_coil_matrix(
    kspace: torch.Tensor, num_virtual: int = 8, calib: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Compression matrices ``[..., V, C]`` for k-space ``[..., C, H, W]`` (one per item).

    Rows ``min(C, V)..V`` are zero when ``C < V``; the first ``min(C, V)`` rows are orthonormal
    (``A A^H = I`` on them), so ``A^H`` maps virtual coils back to the physical ones.
    """
    _check(kspace, num_virtual)
    lead, (c, h, w) = kspace.shape[:-3], kspace.shape[-3:]
    flat = kspace.reshape(-1, c, h, w)
    keep = min(c, num_virtual)
    mats = torch.zeros(flat.shape[0], num_virtual, c, dtype=kspace.dtype, device=kspace.device)
    for i, item in enumerate(flat):
        mat = compression_matrix(item, keep, calib)  # [keep, C]
        virtual = mat @ item.reshape(c, -1)
        peak = virtual.abs().argmax(dim=1, keepdim=True)
        phase = torch.sgn(torch.gather(virtual, 1, peak))
        phase = torch.where(phase == 0, torch.ones_like(phase), phase)
        mats[i, :keep] = mat * phase.conj()
    return mats.reshape(*lead, num_virtual, c)


def apply_compression(kspace: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``[..., C, H, W]`` -> ``[..., V, H, W]`` with matrices ``[..., V, C]`` (k-space or images)."""
    return torch.einsum("...vc,...chw->...vhw", matrix.to(kspace.dtype), kspace)


def expand_coils(virtual: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Back to the physical coils: ``A^H`` applied to ``[..., V, H, W]`` gives ``[..., C, H, W]``.

    Exact inverse of :func:`apply_compression` when ``C <= V`` (the padded coils are ignored);
    the projection onto the kept subspace when ``C > V``. ``matrix`` may lack leading sample
    dimensions of ``virtual`` (it broadcasts from the right).
    """
    return torch.einsum("...vc,...vhw->...chw", matrix.conj().to(virtual.dtype), virtual)


def compress_coils(
    kspace: torch.Tensor, num_virtual: int = 8, *, mask: torch.Tensor | None = None,
    calib: tuple[int, int] | None = None, return_matrix: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Compress k-space ``[..., C, H, W]`` (any ``C``) to ``num_virtual`` virtual coils.

    The matrix is computed from the samples at ``mask`` (broadcastable to ``[..., H, W]``;
    default: every non-zero sample, i.e. what was measured) or, with ``calib = (rows, cols)``,
    from that central window; the whole ``kspace`` is then compressed with it. Returns the
    compressed k-space ``[..., V, H, W]`` and, with ``return_matrix``, the matrices ``[..., V, C]``.
    """
    _check(kspace, num_virtual)
    measured = kspace if mask is None else kspace * mask.to(torch.bool).unsqueeze(-3)
    matrix = virtual_coil_matrix(measured, num_virtual, calib)
    out = apply_compression(kspace, matrix)
    return (out, matrix) if return_matrix else out
