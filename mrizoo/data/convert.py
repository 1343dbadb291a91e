"""Converters from other raw-data formats to fastMRI-convention volumes.

Converters are registered by source-format name with :func:`register_converter`; the
``mrizoo convert FORMAT IN OUT`` command offers every registered one. A converter is a
function ``(source, dest, *, overwrite=False, **options) -> ConversionResult``; most build a
k-space array ``[slices, coils, H, W]`` and hand it to :func:`kspace_to_volume`, which reads
the sampling from the data and adds the sampling attributes and mask, the RSS target and its
``max``/``norm`` attributes (fully sampled data only) and the ISMRMRD header.

Converters living in other modules are found through ``PLUGIN_MODULES`` (imported on
first use of the registry); a plugin module may define ``register_converters()``, called
whenever the registry lacks its converters.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrizoo.data.bart import cfl_base, read_cfl
from mrizoo.data.slices import center_crop
from mrizoo.data.writer import check_output, make_ismrmrd_header, write_volume
from mrizoo.errors import InputError
from mrizoo.masks.sampling import SamplingInfo, detect_sampling
from mrizoo.physics.coils import rss
from mrizoo.physics.fft import ifft2c

__all__ = [
    "ConversionResult",
    "ConverterSpec",
    "available_converters",
    "bart_to_kspace",
    "convert_to_fastmri",
    "convert_bart",
    "get_converter",
    "is_registered",
    "kspace_to_volume",
    "register_converter",
    "PLUGIN_MODULES",
]

# modules whose converters join the registry on its first use (see _load_plugins)
PLUGIN_MODULES: list[str] = [
    "mrizoo.data.converters.generic", "mrizoo.data.converters.catalog_converters", "mrizoo.data.converters.twix",
]

ConverterFunc = Callable[..., "ConversionResult"]


@dataclass(frozen=True)
class ConverterSpec:
    """A registered converter: its function, one-line help and extra CLI arguments."""

    name: str
    func: ConverterFunc
    help: str = ""
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    input_help: str = "input file"
    output_help: str = "output .h5 file"


@dataclass(frozen=True)
class ConversionResult:
    """What a converter wrote, with the sampling read from the data."""

    path: Path
    kspace_shape: tuple[int, ...]
    target_shape: tuple[int, ...] | None
    sampling_info: SamplingInfo

    @property
    def undersampled(self) -> bool:
        return not self.sampling_info.fully_sampled

    @property
    def sampling(self) -> str:
        return self.sampling_info.sampling

    @property
    def acceleration(self) -> float:
        return self.sampling_info.acceleration

    @property
    def center_shape(self) -> tuple[int, int]:
        return self.sampling_info.center_shape

    @property
    def sampled_columns(self) -> int:
        """Columns holding at least one measured sample."""
        return int(self.sampling_info.mask.any(dim=0).sum())

    def summary(self) -> str:
        target = "no target (undersampled input)" if self.target_shape is None else (
            f"reconstruction_rss {list(self.target_shape)}"
        )
        return (f"wrote {self.path}: kspace {list(self.kspace_shape)} ({self.sampling_info.describe()}), "
                f"{target}")


_REGISTRY: dict[str, ConverterSpec] = {}
_plugins_loaded: dict[str, dict[str, ConverterSpec]] = {}  # module -> the registry it filled


def register_converter(
    name: str,
    *,
    help: str = "",  # noqa: A002 - mirrors argparse
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    input_help: str = "input file",
    output_help: str = "output .h5 file",
) -> Callable[[ConverterFunc], ConverterFunc]:
    """Decorator registering a converter under a source-format ``name`` (unique).

    ``add_arguments(parser)`` adds the converter's own command-line options; their values
    are passed to the converter as keyword arguments.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise InputError("converter name must be a lower-case word", field="name",
                         expected="letters, digits, '-' or '_'", got=repr(name))

    def decorate(func: ConverterFunc) -> ConverterFunc:
        if name in _REGISTRY:
            raise InputError(
                "a converter with this name is already registered", field="name",
                got=f"{name!r} (registered by {_REGISTRY[name].func.__module__})",
            )
        _REGISTRY[name] = ConverterSpec(name, func, help, add_arguments, input_help, output_help)
        return func

    return decorate


def _load_plugins() -> None:
    for module in PLUGIN_MODULES:
        if _plugins_loaded.get(module) is not _REGISTRY:
            hook = getattr(importlib.import_module(module), "register_converters", None)
            _plugins_loaded[module] = _REGISTRY
            if hook is not None:  # registers the module's converters missing from the current registry
                hook()


def is_registered(name: str) -> bool:
    """Whether ``name`` is in the registry (without importing the plugin modules)."""
    return name in _REGISTRY


