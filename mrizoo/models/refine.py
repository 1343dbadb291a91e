"""Wavelet refinement of a network's multi-coil output: the network as a prior of L1-wavelet CS.

A learned model predicts multi-coil coil images ``c``. Their SENSE combination
``p = S^H c`` (ESPIRiT maps ``S``) is the centre of a Gaussian prior in the L1-wavelet
problem

    ``x = argmin 0.5 ||M F S x - y||^2 + 0.5 mu ||x - p||^2 + lam ||W x||_1``

(:func:`mrizoo.classical.l1_wavelet.l1_wavelet` with ``prior=p``, started from ``p``). The
refined coil images are ``S x + (c - S p)``: the part of the network's coil images that the
maps cannot represent (outside the maps' range: mostly the noise of the other coil
dimensions, which the RSS of a fully sampled scan contains) is kept, so the result is
combined by RSS exactly like the network's own output and scored like the RSS references.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from mrizoo.classical.l1_wavelet import L1WaveletConfig, l1_wavelet
from mrizoo.errors import InputError
from mrizoo.physics.coils import sense_combine

__all__ = ["REFINE_CHOICES", "split_by_maps", "wavelet_refine"]

#: the refinements of a reconstruction's multi-coil k-space ("none": keep the network's)
REFINE_CHOICES = ("none", "wavelet")


def split_by_maps(coil_images: torch.Tensor, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(maps, p, outside)``: the maps normalised to unit RSS where non-zero, the SENSE image
    ``p = S^H c`` ``[B, H, W]`` and the part of the coil images outside the maps' range, ``c - S p``."""
    maps = maps.to(coil_images.dtype)
    norm = torch.sqrt((maps.abs() ** 2).sum(-3, keepdim=True))
    maps = torch.where(norm > 0, maps / norm.clamp_min(torch.finfo(norm.dtype).tiny), torch.zeros_like(maps))
    prior = sense_combine(coil_images, maps)
    return maps, prior, coil_images - maps * prior[:, None]


def wavelet_refine(coil_images: torch.Tensor, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor,
                   prior_weight: float, config: L1WaveletConfig | None = None) -> torch.Tensor:
    """Refined coil images ``[B, C, H, W]`` (see the module docstring).

    ``coil_images``: the network's ``[B, C, H, W]``; ``kspace`` / ``mask``: the measurements
    ``[B, C, H, W]`` / ``[B, H, W]``; ``maps``: coil maps ``[B, C, H, W]`` (e.g. ESPIRiT; they are
    normalised here to unit RSS where they are non-zero); ``prior_weight``: ``mu``; ``config``: the
    rest of the L1-wavelet problem (default: the ``l1wavelet`` baseline's settings).
    """
    if coil_images.shape != kspace.shape or maps.shape != kspace.shape:
        raise InputError("coil images, maps and k-space must have the same shape", field="maps",
                         expected=tuple(kspace.shape), got=(tuple(coil_images.shape), tuple(maps.shape)))
    maps, prior, outside = split_by_maps(coil_images, maps)
    cfg = replace(config or L1WaveletConfig(), prior_weight=float(prior_weight))
    x = l1_wavelet(kspace.to(coil_images.dtype), mask, maps, cfg, prior=prior)
    return maps * x[:, None] + outside
