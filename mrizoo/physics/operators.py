"""The multi-coil Cartesian forward model ``A = M F S`` and its adjoint.

Layouts: image ``x`` ``[..., H, W]``, maps ``S`` ``[..., C, H, W]``, k-space ``[..., C, H, W]``,
mask ``M`` broadcastable to ``[..., H, W]`` (bool or 0/1; a ``[W]`` line mask works too).
With orthonormal FFTs, ``adjoint`` is the exact adjoint of ``forward``:
``<A x, y> = <x, A^H y>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class _NormalPlan:
    """``A^H A`` prepared once: the axes that need an FFT and the maps and mask shifted along them.

    ``F_c^H M F_c`` only involves the axes along which ``M`` varies: a column mask (constant
    along H) leaves ``F_H^H F_H = I``, so only the W transform remains, and a full mask none.
    Shifts are permutations, which commute with pixel-wise products, so they move onto the maps
    and mask once and onto the one image per call.
    """

    dims: tuple[int, ...]
    maps: torch.Tensor  # ifftshift-ed along dims
    conj: torch.Tensor  # its conjugate, resolved
    mask: torch.Tensor | None  # ifftshift-ed along dims, broadcastable to [..., C, H, W]

    @classmethod
    def build(cls, maps: torch.Tensor, mask: torch.Tensor | None) -> _NormalPlan:
        if mask is None:
            dims: tuple[int, ...] = ()
            m = None
        else:
            m = _mask_like(mask, maps)
            if m.ndim == 1 or bool((m == m[..., :1, :]).all()):
                dims, m = (-1,), m if m.ndim == 1 else m[..., :1, :]
            elif bool((m == m[..., :, :1]).all()):
                dims, m = (-2,), m[..., :, :1]
            else:
                dims = (-2, -1)
            m = torch.fft.ifftshift(m, dim=dims if m.ndim >= 2 else (-1,))
            if bool((m == 1).all()):
                dims, m = (), None
        shifted = torch.fft.ifftshift(maps, dim=dims) if dims else maps
        return cls(dims, shifted, shifted.conj().resolve_conj(), m)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dims:
            return torch.sum(self.conj * (self.maps * x.unsqueeze(-3)), dim=-3)
        xs = torch.fft.ifftshift(x, dim=self.dims).unsqueeze(-3)
        k = torch.fft.fftn(self.maps * xs, dim=self.dims, norm="ortho")
        if self.mask is not None:
            k = k * self.mask
        v = torch.fft.ifftn(k, dim=self.dims, norm="ortho")
        return torch.fft.fftshift(torch.sum(self.conj * v, dim=-3), dim=self.dims)


def _is_binary(mask: torch.Tensor | None) -> bool:
    return mask is None or mask.dtype == torch.bool or bool(((mask == 0) | (mask == 1)).all())


@dataclass
class MultiCoilOperator:
    """``A = M F S`` bound to one set of maps and one mask, for solvers that want ``A``, ``A^H``, ``A^H A``.

    Iterative solvers should use :meth:`normal` and :meth:`gradient_fn`: prepared once per
    operator, they skip the FFT along any axis the mask does not vary on (a column mask needs
    only the 1D transforms along W) and shift one image instead of every coil. Same values as
    composing :meth:`adjoint` and :meth:`forward`, up to float rounding.
    """

    maps: torch.Tensor
    mask: torch.Tensor | None = None
    _plan: _NormalPlan | None = field(default=None, init=False, repr=False, compare=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return forward_op(x, self.maps, self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_op(x, self.maps, self.mask)

    def adjoint(self, k: torch.Tensor) -> torch.Tensor:
        return adjoint_op(k, self.maps, self.mask)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x`` (the mask is applied once: ``M^2 = M`` for 0/1 masks)."""
        if self._plan is None:
            self._plan = _NormalPlan.build(self.maps, self.mask)
        return self._plan(x)

    def gradient_fn(self, kspace: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x -> A^H (A x - y)``, the gradient of ``0.5 ||A x - y||^2``, for measured ``y = kspace``.

        ``A^H y`` is computed once, so each call costs one :meth:`normal`.
        """
        aty = self.adjoint(kspace)
        if _is_binary(self.mask):
            normal = self.normal
        else:  # weights: A^H A = S^H F^H M^2 F S
            weights = self.mask.to(device=self.maps.device)  # type: ignore[union-attr]
            normal = _NormalPlan.build(self.maps, weights * weights)

        def gradient(x: torch.Tensor) -> torch.Tensor:
            return normal(x) - aty

        return gradient