def available_converters() -> list[str]:
    """Names of the registered converters."""
    _load_plugins()
    return sorted(_REGISTRY)


def get_converter(name: str) -> ConverterSpec:
    """The converter registered as ``name``."""
    _load_plugins()
    if name not in _REGISTRY:
        raise InputError("unknown source format", field="converter",
                         expected=f"one of {sorted(_REGISTRY)}", got=repr(name))
    return _REGISTRY[name]


def convert_to_fastmri(
    name: str, source: str | os.PathLike[str], dest: str | os.PathLike[str], **options: Any
) -> ConversionResult:
    """Convert ``source`` (format ``name``) to the fastMRI volume ``dest``."""
    return get_converter(name).func(source, dest, **options)


# --------------------------------------------------------------------------- shared writer
def _check_crop(crop: Any, shape: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in crop)
    except (TypeError, ValueError):
        raise InputError("crop must be two integers (h, w)", field="crop", got=crop) from None
    if not (1 <= h <= shape[0] and 1 <= w <= shape[1]):
        raise InputError("crop must fit in the image", field="crop",
                         expected=f"1..{shape[0]} x 1..{shape[1]}", got=(h, w))
    return h, w


def kspace_to_volume(
    kspace: np.ndarray | torch.Tensor,
    dest: str | os.PathLike[str],
    *,
    crop: tuple[int, int] | None = None,
    acquisition: str = "unknown",
    patient_id: str | None = None,
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
    sources: tuple[str | os.PathLike[str], ...] = (),
    path: str | os.PathLike[str] | None = None,
) -> ConversionResult:
    """Write centred k-space ``[slices, coils, H, W]`` as a fastMRI volume.

    The sampling is read from the data (:func:`~mrizoo.masks.sampling.detect_sampling`): a
    location exactly zero in every slice and coil was not measured. The volume gets the
    attributes ``sampling``, ``acceleration`` and ``center_shape`` (and any recognised
    partial-Fourier or zero-padding bands) and, unless every location is measured, the
    ``mask`` (``[W]`` for a column pattern, else ``[H, W]``). Only fully sampled data get the
    target ``reconstruction_rss`` (RSS of ``ifft2c``, centre-cropped to ``crop``) and the
    attributes ``max`` and ``norm``: the zero-filled RSS of undersampled data is not a
    reference image. ``sources`` are the input files, never overwritten; ``path`` names the
    input in error messages.
    """
    check_output(dest, sources, overwrite=overwrite)
    where = path if path is not None else (sources[0] if sources else None)
    k = kspace.detach().cpu() if isinstance(kspace, torch.Tensor) else torch.from_numpy(np.asarray(kspace))
    if not torch.is_complex(k) or k.ndim != 4 or 0 in k.shape:
        raise InputError("k-space must be complex [slices, coils, H, W]", path=where, field="kspace",
                         got=f"{k.dtype} {tuple(k.shape)}")
    k = k.to(torch.complex64)
    info = detect_sampling(k, path=where)
    h, w = k.shape[-2:]
    crop_hw = (h, w) if crop is None else _check_crop(crop, (h, w))

    volume_attrs: dict[str, Any] = {"acquisition": str(acquisition)}
    if patient_id is not None:
        volume_attrs["patient_id"] = str(patient_id)
    volume_attrs.update(attrs or {})
    volume_attrs.update(info.attrs())
    targets = None
    if info.fully_sampled:
        target = torch.stack([center_crop(rss(ifft2c(k[s])), crop_hw) for s in range(k.shape[0])])
        targets = {"reconstruction_rss": target.numpy()}
        volume_attrs["max"] = float(target.max())
        volume_attrs["norm"] = float(torch.linalg.vector_norm(target.double()))
    mask = None if bool(info.mask.all()) else info.stored_mask()
    header = make_ismrmrd_header((h, w, 1), (crop_hw[0], crop_hw[1], 1))
    out = write_volume(
        dest, kspace=k.numpy(), mask=mask, targets=targets, attrs=volume_attrs, header=header,
        overwrite=overwrite, sources=sources,
    )
    return ConversionResult(
        path=out,
        kspace_shape=tuple(k.shape),
        target_shape=None if targets is None else tuple(targets["reconstruction_rss"].shape),
        sampling_info=info,
    )


# --------------------------------------------------------------------------- BART
BART_DIMS = (
    "x (READ)", "y (PHS1)", "z (PHS2)", "coil", "map", "TE", "coeff", "coeff2",
    "iter", "cshift", "time", "time2", "level", "slice", "avg", "batch",
)
_SPATIAL = {"x": 0, "y": 1, "z": 2}
_COIL, _SLICE = 3, 13


