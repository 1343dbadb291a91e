"""``mrizoo demo``: the offline demonstration (see :mod:`mrizoo.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="undersample a slice, reconstruct it, print metrics, write a PNG",
                       description="Undersample a multi-coil slice (synthetic, or a real scan given by "
                                   "--input), reconstruct it by zero-filling, CG-SENSE and L1-wavelet (ESPIRiT maps), print "
                                   "SSIM/PSNR/NMSE against the fully sampled MVUE image and write a comparison PNG.")
    p.add_argument("--input", type=Path, help="fastMRI .h5 volume or BART .cfl (default: synthetic phantom)")
    p.add_argument("--slice", type=int, dest="slice_index", help="slice of the volume (default: middle)")
    p.add_argument("--mask", default="equispaced_fraction", help="mask name (see mrizoo.masks.list_masks())")
    p.add_argument("--acceleration", type=float, default=4.0)
    p.add_argument("--center-fraction", type=float, default=0.08)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("mrizoo-demo.png"), help="figure path (PNG)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from mrizoo.demo import DemoConfig, run_demo

    res = run_demo(DemoConfig(input=args.input, slice_index=args.slice_index, mask=args.mask,
                              acceleration=args.acceleration, center_fraction=args.center_fraction,
                              seed=args.seed, output=args.out))
    print(f"input: {res.source}  coils x H x W = {' x '.join(map(str, res.shape))}  "
          f"mask: {args.mask}, actual R = {res.acceleration:.2f}")
    print(f"{'method':<14}{'SSIM':>8}{'PSNR (dB)':>11}{'NMSE':>10}{'time (s)':>10}")
    for name, m in res.metrics.items():
        print(f"{name:<14}{m['ssim']:>8.4f}{m['psnr']:>11.2f}{m['nmse']:>10.4f}{res.seconds[name]:>10.2f}")
    print(f"ESPIRiT maps: {res.seconds['espirit']:.2f} s")
    print(f"figure written to {res.figure}")
    return 0
