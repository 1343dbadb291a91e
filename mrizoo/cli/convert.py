"""``mrizoo convert FORMAT IN OUT``: raw data in another format -> a fastMRI-convention volume."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]

_COMMON = {"command", "func", "source_format", "input", "output", "overwrite"}


def register(subparsers: Any) -> None:
    """Add the ``convert`` command, with one sub-command per registered converter."""
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.data.convert import available_converters, get_converter

    parser = subparsers.add_parser(
        "convert",
        help="convert raw data or a catalog dataset to fastMRI-convention HDF5 volumes",
        description="Convert raw k-space in another format to a fastMRI-convention HDF5 volume "
        "(kspace [slices, coils, H, W], ISMRMRD header). The sampling is read from the data (exact "
        "zeros in every coil = not measured): each volume records 'sampling' (fully_sampled or "
        "undersampled), 'acceleration' and 'center_shape', stores the mask of undersampled data ([W] "
        "for column patterns, else [H, W]) and gets a reconstruction_rss target only when fully "
        "sampled. Partial-Fourier and zero-padding bands are reported, not counted as undersampling. "
        "An output never replaces an input file.",
    )
    formats = parser.add_subparsers(dest="source_format", metavar="FORMAT", required=True)
    for name in available_converters():
        spec = get_converter(name)
        sub = formats.add_parser(name, help=spec.help, description=spec.help)
        sub.add_argument("input", help=spec.input_help)
        sub.add_argument("output", help=spec.output_help)
        sub.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
        if spec.add_arguments is not None:
            spec.add_arguments(sub)
        sub.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.data.convert import convert_to_fastmri

    options = {k: v for k, v in vars(args).items() if k not in _COMMON}
    result = convert_to_fastmri(
        args.source_format, args.input, args.output, overwrite=args.overwrite, **options
    )
    print(result.summary())
    return 0
