"""``mrizoo demo``: the offline demonstration (see :mod:`mrizoo.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mrizoo.cli import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="reconstruct a shipped real scan with shipped zoo models; metrics + PNG",
                       description="Reconstruct the real undersampled brain scan that ships with mrizoo (or "
                                   "--input) with the demo zoo models that ship with it (varnet-mini-r4, "
                                   "rcgan-mini-r4), zero-filling, CG-SENSE and L1-wavelet; print "
                                   "SSIM/PSNR/NMSE against the fully sampled RSS reference and write a figure with "
                                   "errors and the posterior standard deviation. Baselines and metrics are those "
                                   "of `mrizoo evaluate` (fastMRI's centre crop to the reference). Needs no network.")
    p.add_argument("--input", type=Path, help="fastMRI .h5 or BART .cfl k-space (default: the shipped scan); "
                                              "its sampling is read from the data: fully sampled input is "
                                              "undersampled with --mask, undersampled input is used as measured")
    p.add_argument("--slice", type=_args.slice_index, dest="slice_index", help="slice of the volume (default: middle)")
    p.add_argument("--model", action="append", dest="models", metavar="NAME",
                   help="zoo name or checkpoint folder; repeat for several (default: the shipped demo models)")
    p.add_argument("--samples", type=_args.int_at_least(2), default=8, help="posterior samples of posterior models (default 8)")
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="skip CG-SENSE and L1-wavelet (zero-filled is always shown)")
    p.add_argument("--mask", default="equispaced_fraction",
                   help="mask for fully sampled input (see mrizoo.masks.list_masks())")
    p.add_argument("--acceleration", type=_args.acceleration, default=4.0, help="for fully sampled input")
    p.add_argument("--center-fraction", type=_args.center_fraction, default=0.08, help="for fully sampled input")
    p.add_argument("--seed", type=_args.nonnegative_int, default=0, help="mask and posterior-sampling seed")
    p.add_argument("--device", type=_args.device, default="cpu", help="torch device of the models (default cpu)")
    p.add_argument("--out", type=Path, default=Path("mrizoo-demo.png"), help="figure path (PNG)")
    p.add_argument("--adapt", action="store_true",
                   help="also show each model adapted to the scan (test-time adaptation), beside the plain one")
    p.add_argument("--adapt-steps", type=_args.nonnegative_int, default=None,
                   help="most adaptation steps (default 20; stops earlier on the held-out error; "
                        "0: only the final data consistency and refinement)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.demo import DEFAULT_MODELS, DemoConfig, run_demo

    res = run_demo(DemoConfig(input=args.input, slice_index=args.slice_index, mask=args.mask,
                              acceleration=args.acceleration, center_fraction=args.center_fraction,
                              seed=args.seed, models=tuple(args.models or DEFAULT_MODELS), samples=args.samples,
                              baselines=args.baselines, device=args.device, output=args.out,
                              adapt=args.adapt, adapt_steps=args.adapt_steps))
    print(f"input: {res.source}  coils x H x W = {' x '.join(map(str, res.shape))}  R = {res.acceleration:.2f}")
    for line in res.weights.values():
        print(f"weights: {line}")
    width = max(len(n) for n in res.seconds) + 2
    if res.metrics:
        print(f"{'method':<{width}}{'SSIM':>8}{'PSNR (dB)':>11}{'NMSE':>10}{'time (s)':>10}")
        for name, m in res.metrics.items():
            print(f"{name:<{width}}{m['ssim']:>8.4f}{m['psnr']:>11.2f}{m['nmse']:>10.4f}{res.seconds[name]:>10.2f}")
        for note in res.notes:
            print(note)
    else:
        for note in res.notes or ["no fully sampled reference in the input: no metrics"]:
            print(note)
        for name, sec in res.seconds.items():
            if name != "espirit":
                print(f"{name:<{width}}{sec:>10.2f} s")
    for name, std in res.mean_std.items():
        print(f"{name}: mean posterior std {std:.4g} over {args.samples} samples")
        cal = res.calibration.get(name)
        if cal is not None:
            print(f"{name}: calibration (1.0 / 68% / 95% when calibrated): variance/error ratio "
                  f"{cal.var_error_ratio:.3f}, within 1 / 2 sigma {cal.coverage_1sd:.1%} / {cal.coverage_2sd:.1%}, "
                  f"E1/EP {cal.prop33_ratio:.3f} (calibrated: {cal.prop33_target:.3f})")
    if "espirit" in res.seconds:
        print(f"ESPIRiT maps (shared by the models that need them): {res.seconds['espirit']:.2f} s")
    print(f"figure written to {res.figure}")
    return 0
