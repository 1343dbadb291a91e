"""Input/output handling shared by image-domain models (U-Net, ViT).

Image-domain models see the root-sum-of-squares of the zero-filled image, standardized per
sample with one scalar mean and standard deviation, and padded so that every side is a
multiple of the network's down-sampling factor. Their output is un-padded and mapped back to
the input's intensity scale (``y * std + mean``), so the reconstruction keeps the scale of the
measured data.

Use :func:`standardize_pad` / :func:`unpad_destandardize` around any network, or
:func:`image_domain_reconstruct` for the whole ``reconstruct`` path of a :class:`ReconModel`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mrizoo.errors import InputError
from mrizoo.models.base import check_inputs
from mrizoo.physics.coils import rss
from mrizoo.physics.fft import fftshift2, ifft2c

__all__ = [
    "Standardization",
    "standardize_pad",
    "unpad_destandardize",
    "zero_filled_rss",
    "image_domain_reconstruct",
    "pad_amounts",
]


@dataclass(frozen=True)
class Standardization:
    """What :func:`unpad_destandardize` needs to undo :func:`standardize_pad`."""

    mean: torch.Tensor  # [B, 1, 1, 1]
    std: torch.Tensor  # [B, 1, 1, 1]
    pad_h: tuple[int, int]  # rows added at the top and bottom
    pad_w: tuple[int, int]  # columns added on the left and right


def pad_amounts(size: int, multiple: int) -> tuple[int, int]:
    """Padding ``(before, after)`` that brings ``size`` up to a multiple of ``multiple``.

    The extra samples are split evenly, the odd one going after (fastMRI's convention).
    """
    if multiple < 1:
        raise InputError("padding multiple must be a positive integer", field="multiple",
                         expected=">= 1", got=multiple)
    total = -size % multiple
    return total // 2, total - total // 2


def standardize_pad(
    image: torch.Tensor,
    multiple: int = 16,
    *,
    eps: float = 1e-11,
    clamp: float | None = None,
) -> tuple[torch.Tensor, Standardization]:
    """Standardize a real image batch ``[B, C, H, W]`` per sample and zero-pad it.

    ``(x - mean) / (std + eps)`` with one scalar mean and (unbiased) standard deviation per
    sample; optionally clamped to ``[-clamp, clamp]`` (fastMRI's U-Net pipeline uses 6). The
    zero padding equals the sample mean after standardization.
    """
    if image.ndim != 4 or image.is_complex():
        raise InputError("image must be a real tensor [B, C, H, W]", field="image",
                         expected="real [B, C, H, W]", got=f"{image.dtype} {tuple(image.shape)}")
    b = image.shape[0]
    flat = image.reshape(b, -1)
    mean = flat.mean(dim=1).view(b, 1, 1, 1)
    std = flat.std(dim=1).view(b, 1, 1, 1)
    x = (image - mean) / (std + eps)
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    pad_h = pad_amounts(image.shape[-2], multiple)
    pad_w = pad_amounts(image.shape[-1], multiple)
    if any(pad_h) or any(pad_w):
        x = F.pad(x, (*pad_w, *pad_h))
    return x, Standardization(mean=mean, std=std + eps, pad_h=pad_h, pad_w=pad_w)


def unpad_destandardize(output: torch.Tensor, state: Standardization) -> torch.Tensor:
    """Crop the padding off a network output ``[B, C, H', W']`` and restore the input scale."""
    h, w = output.shape[-2:]
    out = output[..., state.pad_h[0] : h - state.pad_h[1], state.pad_w[0] : w - state.pad_w[1]]
    return out * state.std + state.mean


def zero_filled_rss(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RSS of the zero-filled coil images: k-space ``[B, C, H, W]``, mask ``[B, H, W]`` -> ``[B, 1, H, W]``.

    With even ``H`` and ``W`` the input shift of the centred inverse FFT only flips the sign of
    every other pixel, which the magnitude drops; so the RSS is taken of the plain inverse FFT
    and only the one real RSS image is shifted (the same values, one shift instead of two per coil).
    """
    return _rss_image(kspace * mask.unsqueeze(1))


def _rss_image(masked: torch.Tensor) -> torch.Tensor:
    """:func:`zero_filled_rss` of k-space that is already zero outside its mask."""
    h, w = masked.shape[-2:]
    if h % 2 or w % 2:
        return rss(ifft2c(masked)).unsqueeze(1)
    return fftshift2(rss(torch.fft.ifft2(masked, dim=(-2, -1), norm="ortho"))).unsqueeze(1)


def image_domain_reconstruct(
    net: Callable[[torch.Tensor], torch.Tensor],
    kspace: torch.Tensor,
    mask: torch.Tensor,
    *,
    multiple: int = 16,
    eps: float = 1e-11,
    clamp: float | None = None,
) -> torch.Tensor:
    """The ``reconstruct`` path of a single-channel image-to-image network.

    Zero-filled RSS -> :func:`standardize_pad` -> ``net`` (``[B, 1, H', W']`` -> same) ->
    :func:`unpad_destandardize`; returns the magnitude ``[B, H, W]`` (float32).
    """
    kspace, mask, _ = check_inputs(kspace, mask)
    image = _rss_image(kspace)  # check_inputs returns k-space that is zero outside the mask
    if isinstance(net, nn.Module):
        param = next(net.parameters(), None)
        if param is not None:
            image = image.to(dtype=param.dtype)
    x, state = standardize_pad(image, multiple, eps=eps, clamp=clamp)
    return unpad_destandardize(net(x), state)[:, 0].float()
