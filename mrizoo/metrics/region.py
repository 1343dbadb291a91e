"""The one way every reconstruction is scored: fastMRI's centre crop, then SSIM / PSNR / NMSE.

fastMRI scores a reconstruction on the region of its reference image: both images are
centre-cropped to the reference's size (to the smaller of the two sizes along an axis where the
reconstruction is narrower, as ``fastmri.data.transforms`` does), and the data range is the
maximum of the cropped reference over the whole volume. Readout-oversampled scans are thus scored
on the field of view of the reference, not on the oversampled image. :func:`score` is used by
``mrizoo demo``, ``mrizoo evaluate`` (and so the model cards) and the captions of
``mrizoo reconstruct --figure``; :func:`caption` formats its result for a figure.
"""

from __future__ import annotations

from typing import Any

import torch

from mrizoo.errors import InputError
from mrizoo.metrics._inputs import ArrayLike
from mrizoo.metrics.image import evaluate_volume

__all__ = ["center_crop", "metric_region", "score", "caption", "captions"]


def center_crop(x: Any, shape: tuple[int, int]) -> Any:
    """Crop the last two axes to ``shape``; the window starts at ``(H - h) // 2, (W - w) // 2``."""
    h, w = int(shape[0]), int(shape[1])
    big_h, big_w = x.shape[-2], x.shape[-1]
    if not (0 < h <= big_h and 0 < w <= big_w):
        raise InputError("crop does not fit in the image", field="crop",
                         expected=f"1..{big_h} x 1..{big_w}", got=(h, w))
    top, left = (big_h - h) // 2, (big_w - w) // 2
    return x[..., top : top + h, left : left + w]


def metric_region(reference_hw: tuple[int, int], image_hw: tuple[int, int]) -> tuple[int, int]:
    """``(h, w)`` the metrics are computed on: the reference size, capped by the image size."""
    return min(int(reference_hw[0]), int(image_hw[0])), min(int(reference_hw[1]), int(image_hw[1]))


def _tensor(x: ArrayLike, field: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    if t.ndim not in (2, 3):
        raise InputError("images must be [H, W] or a volume [slices, H, W]", field=field,
                         expected="[H, W] or [slices, H, W]", got=tuple(t.shape))
    t = t.detach()
    return (t.abs() if t.is_complex() else t).to(torch.float64)


def score(reference: ArrayLike, image: ArrayLike, *, region: tuple[int, int] | None = None,
          maxval: float | None = None) -> dict[str, float]:
    """``{"ssim", "psnr", "nmse"}`` of ``image`` against ``reference`` on fastMRI's region.

    ``reference`` and ``image``: magnitude ``[H, W]`` or volumes ``[slices, H, W]`` (complex
    input is scored on its magnitude). Both are centre-cropped to ``region`` (default: the
    reference's size), capped by each image's size. ``maxval``: the data range (default: the
    maximum of the cropped reference, i.e. over the whole volume given).
    """
    ref = _tensor(reference, "reference")
    img = _tensor(image, "image")
    if ref.ndim != img.ndim or (ref.ndim == 3 and ref.shape[0] != img.shape[0]):
        raise InputError("image and reference hold different numbers of slices", field="image",
                         expected=tuple(ref.shape), got=tuple(img.shape))
    want = tuple(ref.shape[-2:]) if region is None else (int(region[0]), int(region[1]))
    hw = metric_region(metric_region(want, tuple(ref.shape[-2:])), tuple(img.shape[-2:]))
    ref, img = center_crop(ref, hw), center_crop(img.to(ref.device), hw)
    return evaluate_volume(ref if ref.ndim == 3 else ref[None], img if img.ndim == 3 else img[None], maxval)


def caption(metrics: dict[str, float]) -> str:
    """The metric line under a figure panel, e.g. ``"SSIM 0.620  PSNR 22.20 dB"``."""
    return f"SSIM {metrics['ssim']:.3f}  PSNR {metrics['psnr']:.2f} dB"


def captions(reference: ArrayLike, images: dict[str, ArrayLike], *, maxval: float | None = None) -> dict[str, str]:
    """:func:`caption` of :func:`score` for every image (the figure captions of demo and reconstruct)."""
    return {name: caption(score(reference, image, maxval=maxval)) for name, image in images.items()}
