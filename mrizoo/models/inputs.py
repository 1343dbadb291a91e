"""The common inputs every model takes, checked once, and the posterior samples it returns.

The layouts are documented in :mod:`mrizoo.models.base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mrizoo.errors import InputError
from mrizoo.masks.sampling import check_measurements

__all__ = ["PosteriorSamples", "check_inputs"]


@dataclass
class PosteriorSamples:
    """Posterior samples (magnitude) and their pixel-wise mean and standard deviation."""

    samples: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def from_samples(cls, samples: torch.Tensor) -> "PosteriorSamples":
        return cls(samples=samples, mean=samples.mean(0), std=samples.std(0, unbiased=False))


def _tensor(x: Any) -> Any:
    return torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x


def _describe(x: Any) -> str:
    return f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"


def _batch_mask(mask: Any, b: int, h: int, w: int) -> Any:
    """A ``[B, W]`` column mask (one profile per item) as ``[B, 1, W]``; other layouts unchanged."""
    mask = _tensor(mask)
    if mask is None or isinstance(mask, (str, bytes)):
        raise InputError("mask must be a tensor", field="mask", expected=f"bool [{b}, {h}, {w}] or [{h}, {w}]",
                         got=type(mask).__name__)
    if isinstance(mask, torch.Tensor) and mask.ndim == 2 and mask.shape[0] == b and mask.shape[1] == w \
            and b not in (1, h):
        return mask.unsqueeze(1)
    return mask


def check_inputs(
    kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate the common inputs and return ``(kspace, mask [B, H, W] bool, maps)``.

    Every check runs before any computation (see the module docstring for what is accepted
    and refused; :func:`~mrizoo.masks.sampling.check_measurements` does the k-space and mask
    checks); the returned k-space is zero outside the mask.
    """
    kspace = _tensor(kspace)
    if not isinstance(kspace, torch.Tensor) or not kspace.is_complex() or kspace.ndim != 4:
        raise InputError("k-space must be a complex tensor [B, C, H, W]", field="kspace",
                         expected="complex [B, C, H, W]", got=_describe(kspace))
    b, _, h, w = kspace.shape
    kspace, mask = check_measurements(kspace, _batch_mask(mask, b, h, w))
    if mask.ndim == 3 and mask.shape[0] != b:
        raise InputError("mask does not fit the k-space", field="mask",
                         expected=f"one mask, or one per batch item ({b})", got=f"{mask.shape[0]} masks")
    mask = mask.expand(b, h, w)
    if maps is not None:
        maps = _tensor(maps)
        if not isinstance(maps, torch.Tensor) or not maps.is_complex() or maps.shape != kspace.shape:
            raise InputError("maps do not fit the k-space", field="maps",
                             expected=f"complex {tuple(kspace.shape)}", got=_describe(maps))
        if not bool(torch.isfinite(maps).all()):
            raise InputError("maps hold non-finite values (NaN or Inf)", field="maps", expected="finite values")
        maps = maps.to(kspace.device)
    return kspace, mask, maps