def bart_to_kspace(
    array: np.ndarray,
    *,
    slice_axis: str | None = None,
    slice_ifft: bool = True,
    path: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """BART k-space (BART dimension order) -> fastMRI layout ``[slices, coils, H, W]``.

    The two non-singleton axes among BART's x, y, z are the image rows ``H`` and columns
    ``W``, in that order (BART's first spatial axis is the readout); slices come from BART's
    slice dimension (13). A 3D acquisition (x, y and z all larger than 1) needs
    ``slice_axis``: the axis is made the slice axis by a centred 1D inverse FFT (skip it
    with ``slice_ifft=False`` when that axis is already in image space); the other two
    spatial axes are ``H`` and ``W``. Coils come from BART's coil dimension (3); any other
    dimension must have size 1.
    """
    a = np.asarray(array)
    if a.dtype.kind != "c":
        raise InputError("BART array must be complex k-space", path=path, got=str(a.dtype))
    if a.ndim > len(BART_DIMS):
        raise InputError("too many BART dimensions", path=path, expected=f"<= {len(BART_DIMS)}", got=a.ndim)
    a = a.reshape(a.shape + (1,) * (len(BART_DIMS) - a.ndim))
    extra = {BART_DIMS[d]: a.shape[d] for d in range(len(BART_DIMS))
             if d not in (0, 1, 2, _COIL, _SLICE) and a.shape[d] > 1}
    if extra:
        raise InputError("unsupported BART dimensions are larger than 1", path=path,
                         expected="only x, y, z, coil and slice dimensions", got=extra)
    if slice_axis is not None:
        if slice_axis not in _SPATIAL:
            raise InputError("unknown slice axis", field="slice_axis", expected="x, y or z", got=slice_axis)
        if a.shape[_SLICE] > 1:
            raise InputError("the BART slice dimension is already used", path=path, field="slice_axis",
                             got=f"{a.shape[_SLICE]} slices")
        s = _SPATIAL[slice_axis]
        plane = [d for d in (0, 1, 2) if d != s]
        if slice_ifft:
            a = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(a, axes=s), axis=s, norm="ortho"), axes=s)
    else:
        big = [d for d in (0, 1, 2) if a.shape[d] > 1]
        if len(big) == 3:
            raise InputError(
                "3D k-space: choose the axis to cut into slices", path=path, field="slice_axis",
                expected="slice_axis x, y or z (CLI: --slice-axis)", got=f"dims {a.shape[:3]}",
            )
        if len(big) < 2:
            raise InputError("not a 2D image: fewer than two spatial axes are larger than 1",
                             path=path, got=f"dims {a.shape[:3]}")
        plane = big
        s = _SLICE
    rest = [d for d in range(len(BART_DIMS)) if d not in (s, _COIL, *plane)]
    out = a.transpose(s, _COIL, plane[0], plane[1], *rest).reshape(
        a.shape[s], a.shape[_COIL], a.shape[plane[0]], a.shape[plane[1]]
    )
    return np.ascontiguousarray(out, dtype=np.complex64)


def _bart_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--crop", nargs=2, type=int, metavar=("H", "W"), default=None,
                        help="centre-crop the reconstruction_rss target to H x W (default: full size)")
    parser.add_argument("--slice-axis", choices=sorted(_SPATIAL), default=None,
                        help="for 3D k-space: the BART axis cut into slices after a 1D inverse FFT")
    parser.add_argument("--no-slice-ifft", dest="slice_ifft", action="store_false",
                        help="the --slice-axis is already in image space (no 1D inverse FFT)")
    parser.add_argument("--acquisition", default="unknown", help="value of the 'acquisition' attribute")
    parser.add_argument("--patient-id", default=None, help="value of the 'patient_id' attribute")


@register_converter(
    "bart",
    help="BART .cfl/.hdr k-space (dims x, y, z, coil, ..., slice) to a fastMRI volume",
    add_arguments=_bart_arguments,
    input_help="BART array: NAME, NAME.cfl or NAME.hdr",
)
def convert_bart(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    crop: tuple[int, int] | None = None,
    slice_axis: str | None = None,
    slice_ifft: bool = True,
    acquisition: str = "unknown",
    patient_id: str | None = None,
    overwrite: bool = False,
) -> ConversionResult:
    """Convert a BART k-space array (``NAME``, ``NAME.cfl`` or ``NAME.hdr``) to ``dest``."""
    base = cfl_base(source)
    sources = (base.with_suffix(".cfl"), base.with_suffix(".hdr"))
    check_output(dest, sources, overwrite=overwrite)
    kspace = bart_to_kspace(read_cfl(base), slice_axis=slice_axis, slice_ifft=slice_ifft,
                            path=base.with_suffix(".cfl"))
    return kspace_to_volume(
        kspace, dest, crop=crop, acquisition=acquisition, patient_id=patient_id,
        attrs={"source_format": "bart"}, overwrite=overwrite, sources=sources,
    )
