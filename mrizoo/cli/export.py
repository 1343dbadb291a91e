"""``mrizoo export IN.h5 OUT.nii.gz``: an output of ``reconstruct`` as NIfTI, for image viewers."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``export`` command."""
    p = sub.add_parser("export", help="write a reconstruction .h5 as NIfTI (.nii.gz) for image viewers",
                       description="Write the 'reconstruction' of an .h5 output of `mrizoo reconstruct` as a NIfTI "
                                   "file that ITK-SNAP, FSLeyes and 3D Slicer open: axes (W, H, slices), the voxel "
                                   "size from the ISMRMRD header when the file has one (else the identity), and for "
                                   "posterior outputs the std and samples as extra volumes (4th axis).")
    p.add_argument("input", help="an .h5 file with 'reconstruction' [slices, H, W]")
    p.add_argument("output", help="the NIfTI file to write (.nii.gz or .nii)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.data.nifti import export_nifti

    out = export_nifti(args.input, args.output, overwrite=args.overwrite)
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    import nibabel

    img = nibabel.load(str(out))
    print(f"{args.input} -> {out}: shape {tuple(img.shape)}, voxel size "
          f"{' x '.join(f'{v:g}' for v in img.header.get_zooms()[:3])}")
    return 0
