"""Siemens raw data (twix ``.dat``, VB and VD/VE) to fastMRI volumes, read with ``twixtools``.

``mrizoo convert twix FILE.dat OUT.h5``: the image scan of the last measurement in the file
(earlier ones are adjustment scans) becomes ``kspace [slices, coils, H, W]`` with ``H`` the
readout (columns ``Col``, readout oversampling kept, as fastMRI keeps it) and ``W`` the phase
encode (lines ``Lin``). Averages (``Ave``) and segments (``Seg``) are averaged by twixtools;
2D slices (``Sli``) are slices; the partitions of a 3D scan (``Par``) are cut into slices by
a centred 1D inverse FFT. Lines and readout samples are placed on the full k-space grid by the
scan's k-space centre (``CenterLin``, ``CenterCol``), so partial Fourier and asymmetric echoes
leave zero bands that the sampling detection reports. The ``reconstruction_rss`` target
(fully sampled scans only) is cropped to remove the readout oversampling.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mrizoo.data.convert import ConversionResult, is_registered, kspace_to_volume, register_converter
from mrizoo.data.converters.pipeline import ifftc
from mrizoo.data.writer import check_output
from mrizoo.errors import InputError

__all__ = ["convert_twix", "read_twix_kspace", "register_converters"]

# twixtools' dimension names; those mrizoo maps to fastMRI axes, and those it averages
_USED = ("Par", "Sli", "Cha", "Col", "Lin")
_AVERAGED = ("Ave", "Seg")


def _twixtools() -> Any:
    try:
        # imported on use: only Siemens raw data needs it (a clear error if it is missing)
        import twixtools
    except ImportError:
        raise InputError("reading Siemens raw data needs the twixtools package", field="twixtools",
                         expected="pip install twixtools") from None
    return twixtools


def _place(data: np.ndarray, axis: int, center: int) -> tuple[np.ndarray, int]:
    """Put ``data`` on a grid along ``axis`` whose centre ``n // 2`` is the sample ``center``."""
    n = data.shape[axis]
    center = int(center) if 0 <= int(center) < n else n // 2
    full = max(n, 2 * max(center, n - center))
    offset = full // 2 - center
    if full == n and offset == 0:
        return data, 0
    shape = list(data.shape)
    shape[axis] = full
    out = np.zeros(shape, dtype=data.dtype)
    index = [slice(None)] * data.ndim
    index[axis] = slice(offset, offset + n)
    out[tuple(index)] = data
    return out, offset


