"""``mrizoo reconstruct MODEL IN [OUT]``: reconstruct fastMRI-convention volumes with a zoo model."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Any

from mrizoo.cli import _args

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``reconstruct`` command."""
    p = subparsers.add_parser(
        "reconstruct",
        help="reconstruct a fastMRI-convention .h5 volume (or a folder of them) with a model",
        description="Reconstruct every slice of fastMRI-convention volumes. Fully sampled k-space is "
        "undersampled retrospectively (mask seeded from the file name); k-space that is already "
        "undersampled is reconstructed from its own samples, never undersampled again. The output holds "
        "'reconstruction' [slices, H, W], the attributes fastMRI's evaluate.py reads and the weights' "
        "source and sha256. Every option is checked before any work.",
    )
    p.add_argument("model", help="zoo name, hf-hub:org/repo[@revision] or checkpoint folder")
    p.add_argument("input", help="a .h5 volume or a folder of them")
    p.add_argument("output", nargs="?", default=None,
                   help="output .h5 (a folder when INPUT is one); default <input>_<model>")
    g = p.add_argument_group("undersampling (fully sampled input only)")
    g.add_argument("--mask", default=None, help="mask family (default: the model's training mask, else equispaced)")
    g.add_argument("--acceleration", type=_args.acceleration, default=None,
                   help="acceleration R (default: the model's first training acceleration, else 4)")
    g.add_argument("--center-fraction", type=_args.center_fraction, default=None,
                   help="fully sampled centre fraction (default: the model's, else 0.32 / R)")
    r = p.add_argument_group("running")
    r.add_argument("--batch-size", type=_args.positive_int, default=4, help="slices per model call (default 4)")
    r.add_argument("--device", type=_args.device, default=None, help="torch device (default: cuda when available, else cpu)")
    r.add_argument("--upsample", type=_args.positive_int, default=1,
                   help="reconstruct at F times the size and crop back (VarNet only; default 1)")
    r.add_argument("--samples", type=_args.int_at_least(2), default=None,
                   help="posterior models: P samples; writes their mean and 'std'")
    r.add_argument("--save-samples", action="store_true", help="also write all 'samples' [P, slices, H, W]")
    r.add_argument("--seed", type=_args.nonnegative_int, default=0, help="noise seed of posterior samplers (default 0)")
    r.add_argument("--adapt", action="store_true",
                   help="test-time adaptation: fit a copy of the model to each slice's own measurements first "
                        "(learned models; slower, see the README)")
    r.add_argument("--adapt-steps", type=_args.nonnegative_int, default=None,
                   help="most adaptation steps per slice (default 20; stops earlier on the held-out error; "
                        "0: only the final data consistency and refinement)")
    o = p.add_argument_group("output")
    x = o.add_mutually_exclusive_group()
    x.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    x.add_argument("--skip-existing", action="store_true",
                   help="keep complete existing outputs and do the rest (resumes a folder run that stopped)")
    o.add_argument("--format", choices=("h5", "nifti"), default="h5",
                   help="h5 (fastMRI convention, default) or nifti (.nii.gz for viewers; std and samples as extra "
                        "volumes; voxel size from the ISMRMRD header)")
    o.add_argument("--figure", default=None, help="write a comparison PNG (a folder of PNGs for folder input)")
    o.add_argument("--figure-slice", type=_args.slice_index, default=None, help="slice shown in the figure (default: middle)")
    o.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.reconstruct import reconstruct_path

    logger = logging.getLogger("mrizoo.reconstruct")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("mrizoo reconstruct: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    with warnings.catch_warnings():  # the logger above prints each warning once
        warnings.simplefilter("ignore", UserWarning)
        results = reconstruct_path(
            args.model, args.input, args.output,
            mask=args.mask, acceleration=args.acceleration, center_fraction=args.center_fraction,
            batch_size=args.batch_size, device=args.device, samples=args.samples,
            save_samples=args.save_samples, upsample=args.upsample, overwrite=args.overwrite,
            skip_existing=args.skip_existing,
            figure=args.figure, figure_slice=args.figure_slice, seed=args.seed,
            progress=not args.no_progress, format=args.format, adapt=args.adapt, adapt_steps=args.adapt_steps,
        )
    weights = next((r.weights for r in results if r.weights), "")
    if weights:
        print(f"weights: {weights}")
    for res in results:
        print(res.summary())
        if res.figure is not None:
            print(f"figure: {res.figure}")
    return 0

