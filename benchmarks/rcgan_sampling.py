"""rcGAN posterior sampling throughput: samples per second at P = 32 (Bendel et al. (2023)'s setting).

Times ``RCGAN.sample(kspace, mask, maps, n=32)`` (one batched pass where memory allows) on an
8-coil slice with the GRO mask, at the paper's 384 x 384 (``--size``), for the full-size
generator (~87M parameters) or a smaller width (``--chans``). Random weights: the speed does
not depend on them. Usage: ``python benchmarks/rcgan_sampling.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from _timing import describe_device, median_time

from mrizoo.data.synthetic import ellipse_phantom, simulate_multicoil
from mrizoo.masks import create_mask
from mrizoo.models.rcgan import RCGAN_BENDEL2023, build_rcgan
from mrizoo.physics.espirit import espirit_maps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=384, help="image side (GRO masks need 384)")
    parser.add_argument("--chans", type=int, default=RCGAN_BENDEL2023.chans, help="generator width (128 = paper)")
    parser.add_argument("--samples", type=int, default=32, help="P, posterior samples per slice")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    device = torch.device(args.device)
    model = build_rcgan(dataclasses.replace(RCGAN_BENDEL2023, chans=args.chans)).to(device).eval()
    params = sum(p.numel() for p in model.generator.parameters())
    kspace, _ = simulate_multicoil(ellipse_phantom((args.size, args.size)), num_coils=8, snr_db=30.0, seed=0)
    if args.size == 384:
        mask = create_mask("gro", (384, 384), acceleration=4).mask
    else:
        mask = create_mask("equispaced_fraction", (args.size, args.size), seed=0, acceleration=4,
                           center_fraction=0.08).mask
    kspace = (kspace * mask)[None].to(device)
    mask = mask.to(device)
    maps = espirit_maps(kspace, calib_width=16, crop=0.70)
    gen = torch.Generator(device=device).manual_seed(0)

    def run() -> None:
        model.sample(kspace, mask, maps, n=args.samples, generator=gen)

    seconds = median_time(run, args.repeats)
    print(f"device: {describe_device(args.device)}; torch {torch.__version__}")
    print(f"generator: chans {args.chans}, {params / 1e6:.1f}M parameters; image {args.size}x{args.size}, 8 coils")
    print(f"P = {args.samples}: {seconds * 1e3:.0f} ms per slice -> {args.samples / seconds:.1f} samples/s "
          f"(median of {args.repeats})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
