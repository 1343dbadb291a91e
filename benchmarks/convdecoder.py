"""ConvDecoder on real scans: SSIM / PSNR / seconds against zero-filled, CG-SENSE and L1-wavelet.

Scans: the shipped demo scan (4x equispaced, as measured), the real 8-coil brain of
``../shared/realdata`` undersampled 4x equispaced (seeded, as ``mrizoo demo --input`` does: the
same k-space as the demo scan) and its real 2D Poisson-disc sampling pattern (applied to the fully
sampled brain). Every method is the zoo entry with its default settings, run as
``mrizoo evaluate`` runs it (``model.reconstruct(kspace, mask)``, ESPIRiT maps estimated from the
undersampled k-space), and scored by :func:`mrizoo.metrics.region.score` against the RSS image of
the fully sampled k-space (fastMRI's region and data range).

    python benchmarks/convdecoder.py [--realdata DIR] [--scans demo,brain-r4,brain-poisson] [--threads N]
                                     [--steps N] [--warm-steps N]

Prints a markdown table and the ConvDecoder fit (steps run, kept step).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("zerofilled", "cgsense", "l1wavelet", "convdecoder")


def _demo_like(path: Path | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``(kspace [C, H, W], mask [H, W], reference, maxval)`` as ``mrizoo demo`` reads the input."""
    from mrizoo.demo.run import DemoConfig, demo_input

    d = demo_input(DemoConfig(input=path))
    return d.kspace, d.mask, d.target, float(d.maxval)


def _poisson(realdata: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """The real 2D Poisson-disc pattern of ``brain_t1_8ch_poisson_r8.npy`` applied to the fully sampled brain.

    The ``.npy`` k-space itself is scaled and processed differently from the ``.cfl`` (its zero-filled
    image does not align with the fully sampled one), so it has no reference; its sampling pattern
    (read from its zeros) is real, and applied to the fully sampled k-space it is scored like the rest.
    """
    from mrizoo.data import bart_to_kspace, read_cfl
    from mrizoo.masks import detect_sampling
    from mrizoo.physics import ifft2c, rss

    full = torch.from_numpy(bart_to_kspace(read_cfl(realdata / "brain_t1_8ch_full.cfl")))[0]
    ref = rss(ifft2c(full)).float()
    info = detect_sampling(torch.from_numpy(np.load(realdata / "brain_t1_8ch_poisson_r8.npy"))[None])
    mask = info.mask.expand(full.shape[-2:])
    return full * mask, mask, ref, float(ref.max())


def scans(realdata: Path, names: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]]:
    out = {}
    for name in names:
        if name == "demo":
            out["demo scan (4x equispaced)"] = _demo_like(None)
        elif name == "brain-r4":
            out["realdata brain, 4x equispaced"] = _demo_like(realdata / "brain_t1_8ch_full.cfl")
        elif name == "brain-poisson":
            out["realdata brain, its real 2D Poisson pattern"] = _poisson(realdata)
        else:
            raise SystemExit(f"unknown scan {name!r}; expected demo, brain-r4, brain-poisson")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--realdata", type=Path, default=ROOT.parent / "shared" / "realdata")
    p.add_argument("--scans", default="demo,brain-r4,brain-poisson")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=None, help="override ConvDecoder's k-space steps")
    p.add_argument("--warm-steps", type=int, default=None, help="override ConvDecoder's warm-start steps")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    import mrizoo
    from mrizoo.metrics.region import score

    names = args.scans.split(",")
    if any(n != "demo" for n in names) and not args.realdata.is_dir():
        print(f"{args.realdata} not found: only the demo scan", file=sys.stderr)
        names = ["demo"]
    rows, fits = [], []
    for label, (k, m, ref, maxval) in scans(args.realdata, names).items():
        acc = m.numel() / float(m.sum())
        for method in METHODS:
            model = mrizoo.create(method)
            if method == "convdecoder":
                over = {k_: v for k_, v in (("steps", args.steps), ("warm_steps", args.warm_steps)) if v is not None}
                model.config = dataclasses.replace(model.config, **over)
            t = time.perf_counter()
            with torch.no_grad():
                image = model.reconstruct(k[None], m)[0]
            sec = time.perf_counter() - t
            s = score(ref, image, maxval=maxval)
            rows.append((label, f"{acc:.1f}", method, s["ssim"], s["psnr"], sec))
            if method == "convdecoder":
                f = model.last_fit[0]
                fits.append(f"{label}: {f.steps} k-space steps run, kept step {f.best_step}, "
                            f"stopped early {f.stopped_early}, {f.seconds:.1f} s")
            print(f"{label:34s} {method:12s} SSIM {s['ssim']:.4f} PSNR {s['psnr']:.2f} {sec:7.1f} s", flush=True)
    print()
    print("| scan | R | method | SSIM | PSNR (dB) | seconds |")
    print("|---|---|---|---|---|---|")
    for label, acc, method, ssim, psnr, sec in rows:
        print(f"| {label} | {acc} | {method} | {ssim:.4f} | {psnr:.2f} | {sec:.1f} |")
    print()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ConvDecoder {mrizoo.create('convdecoder').config}")
    for line in fits:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
