"""Zero-filled reconstruction: the inverse FFT of the measured k-space with zeros elsewhere."""

from __future__ import annotations

import torch

from mrizoo.masks.sampling import check_measurements
from mrizoo.physics.coils import rss, sense_combine
from mrizoo.physics.fft import ifft2c

__all__ = ["zero_filled"]


def zero_filled(kspace: torch.Tensor, mask: torch.Tensor | None = None, maps: torch.Tensor | None = None) -> torch.Tensor:
    """Zero-filled image from multi-coil k-space ``[..., C, H, W]``.

    Without maps: the RSS magnitude (real). With maps: the complex SENSE combination.
    ``mask`` (broadcastable to ``[..., H, W]``) is applied first when given.
    """
    kspace, mask = check_measurements(kspace, mask)
    if mask is not None:
        m = mask.to(kspace.device)
        kspace = kspace * (m.unsqueeze(-3) if m.ndim >= 2 else m)
    coil_images = ifft2c(kspace)
    return rss(coil_images) if maps is None else sense_combine(coil_images, maps)
