"""Centered, orthonormal 2D Fourier transforms and fastMRI's real/complex layouts.

mrizoo works on complex tensors (``torch.complex64``) with the two image axes last:
``[..., H, W]``. fastMRI stores complex data as real tensors ``[..., H, W, 2]``;
:func:`to_real` / :func:`to_complex` convert between the two without copying.
"""

from __future__ import annotations

import torch

__all__ = ["fft2c", "ifft2c", "to_real", "to_complex", "fftshift2", "ifftshift2"]

_DIMS = (-2, -1)


def _check_complex(x: torch.Tensor, fn: str) -> None:
    if not torch.is_complex(x):
        raise TypeError(
            f"{fn} expects a complex tensor [..., H, W]; got dtype {x.dtype}. "
            "Use mrizoo.physics.to_complex() for fastMRI's real [..., H, W, 2] layout."
        )


def fftshift2(x: torch.Tensor) -> torch.Tensor:
    """``fftshift`` over the last two axes."""
    return torch.fft.fftshift(x, dim=_DIMS)


def ifftshift2(x: torch.Tensor) -> torch.Tensor:
    """``ifftshift`` over the last two axes."""
    return torch.fft.ifftshift(x, dim=_DIMS)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centered orthonormal 2D FFT of a complex image ``[..., H, W]`` to k-space."""
    _check_complex(x, "fft2c")
    return fftshift2(torch.fft.fft2(ifftshift2(x), dim=_DIMS, norm="ortho"))


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centered orthonormal 2D inverse FFT of k-space ``[..., H, W]`` to a complex image."""
    _check_complex(k, "ifft2c")
    return fftshift2(torch.fft.ifft2(ifftshift2(k), dim=_DIMS, norm="ortho"))


def to_real(x: torch.Tensor) -> torch.Tensor:
    """Complex ``[..., H, W]`` to fastMRI's real layout ``[..., H, W, 2]`` (a view)."""
    _check_complex(x, "to_real")
    return torch.view_as_real(x)


def to_complex(x: torch.Tensor) -> torch.Tensor:
    """fastMRI's real layout ``[..., H, W, 2]`` to complex ``[..., H, W]`` (a view when contiguous)."""
    if torch.is_complex(x) or x.ndim < 1 or x.shape[-1] != 2:
        raise TypeError(
            f"to_complex expects a real tensor whose last axis has size 2; got shape "
            f"{tuple(x.shape)} and dtype {x.dtype}"
        )
    if x.dtype not in (torch.float32, torch.float64, torch.float16):
        x = x.float()
    return torch.view_as_complex(x.contiguous() if x.stride(-1) != 1 else x)
