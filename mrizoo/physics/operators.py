"""The multi-coil Cartesian forward model ``A = M F S`` and its adjoint.

Layouts: image ``x`` ``[..., H, W]``, maps ``S`` ``[..., C, H, W]``, k-space ``[..., C, H, W]``,
mask ``M`` broadcastable to ``[..., H, W]`` (bool or 0/1; a ``[W]`` line mask works too).
With orthonormal FFTs, ``adjoint`` is the exact adjoint of ``forward``:
``<A x, y> = <x, A^H y>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrizoo.physics.fft import fft2c, ifft2c

__all__ = ["MultiCoilOperator", "forward_op", "adjoint_op"]


def _mask_like(mask: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    m = mask.to(device=k.device)
    if m.dtype == torch.bool:
        m = m.to(k.real.dtype)
    return m.unsqueeze(-3) if m.ndim >= 2 else m  # [..., H, W] -> [..., 1, H, W]


def forward_op(x: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``A x = M F (S x)``: image ``[..., H, W]`` to (masked) multi-coil k-space ``[..., C, H, W]``."""
    k = fft2c(maps * x.unsqueeze(-3))
    return k if mask is None else k * _mask_like(mask, k)


def adjoint_op(k: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``A^H k = sum_c conj(S_c) F^H (M k_c)``: multi-coil k-space to one image ``[..., H, W]``."""
    if mask is not None:
        k = k * _mask_like(mask, k)
    return torch.sum(maps.conj() * ifft2c(k), dim=-3)


@dataclass
class MultiCoilOperator:
    """``A = M F S`` bound to one set of maps and one mask, for solvers that want ``A``, ``A^H``, ``A^H A``."""

    maps: torch.Tensor
    mask: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return forward_op(x, self.maps, self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_op(x, self.maps, self.mask)

    def adjoint(self, k: torch.Tensor) -> torch.Tensor:
        return adjoint_op(k, self.maps, self.mask)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x`` (the mask is applied once: ``M^2 = M`` for 0/1 masks)."""
        return adjoint_op(forward_op(x, self.maps, self.mask), self.maps)