def _header_value(hdr: dict, *keys: str) -> Any:
    node: Any = hdr
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def read_twix_kspace(
    path: str | os.PathLike[str],
    *,
    measurement: int = -1,
    select: dict[str, int] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """k-space ``[slices, coils, H, W]`` (complex64) of a twix file and what was learnt about it.

    ``select`` picks one index of further dimensions (``{"Eco": 0, "Rep": 2}``); a dimension
    larger than 1 that is neither used nor selected is refused. The returned dict holds the
    readout oversampling factor (``readout_os``), the protocol name and the grid placement.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("source file not found", path=path)
    twixtools = _twixtools()
    failure = None
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            scans = twixtools.map_twix(str(path), verbose=False)
    except Exception as err:  # noqa: BLE001 - twixtools raises many kinds on foreign files
        failure = f"{type(err).__name__}: {err}"[:200]
    if failure is not None:
        with warnings.catch_warnings():  # twixtools leaves the file open when it gives up
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        raise InputError("not a readable Siemens raw-data (twix) file", path=path, got=failure)
    if not isinstance(scans, list) or not scans:
        raise InputError("no measurement in the twix file", path=path)
    if isinstance(measurement, bool) or not isinstance(measurement, int) or not -len(scans) <= measurement < len(scans):
        raise InputError("measurement index out of range", path=path, field="measurement",
                         expected=f"-{len(scans)} <= index < {len(scans)}", got=measurement)
    meas = scans[measurement]
    image = meas.get("image") if isinstance(meas, dict) else None
    if image is None:
        raise InputError("the measurement holds no image scans", path=path, field="image",
                         expected="a measurement with imaging lines (not only adjustment scans)")
    dims = list(image.dims)
    sizes = dict(zip(dims, (int(s) for s in image.shape)))
    select = dict(select or {})
    unknown = sorted(set(select) - set(dims))
    if unknown or any(d in _USED or d in _AVERAGED for d in select):
        raise InputError("cannot select these dimensions", path=path, field="select",
                         expected=f"dimensions among {[d for d in dims if d not in _USED + _AVERAGED]}",
                         got=sorted(select))
    for dim, index in select.items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < sizes[dim]:
            raise InputError("selected index out of range", path=path, field=f"select {dim}",
                             expected=f"0 <= index < {sizes[dim]}", got=index)
    extra = {d: n for d, n in sizes.items() if n > 1 and d not in _USED and d not in _AVERAGED and d not in select}
    if extra:
        raise InputError("the scan has further dimensions larger than 1", path=path, field="dims",
                         expected="pick one index of each (CLI: --select DIM=INDEX)", got=extra)
    with contextlib.redirect_stdout(io.StringIO()):
        data = np.asarray(image[:], dtype=np.complex64)
    index = tuple(select.get(d, slice(None)) if d not in _AVERAGED else 0 for d in dims)
    data = data[index]
    kept = [d for d in dims if d not in select and d not in _AVERAGED]
    data = data.reshape([sizes[d] for d in kept])
    order = [kept.index(d) for d in _USED]
    rest = [i for i in range(len(kept)) if i not in order]
    data = np.transpose(data, order + rest).reshape([sizes[d] for d in _USED])  # Par, Sli, Cha, Col, Lin
    data, col_offset = _place(data, 3, image.kspace_center_col)
    data, lin_offset = _place(data, 4, image.kspace_center_lin)
    if data.shape[0] > 1:  # 3D: partitions -> slices
        data, _ = _place(data, 0, getattr(image, "kspace_center_par", data.shape[0] // 2))
        data = ifftc(data, 0)
    kspace = np.ascontiguousarray(data.reshape(-1, *data.shape[2:]), dtype=np.complex64)
    hdr = meas.get("hdr", {}) or {}
    os_factor = _header_value(hdr, "Meas", "flReadoutOSFactor")
    try:
        os_factor = float(os_factor) if os_factor is not None else 1.0
    except (TypeError, ValueError):
        os_factor = 1.0
    protocol = _header_value(hdr, "MeasYaps", "tProtocolName") or _header_value(hdr, "Meas", "tProtocolName")
    info = {
        "readout_os": os_factor if os_factor >= 1 else 1.0,
        "protocol": str(protocol).strip('"') if protocol else None,
        "readout_offset": col_offset,
        "line_offset": lin_offset,
        "measurements": len(scans),
    }
    return kspace, info


def _parse_select(values: list[str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in values or []:
        name, _, index = item.partition("=")
        try:
            out[name.strip()] = int(index)
        except ValueError:
            raise InputError("a selection is DIM=INDEX", field="select", expected="e.g. Eco=0 or Rep=2",
                             got=repr(item)) from None
    return out


def convert_twix(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    measurement: int = -1,
    select: dict[str, int] | list[str] | None = None,
    scale: float = 1.0,
    crop: tuple[int, int] | None = None,
    acquisition: str | None = None,
    patient_id: str | None = None,
    overwrite: bool = False,
) -> ConversionResult:
    """Convert a Siemens twix file to the fastMRI volume ``dest`` (see the module docstring).

    The target is cropped to ``crop`` or, by default, to the readout size without
    oversampling. The patient's identity in the raw-data header is never copied.
    """
    source = Path(source)
    check_output(dest, (source,), overwrite=overwrite)
    if isinstance(select, list):
        select = _parse_select(select)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not np.isfinite(scale) or scale <= 0:
        raise InputError("scale must be a positive number", field="scale", got=scale)
    kspace, info = read_twix_kspace(source, measurement=measurement, select=select)
    h, w = kspace.shape[-2:]
    if crop is None:
        crop = (max(1, int(round(h / info["readout_os"]))), w)
    return kspace_to_volume(
        kspace * np.float32(scale), dest, crop=crop, acquisition=acquisition or info["protocol"] or "unknown",
        patient_id=patient_id,
        attrs={"source_format": "twix", "readout_oversampling": float(info["readout_os"]),
               "scale": float(scale)},
        overwrite=overwrite, sources=(source,), path=source,
    )


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--measurement", type=int, default=-1,
                        help="measurement of a multi-measurement file (default -1, the last: the imaging scan)")
    parser.add_argument("--select", nargs="+", default=None, metavar="DIM=INDEX",
                        help="one index of further dimensions, e.g. Eco=0 Rep=1")
    parser.add_argument("--scale", type=float, default=1.0, help="factor applied to the k-space")
    parser.add_argument("--crop", nargs=2, type=int, metavar=("H", "W"), default=None,
                        help="centre-crop the target (default: the readout without oversampling x all lines)")
    parser.add_argument("--acquisition", default=None, help="'acquisition' attribute (default: the protocol name)")
    parser.add_argument("--patient-id", default=None, help="value of the 'patient_id' attribute")


def register_converters() -> None:
    """Register the ``twix`` converter when the registry lacks it."""
    if not is_registered("twix"):
        register_converter(
            "twix", help="Siemens raw data (twix .dat, VB and VD/VE; read with twixtools) to a fastMRI volume",
            add_arguments=_arguments, input_help="a Siemens .dat raw-data file",
        )(convert_twix)
