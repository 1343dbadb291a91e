"""The sampling mask of a volume to reconstruct: its own pattern, or a retrospective mask.

Part of :mod:`mrizoo.reconstruct`. Undersampled k-space keeps its stored (or measured) pattern;
fully sampled k-space gets the requested mask, defaulting to the model's training mask and
acceleration, seeded from the file name as fastMRI's test set is.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.errors import InputError
from mrizoo.masks import create_mask, mask_params, seed_from_name
from mrizoo.reconstruct_runner import model_task

__all__ = ["MaskChoice", "choose_mask", "outside_training"]

log = logging.getLogger("mrizoo.reconstruct")  # one logger for everything reconstruct does

_TRAINED_TOLERANCE = 0.2  # relative gap between a measured and a trained acceleration still "inside"


@dataclass
class MaskChoice:
    """The mask a volume is reconstructed with, and where it came from."""

    mask: torch.Tensor  # bool [H, W]
    name: str
    acceleration: float  # nominal (requested) or measured for stored masks
    center_fraction: float
    retrospective: bool


def choose_mask(
    vol: FastMRIVolume, model: nn.Module, shape: tuple[int, int], mask_name: str | None,
    acceleration: float | None, center_fraction: float | None,
) -> MaskChoice:
    """The stored/measured pattern of undersampled k-space, else a retrospective mask (module docstring)."""
    h, w = shape
    info = vol.sampling_info()
    measured = torch.as_tensor(info.mask, dtype=torch.bool).expand(h, w)
    if not info.fully_sampled:
        given = [n for n, v in (("--mask", mask_name), ("--acceleration", acceleration),
                                ("--center-fraction", center_fraction)) if v is not None]
        if given:
            msg = (f"{vol.path}: the k-space is already undersampled (measured R={info.acceleration:.3g}); "
                   f"it is reconstructed from its own samples, {', '.join(given)} not used")
            warnings.warn(msg, UserWarning, stacklevel=3)
            log.warning(msg)
        stored = vol.mask()
        same = stored is not None and bool(torch.equal(stored.expand(h, w), measured))
        name = "stored" if same else "measured"  # "measured": read from the data (no or a wrong stored mask)
        return MaskChoice(measured.clone(), name, float(info.acceleration), info.center_shape[1] / w, False)

    task = model_task(model)
    name = mask_name or (task.mask if task is not None and task.mask else "equispaced")
    if acceleration is None:
        acceleration = float(task.accelerations[0]) if task is not None and task.accelerations else 4.0
    params_ok = mask_params(name)
    params: dict[str, Any] = {}
    if params_ok is None or "acceleration" in params_ok:
        params["acceleration"] = int(acceleration) if float(acceleration).is_integer() else acceleration
    if params_ok is None or "center_fraction" in params_ok:
        if center_fraction is None:
            fractions = tuple(task.center_fractions) if task is not None else ()
            accs = tuple(float(a) for a in task.accelerations) if task is not None else ()
            if fractions and len(fractions) == len(accs) and float(acceleration) in accs:
                center_fraction = float(fractions[accs.index(float(acceleration))])
            else:
                center_fraction = 0.32 / float(acceleration)  # fastMRI: 0.08 at R=4, 0.04 at R=8
        params["center_fraction"] = center_fraction
    elif center_fraction is not None:
        raise InputError(f"mask {name!r} takes no centre fraction", field="center_fraction",
                         expected="no --center-fraction", got=center_fraction)
    made = create_mask(name, (h, w), seed=seed_from_name(vol.path), **params)
    if made.num_low_frequencies is not None:
        frac = made.num_low_frequencies / w
    else:
        frac = float(params.get("center_fraction", float("nan")))
    # zero bands of a fully sampled file (partial Fourier, zero padding) stay unmeasured
    return MaskChoice(made.mask.to(torch.bool) & measured, name, float(acceleration), frac, True)


def outside_training(model: nn.Module, choice: MaskChoice) -> bool:
    """Whether the mask's acceleration lies outside those the model was trained for."""
    task = model_task(model)
    trained = tuple(float(a) for a in task.accelerations) if task is not None else ()
    if not trained:
        return False
    if choice.retrospective:
        return not any(math.isclose(choice.acceleration, a, rel_tol=1e-6) for a in trained)
    return min(abs(choice.acceleration - a) / a for a in trained) > _TRAINED_TOLERANCE
