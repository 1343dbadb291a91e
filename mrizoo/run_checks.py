"""Checks made before a run does any work, and the output write that never leaves half a file.

:func:`pick_device` refuses devices this machine lacks; :func:`check_numbers` the numeric options
of a reconstruction; :func:`preflight` opens an input volume and checks its output (and figure)
paths: not existing unless overwritten, never the input, in a writable folder;
:func:`check_space` refuses an output that cannot fit on its disk; :func:`write_images` writes
an ``.h5`` atomically and turns a full disk or a read-only target into :class:`InputError`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from mrizoo._atomic import atomic_file
from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.errors import InputError
from mrizoo.masks import list_masks
from mrizoo.masks._common import check_acceleration, check_center_fraction, check_int

__all__ = ["pick_device", "check_numbers", "check_writable", "check_target", "is_complete", "Checked",
           "preflight", "check_space", "write_images"]


def pick_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch device that exists here (None: cuda when available, else cpu).

    ``cuda`` without CUDA, a CUDA index past the last GPU and unknown names raise
    :class:`InputError` (field ``device``), so a run never fails after reading its data.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError("unknown device", field="device", expected="e.g. 'cpu', 'cuda', 'cuda:1'",
                         got=repr(device)) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("CUDA is not available on this machine", field="device",
                             expected="'cpu' (or a machine with a CUDA GPU)", got=repr(str(device)))
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise InputError("no such CUDA device", field="device", expected=f"cuda:0 .. cuda:{count - 1}",
                             got=repr(str(device)))
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError("MPS is not available on this machine", field="device", expected="'cpu'",
                             got=repr(str(device)))
    elif dev.type != "cpu":
        raise InputError("unsupported device", field="device", expected="'cpu', 'cuda[:N]' or 'mps'",
                         got=repr(str(device)))
    return dev




def write_images(out_path: Path, images: dict[str, np.ndarray], attrs: dict[str, Any], overwrite: bool) -> None:
    if out_path.exists() and not overwrite:
        raise InputError("output exists", path=out_path, expected="a new path, or --overwrite")
    with atomic_file(out_path, suffix=".h5") as tmp:  # a full disk or read-only target: InputError
        with h5py.File(tmp, "w") as f:
            for key, arr in images.items():
                f.create_dataset(key, data=np.ascontiguousarray(arr, dtype=np.float32))
            for key, value in attrs.items():
                f.attrs[key] = value




def check_numbers(mask: str | None, acceleration: float | None, center_fraction: float | None,
                   batch_size: int, samples: int | None, save_samples: bool, upsample: int,
                   seed: int | None, figure_slice: int | None) -> None:
    """Options that need neither the model nor the data, checked first."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError("batch size must be a positive integer", field="batch_size", got=batch_size)
    if isinstance(upsample, bool) or not isinstance(upsample, int) or upsample < 1:
        raise InputError("upsampling factor must be a positive integer", field="upsample", got=upsample)
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 2):
        raise InputError("need at least two posterior samples for a mean and std", field="samples",
                         expected="int >= 2", got=samples)
    if samples is None and save_samples:
        raise InputError("saving samples needs --samples", field="save_samples", expected="--samples P")
    if acceleration is not None:
        check_acceleration(acceleration, "acceleration")
    if center_fraction is not None:
        check_center_fraction(center_fraction, "center_fraction")
    if mask is not None and mask not in list_masks():
        raise InputError("unknown mask", field="mask", expected=f"one of {list_masks()}", got=repr(mask))
    if seed is not None:
        check_int(seed, "seed", low=0)
    if figure_slice is not None and (isinstance(figure_slice, bool) or not isinstance(figure_slice, int)):
        raise InputError("slice index must be an integer", field="figure_slice", got=repr(figure_slice))


def check_writable(path: Path, field: str) -> None:
    """``path`` can be created: its nearest existing folder is writable."""
    probe = path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError("cannot write there: a parent is not a folder", path=probe, field=field)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError("cannot write there (read-only or no permission)", path=probe, field=field,
                         expected="a writable folder")


def check_target(src: Path, out: Path, field: str, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        what = "figure" if field == "figure" else "output"
        raise InputError(f"{what} exists", path=out, expected="a new path, or --overwrite")
    if out.exists() and not out.is_file():
        raise InputError("output exists and is not a file", path=out, field=field)
    if src.exists() and (out.resolve() == src.resolve() or (out.exists() and os.path.samefile(out, src))):
        raise InputError("output would replace the input", path=out, field=field, expected="another path")
    check_writable(out, field)


def is_complete(out: Path, num_slices: int) -> bool:
    """An earlier output holding all ``num_slices`` reconstructed slices."""
    try:
        with h5py.File(out, "r") as f:
            ds = f.get("reconstruction")
            return isinstance(ds, h5py.Dataset) and ds.ndim == 3 and ds.shape[0] == num_slices
    except OSError:
        return False


@dataclass
class Checked:
    num_slices: int
    multicoil: bool
    shape: str
    skip: bool


def preflight(src: Path, out: Path, figure: Path | None, figure_slice: int | None, overwrite: bool,
               skip_existing: bool) -> Checked:
    """Check one input and its outputs without running anything."""
    with FastMRIVolume(src) as vol:
        n, multicoil, shape = vol.num_slices, vol.multicoil, f"{vol.kspace_shape}"
    if skip_existing and out.exists():
        if not is_complete(out, n):
            raise InputError("the existing output is not a complete reconstruction of the input", path=out,
                             expected="remove it, or --overwrite")
        return Checked(n, multicoil, shape, True)
    if figure_slice is not None and not -n <= figure_slice < n:
        raise InputError("slice index out of range", path=src, field="figure_slice",
                         expected=f"0 <= index < {n}", got=figure_slice)
    check_target(src, out, "output", overwrite)
    if figure is not None:
        if figure.resolve() == out.resolve():
            raise InputError("the figure would replace the output", path=figure, field="figure")
        check_target(src, figure, "figure", overwrite)
    return Checked(n, multicoil, shape, False)


def check_space(out: Path, nbytes: int) -> None:
    """Refuse before running when the output cannot fit on its disk."""
    probe = out.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if nbytes + (1 << 20) > free:
        raise InputError("not enough free space for the output", path=out,
                         expected=f"about {nbytes / 1e6:.1f} MB free", got=f"{free / 1e6:.1f} MB")
