"""Generic folder converters: ``fastmri-h5``, ``ismrmrd`` and ``array`` (npy/npz/mat/HDF5 arrays).

Each converts a source file, or every matching file under a folder, into fastMRI volumes
in the destination folder, resumably and optionally in parallel (``--workers``). The view
is given by the slice axis and the axes that become the image rows and columns.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from mrizoo.data.convert import is_registered, register_converter
from mrizoo.data.converters.batch import BatchResult, OutputView, convert_folder, print_progress
from mrizoo.data.converters.spec import AveragesSpec, ConversionSpec, ViewGeometry
from mrizoo.errors import InputError

__all__ = ["build_geometry", "build_spec", "convert_array", "convert_fastmri_h5", "convert_ismrmrd",
           "register_converters"]

OUTPUT_HELP = ("output folder: one <source name>[_echoN].h5 per source file and echo; finished volumes "
               "are kept, so an interrupted run resumes")
ARRAY_SUFFIXES = (".npy", ".npz", ".mat", ".h5", ".hdf5")
_AXIS_HELP = "axis letters: x readout, y/z phase encodes, s slice, c coil, e echo, a average"


def _build(cls: type, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(str(err), field=cls.__name__) from None


def build_geometry(**kwargs: Any) -> ViewGeometry:
    """A validated :class:`ViewGeometry` (bad values raise :class:`InputError`)."""
    if kwargs.get("crop") is not None:
        kwargs["crop"] = tuple(int(v) for v in kwargs["crop"])
    return _build(ViewGeometry, **kwargs)


def build_spec(**kwargs: Any) -> ConversionSpec:
    """A validated :class:`ConversionSpec` (bad values raise :class:`InputError`)."""
    return _build(ConversionSpec, **{k: v for k, v in kwargs.items() if v is not None})


def _run(source: Any, dest: Any, spec: ConversionSpec, geometry: ViewGeometry, *, workers: int,
         overwrite: bool, verbose: bool, suffixes: tuple[str, ...] | None = None) -> BatchResult:
    view = OutputView(f"{geometry.slice_axis}-slices", geometry)
    return convert_folder(source, dest, spec, [view], workers=workers, overwrite=overwrite,
                          progress=print_progress if verbose else None, suffixes=suffixes)


def _geometry_arguments(parser: argparse.ArgumentParser, *, slice_axis: str | None = "s",
                        slice_help: str | None = None) -> None:
    parser.add_argument("--slice-axis", default=slice_axis,
                        help=f"axis cut into slices ({slice_help or f'default {slice_axis}'}); "
                        "a k-space axis gets a centred 1D inverse FFT first")
    parser.add_argument("--rows", default="x", help="axis of the image rows H (default x, the readout)")
    parser.add_argument("--cols", default="y", help="axis of the image columns W, the phase encode (default y)")
    parser.add_argument("--drop-first", type=int, default=0, help="slices dropped at the start")
    parser.add_argument("--drop-last", type=int, default=0, help="slices dropped at the end")
    parser.add_argument("--flip-rows", action="store_true", help="flip images upside down")
    parser.add_argument("--flip-cols", action="store_true", help="flip images left-right")
    crop = parser.add_mutually_exclusive_group()
    crop.add_argument("--crop", nargs=2, type=int, metavar=("H", "W"), default=None,
                      help="centre-crop the reconstruction_rss target")
    crop.add_argument("--crop-to-header", action="store_true",
                      help="centre-crop the target to the source header's recon size")
    parser.add_argument("--scale", type=float, default=1.0, help="factor applied to the k-space")
    parser.add_argument("--files", default=None, help="glob pattern of source files under a folder")
    parser.add_argument("--workers", type=int, default=1, help="source files converted in parallel")
    parser.add_argument("--quiet", dest="verbose", action="store_false", help="no progress lines")


def _fastmri_arguments(parser: argparse.ArgumentParser) -> None:
    _geometry_arguments(parser)
    parser.add_argument("--pad-to-header", action="store_true",
                        help="zero-pad the phase encode to the header's encoded size")
    parser.add_argument("--odd-averages", type=int, nargs="+", default=None, metavar="I",
                        help="averages sampling the odd lines (with --even-averages: parity combination)")
    parser.add_argument("--even-averages", type=int, nargs="+", default=None, metavar="I",
                        help="averages sampling the even lines")


def _ismrmrd_arguments(parser: argparse.ArgumentParser) -> None:
    _geometry_arguments(parser)
    parser.add_argument("--group", default="dataset", help="HDF5 group of the acquisitions (default dataset)")
    parser.add_argument("--chop-axes", default="", help="axes whose image carries a (-1)^n modulation")


def _array_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--axes", required=True, help=f"one letter per array axis ({_AXIS_HELP}); "
                        ".mat arrays in MATLAB order")
    parser.add_argument("--key", default=None, help="array name in .npz/.mat/HDF5 files")
    parser.add_argument("--interleaved-complex", default=None, metavar="AXIS",
                        help="axis whose entries alternate real and imaginary parts")
    parser.add_argument("--image-axes", default="", help="axes already in image space (hybrid data)")
    parser.add_argument("--recentre-axes", default="", help="axes whose image comes out rolled by half")
    parser.add_argument("--chop-axes", default="", help="axes whose image carries a (-1)^n modulation")
    _geometry_arguments(parser, slice_axis=None,
                        slice_help="default z when the array has it, else s, else the array is one slice")


def _geometry_of(kw: dict[str, Any]) -> ViewGeometry:
    keys = ("slice_axis", "rows", "cols", "drop_first", "drop_last", "flip_rows", "flip_cols", "crop",
            "crop_to_header")
    unknown = sorted(set(kw) - set(keys))
    if unknown:
        raise InputError(f"unknown option(s) {unknown}", field="options", expected=f"geometry options among {list(keys)}")
    return build_geometry(**kw)


def convert_fastmri_h5(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    scale: float = 1.0,
    files: str | None = None,
    pad_to_header: bool = False,
    odd_averages: list[int] | None = None,
    even_averages: list[int] | None = None,
    workers: int = 1,
    overwrite: bool = False,
    verbose: bool = False,
    **geometry: Any,
) -> BatchResult:
    """Re-write fastMRI-layout files; k-space kept exactly when no image-space step is asked for."""
    averages = None
    if odd_averages or even_averages:
        averages = _build(AveragesSpec, mode="parity", odd=tuple(odd_averages or ()),
                          even=tuple(even_averages or ()))
    spec = build_spec(format="fastmri_h5", files=files, pad_to_header=pad_to_header, averages=averages,
                      scale=scale)
    return _run(source, dest, spec, _geometry_of(geometry), workers=workers, overwrite=overwrite, verbose=verbose)


def convert_ismrmrd(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    scale: float = 1.0,
    files: str | None = None,
    group: str = "dataset",
    chop_axes: str = "",
    workers: int = 1,
    overwrite: bool = False,
    verbose: bool = False,
    **geometry: Any,
) -> BatchResult:
    """Convert ISMRMRD files; axes ``e s c x y z`` (echo, slice, coil, readout, step 1, step 2)."""
    spec = build_spec(format="ismrmrd", files=files, key=group, chop_axes=chop_axes, scale=scale)
    return _run(source, dest, spec, _geometry_of(geometry), workers=workers, overwrite=overwrite, verbose=verbose)


def convert_array(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    axes: str,
    key: str | None = None,
    interleaved_complex: str | None = None,
    image_axes: str = "",
    recentre_axes: str = "",
    chop_axes: str = "",
    scale: float = 1.0,
    files: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    verbose: bool = False,
    **geometry: Any,
) -> BatchResult:
    """Convert labelled k-space arrays (2D multi-slice, 3D, multi-echo) into fastMRI volumes."""
    spec = build_spec(format="array", files=files or "**/*", key=key, axes=axes,
                      interleaved_complex=interleaved_complex, image_axes=image_axes,
                      recentre_axes=recentre_axes, chop_axes=chop_axes, scale=scale)
    if geometry.get("slice_axis") is None:  # z for 3D k-space, s for 2D multi-slice, else a single slice
        geometry["slice_axis"] = "z" if "z" in axes else "s"
    return _run(source, dest, spec, _geometry_of(geometry), workers=workers, overwrite=overwrite, verbose=verbose,
                suffixes=None if files else ARRAY_SUFFIXES)


def register_converters() -> None:
    """Register the generic converters missing from the converter registry."""
    table = (
        ("fastmri-h5", convert_fastmri_h5, _fastmri_arguments,
         "fastMRI-layout HDF5 files (pass-through with checks, optional scale/flips/averages) to fastMRI volumes",
         "a fastMRI .h5 file or a folder of them"),
        ("ismrmrd", convert_ismrmrd, _ismrmrd_arguments,
         "ISMRMRD HDF5 raw data (Cartesian, read with h5py) to fastMRI volumes",
         "an ISMRMRD .h5 file or a folder of them"),
        ("array", convert_array, _array_arguments,
         "k-space arrays (.npy, .npz, .mat v5/v7.3, HDF5) with a given axis order to fastMRI volumes",
         "an array file or a folder of them"),
    )
    for name, func, arguments, text, input_help in table:
        if not is_registered(name):
            register_converter(name, help=text, add_arguments=arguments, input_help=input_help,
                               output_help=OUTPUT_HELP)(func)
