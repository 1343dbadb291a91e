"""``mrizoo demo``: the offline demonstration (see :mod:`mrizoo.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="reconstruct a shipped real scan with shipped zoo models; metrics + PNG",
                       description="Reconstruct the real undersampled brain scan that ships with mrizoo (or "
                                   "--input) with the demo zoo models that ship with it (varnet-mini-r4, "
                                   "rcgan-mini-r4), zero-filling, CG-SENSE and L1-wavelet; print "
                                   "SSIM/PSNR/NMSE against the fully sampled RSS reference and write a figure with "
                                   "errors and the posterior standard deviation. Needs no network.")
    p.add_argument("--input", type=Path, help="fastMRI .h5 (undersampled with a stored mask, or fully sampled) "
                                              "or a fully sampled BART .cfl (default: the shipped scan)")
    p.add_argument("--slice", type=int, dest="slice_index", help="slice of the volume (default: middle)")
    p.add_argument("--model", action="append", dest="models", metavar="NAME",
                   help="zoo name or checkpoint folder; repeat for several (default: the shipped demo models)")
    p.add_argument("--samples", type=int, default=8, help="posterior samples of posterior models (default 8)")
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="skip CG-SENSE and L1-wavelet (zero-filled is always shown)")
    p.add_argument("--mask", default="equispaced_fraction",
                   help="mask for fully sampled input (see mrizoo.masks.list_masks())")
    p.add_argument("--acceleration", type=float, default=4.0, help="for fully sampled input")
    p.add_argument("--center-fraction", type=float, default=0.08, help="for fully sampled input")
    p.add_argument("--seed", type=int, default=0, help="mask and posterior-sampling seed")
    p.add_argument("--device", default="cpu", help="torch device of the models (default cpu)")
    p.add_argument("--out", type=Path, default=Path("mrizoo-demo.png"), help="figure path (PNG)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from mrizoo.demo import DEFAULT_MODELS, DemoConfig, run_demo

    res = run_demo(DemoConfig(input=args.input, slice_index=args.slice_index, mask=args.mask,
                              acceleration=args.acceleration, center_fraction=args.center_fraction,
                              seed=args.seed, models=tuple(args.models or DEFAULT_MODELS), samples=args.samples,
                              baselines=args.baselines, device=args.device, output=args.out))
    print(f"input: {res.source}  coils x H x W = {' x '.join(map(str, res.shape))}  R = {res.acceleration:.2f}")
    width = max(len(n) for n in res.seconds) + 2
    if res.metrics:
        print(f"{'method':<{width}}{'SSIM':>8}{'PSNR (dB)':>11}{'NMSE':>10}{'time (s)':>10}")
        for name, m in res.metrics.items():
            print(f"{name:<{width}}{m['ssim']:>8.4f}{m['psnr']:>11.2f}{m['nmse']:>10.4f}{res.seconds[name]:>10.2f}")
    else:
        print("no fully sampled reference in the input: no metrics")
        for name, sec in res.seconds.items():
            if name != "espirit":
                print(f"{name:<{width}}{sec:>10.2f} s")
    for name, std in res.mean_std.items():
        print(f"{name}: mean posterior std {std:.4g} over {args.samples} samples")
    print(f"ESPIRiT maps: {res.seconds['espirit']:.2f} s")
    print(f"figure written to {res.figure}")
    return 0
