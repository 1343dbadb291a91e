"""SSIM / PSNR restricted to the object (Jalal et al. 2021, appendix).

The mask keeps the pixels whose reference magnitude is at least ``fraction`` (default 0.05)
times the maximum reference magnitude *of the same slice*; it is computed from the reference
(fully sampled) image, never from the prediction. Two ways of using it:

``mode="average"`` (default)
    SSIM: the fastMRI/scikit-image SSIM map (uniform 7x7 window, data range ``gt.max()`` over the
    volume) is averaged over the masked pixels of each slice, then over slices. Pixels within 3
    pixels of the border have no SSIM value (scikit-image crops them) and are left out.
    PSNR: ``10 log10(maxval^2 / MSE)`` with the MSE over the masked pixels of the volume.
``mode="zero"``
    The paper's wording ("the mask zeros out all coordinates ..."): both images are multiplied
    by the mask and the ordinary fastMRI metric is computed on the results.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from mrizoo.errors import InputError
from mrizoo.metrics._inputs import ArrayLike, data_range, to_tensor, volume_pair
from mrizoo.metrics.image import K1, K2, WIN_SIZE, _check_window, _psnr, _ssim_map_tensors

__all__ = ["mask_from_reference", "masked_ssim", "masked_psnr", "MaskMode"]

MaskMode = Literal["average", "zero"]
DEFAULT_FRACTION = 0.05


def _magnitude(ref: object, name: str) -> torch.Tensor:
    if isinstance(ref, torch.Tensor) and ref.is_complex():
        ref = ref.abs()
    elif not isinstance(ref, torch.Tensor) and np.iscomplexobj(ref):
        ref = np.abs(ref)
    return to_tensor(ref, name)


def mask_from_reference(ref: ArrayLike, fraction: float = DEFAULT_FRACTION) -> torch.Tensor:
    """Boolean mask ``|ref| >= fraction * max|ref|``, the maximum taken per 2D slice.

    ``ref`` is ``[H, W]`` or ``[slices, H, W]`` (real or complex); the mask has the same shape
    and lives on ``ref``'s device.
    """
    if not (isinstance(fraction, (int, float)) and 0.0 <= float(fraction) <= 1.0):
        raise InputError("must lie in [0, 1]", field="fraction", expected="a float in [0, 1]", got=fraction)
    mag = _magnitude(ref, "ref").abs()
    if mag.ndim not in (2, 3):
        raise InputError(
            "wrong number of dimensions", field="ref",
            expected="an image [H, W] or a volume [slices, H, W]", got=f"shape {tuple(mag.shape)}",
        )
    peak = mag.amax(dim=(-2, -1), keepdim=True)
    return mag >= float(fraction) * peak


def _volume_mask(mask: ArrayLike | None, gt: torch.Tensor, fraction: float) -> torch.Tensor:
    if mask is None:
        return mask_from_reference(gt, fraction)
    m = to_tensor(mask, "mask", device=gt.device)
    if m.ndim == 2:
        m = m.unsqueeze(0)
    if m.shape != gt.shape:
        raise InputError(
            "shape does not match the reference", field="mask",
            expected=f"shape {tuple(gt.shape)} (same as gt)", got=f"shape {tuple(m.shape)}",
        )
    if not bool(((m == 0) | (m == 1)).all()):
        raise InputError("not a binary mask", field="mask", expected="values in {0, 1} (or bool)")
    return m.bool()


def _check_mode(mode: str) -> None:
    if mode not in ("average", "zero"):
        raise InputError("unknown mode", field="mode", expected="'average' or 'zero'", got=repr(mode))


def masked_ssim(
    gt: ArrayLike,
    pred: ArrayLike,
    mask: ArrayLike | None = None,
    maxval: float | None = None,
    *,
    fraction: float = DEFAULT_FRACTION,
    mode: MaskMode = "average",
) -> float:
    """SSIM over the object only (see the module docstring for the two definitions).

    ``mask`` defaults to :func:`mask_from_reference` of ``gt``; the data range is ``gt.max()``
    over the unmasked volume unless ``maxval`` is given.
    """
    _check_mode(mode)
    g, p = volume_pair(gt, pred)
    _check_window(g.shape, WIN_SIZE)
    m = _volume_mask(mask, g, fraction)
    drange = data_range(g, maxval)
    if mode == "zero":
        smap = _ssim_map_tensors(g * m, p * m, drange, WIN_SIZE, K1, K2)
        return float(smap.mean(dim=(-2, -1)).mean())
    smap = _ssim_map_tensors(g, p, drange, WIN_SIZE, K1, K2)
    r = WIN_SIZE // 2
    inner = m[:, r : m.shape[1] - r, r : m.shape[2] - r].to(smap.dtype)
    counts = inner.sum(dim=(-2, -1))
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise InputError(
            "mask keeps no pixel away from the border in some slices", field="mask",
            expected=f"at least one masked pixel at least {r} pixels from the border",
            got=f"empty slices {empty}",
        )
    per_slice = (smap * inner).sum(dim=(-2, -1)) / counts
    return float(per_slice.mean())


def masked_psnr(
    gt: ArrayLike,
    pred: ArrayLike,
    mask: ArrayLike | None = None,
    maxval: float | None = None,
    *,
    fraction: float = DEFAULT_FRACTION,
    mode: MaskMode = "average",
) -> float:
    """PSNR over the object only: MSE over the masked pixels (``"average"``) or over the
    masked-to-zero images (``"zero"``); data range ``gt.max()`` unless ``maxval`` is given."""
    _check_mode(mode)
    g, p = volume_pair(gt, pred)
    m = _volume_mask(mask, g, fraction)
    drange = data_range(g, maxval)
    if mode == "zero":
        return _psnr(g * m, p * m, drange)
    if not bool(m.any()):
        raise InputError("mask keeps no pixel", field="mask", expected="at least one masked pixel")
    return _psnr(g[m], p[m], drange)
