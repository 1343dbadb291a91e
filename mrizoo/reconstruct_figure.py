"""The figure of a reconstructed volume: target, zero-filled, reconstruction and error of one slice.

Part of :mod:`mrizoo.reconstruct` (``--figure``); captions carry the metrics ``demo`` and
``evaluate`` report, on fastMRI's region and data range.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from mrizoo import figures
from mrizoo._atomic import atomic_file
from mrizoo.classical import zero_filled
from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.errors import InputError
from mrizoo.metrics import captions as metric_captions
from mrizoo.metrics import center_crop, metric_region
from mrizoo.metrics.reference import slice_reference
from mrizoo.reconstruct_masks import MaskChoice

__all__ = ["save_volume_figure"]

log = logging.getLogger("mrizoo.reconstruct")  # one logger for everything reconstruct does


def save_volume_figure(path: Path, vol: FastMRIVolume, choice: MaskChoice, images: dict[str, np.ndarray],
            index: int | None, model_name: str, overwrite: bool) -> Path:
    """Target (when there is a fully sampled one), zero-filled and reconstruction of one slice,
    captioned with the metrics ``demo`` and ``evaluate`` report (fastMRI's region and data range)."""
    n = vol.num_slices
    i = n // 2 if index is None else index
    if isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n:
        raise InputError("slice index out of range", path=vol.path, field="figure_slice",
                         expected=f"0 <= index < {n}", got=index)
    i %= n
    if path.exists() and not overwrite:
        raise InputError("figure exists", path=path, expected="a new path, or --overwrite")
    ks = vol.kspace(i)
    ks = ks.unsqueeze(0) if ks.ndim == 2 else ks
    recon = torch.from_numpy(images["reconstruction"][i])
    zf = zero_filled(ks[None], choice.mask)[0]
    ref, why = slice_reference(vol, i, vol.sampling_info())
    panels: dict[str, torch.Tensor] = {}
    captions: dict[str, str] = {}
    if ref is not None:
        hw = metric_region(tuple(ref.image.shape), tuple(recon.shape[-2:]))
        captions = metric_captions(ref.image, {"zero-filled": zf, "reconstruction": recon}, maxval=ref.maxval)
        panels["target"] = center_crop(ref.image, hw)
        zf, recon = center_crop(zf, hw), center_crop(recon, hw)
    panels["zero-filled"] = zf
    panels["reconstruction"] = recon
    if ref is not None:
        panels["error x5"] = (recon - panels["target"]).abs() * 5
    if "std" in images:
        std = torch.from_numpy(images["std"][i])
        panels["std x5"] = (center_crop(std, tuple(recon.shape[-2:])) if ref is not None else std) * 5
    title = (f"{vol.path.name} slice {i}: {model_name}, mask {choice.name}, "
             f"R={choice.acceleration:.3g}" + ("" if ref is not None else " (no fully sampled reference: no metrics)"))
    if why:
        log.info(why)
    with atomic_file(path, suffix=path.suffix or ".png") as tmp:  # a full disk or read-only target: InputError
        figures.save_panels(tmp, panels, errors=False, captions=captions, suptitle=title)
    return path
