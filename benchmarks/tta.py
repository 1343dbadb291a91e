"""Test-time adaptation on real scans: quality, seconds per slice and the quality-versus-steps curve.

Scans (each scored with :func:`mrizoo.metrics.region.score` against the RSS of its fully sampled
k-space, data range over the reference): the shipped demo scan (real brain, 4x equispaced,
seed 0: the scan the defaults were chosen on), the same real brain of ``../shared/realdata`` at
4x equispaced with another mask seed, the same brain with the real 2D Poisson-disc pattern of
``brain_t1_8ch_poisson_r8.npy`` (about 8x) and the real knee image with 8 simulated coils at 4x.
Methods: the baselines as ``evaluate`` runs them (zoo entries ``zerofilled``, ``cgsense``,
``l1wavelet`` with one set of ESPIRiT maps), each learned model plain and adapted (``+tta``,
default :class:`~mrizoo.models.adapt.AdaptConfig`, what ``--adapt`` does). Where the family's
default refines (VarNet: the network as the prior of an L1-wavelet problem,
:mod:`mrizoo.models.refine`) also: ``+wavelet`` (refined, not adapted), ``+tta-net`` (adapted,
not refined: the network alone) and, for ``+wavelet`` and ``+tta``, three parts that say where
the hybrid's lead comes from, each combined like the classical methods or with the same outside
part: ``<row> network |SENSE|`` (the network's coil images, measured samples put back, SENSE-
combined with the ESPIRiT maps), ``<row> |SENSE|`` (the refined image without the part of the
coil images outside the maps' range) and ``<row> l1wavelet+outside`` (the L1-wavelet image given
that outside part of the network's coil images). The curve runs
the adaptation on the demo scan for ``--curve-steps`` steps without stopping and scores the image
after every step.

    python benchmarks/tta.py [--models varnet-mini-r4] [--scans demo brain-r4 brain-poisson knee-r4]
                             [--curve-steps 30] [--threads 2] [--out tta.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from _timing import REALDATA  # noqa: E402  (puts the checkout on sys.path)

import mrizoo  # noqa: E402
from mrizoo.demo.run import DemoConfig, demo_input, load_slice  # noqa: E402
from mrizoo.masks import create_mask  # noqa: E402
from mrizoo.metrics.region import score  # noqa: E402
from mrizoo.classical import l1_wavelet  # noqa: E402
from mrizoo.models.adapt import AdaptConfig, _Family, adapt, default_refine, family_of  # noqa: E402
from mrizoo.models.holdout import calibration_region  # noqa: E402
from mrizoo.models.refine import split_by_maps, wavelet_refine  # noqa: E402
from mrizoo.physics import espirit_maps, ifft2c, rss, sense_combine  # noqa: E402

BASELINES = ("zerofilled", "cgsense", "l1wavelet")
SCANS = ("demo", "brain-r4", "brain-poisson", "knee-r4")


def _columns(shape: tuple[int, int], seed: int) -> torch.Tensor:
    return create_mask("equispaced_fraction", shape, acceleration=4, center_fraction=0.08, seed=seed).mask


def load_scan(name: str, tmp: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``(kspace [1, C, H, W] undersampled, mask [H, W], reference [H, W], maxval)``."""
    if name == "demo":
        d = demo_input(DemoConfig())
        return d.kspace[None], d.mask, d.target, float(d.maxval)
    if name == "knee-r4":
        from mrizoo.data.synthetic import make_test_volume

        path = make_test_volume(tmp / "knee.h5", num_slices=1, num_coils=8, seed=0,
                                source=REALDATA / "knee_image_1map.cfl", overwrite=True)
        k, _, ref = load_slice(path)
        mask = _columns(tuple(k.shape[-2:]), 0)
    else:
        k, _, ref = load_slice(REALDATA / "brain_t1_8ch_full.cfl")
        if name == "brain-r4":
            mask = _columns(tuple(k.shape[-2:]), 1)
        else:  # the real 2D Poisson-disc pattern, applied to the fully sampled k-space (exact reference)
            mask = torch.from_numpy(np.abs(np.load(REALDATA / "brain_t1_8ch_poisson_r8.npy")).sum(0) > 0)
    return (k * mask)[None], mask, ref, float(ref.max())


def parts(net, label: str, k: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor,
          cfg: AdaptConfig) -> dict[str, torch.Tensor]:
    """The three parts of the refined image of ``net`` (see the module docstring), ``[H, W]`` each."""
    k, m = k.to(torch.complex64), mask[None]
    fam = _Family(net, family_of(net), k, m, None, calibration_region(mask)[None, None])
    with torch.no_grad():
        coil = ifft2c(torch.where(m[:, None], k, fam.predict(net, k, m)))
    maps, prior, outside = split_by_maps(coil, maps)
    x = sense_combine(wavelet_refine(coil, k, m, maps, cfg.refine_weight), maps)  # the refined image: S^H of it
    plain_l1 = l1_wavelet(k, m, maps)
    return {f"{label} network |SENSE|": prior.abs()[0], f"{label} |SENSE|": x.abs()[0],
            f"{label} l1wavelet+outside": rss(maps * plain_l1[:, None] + outside)[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["varnet-mini-r4"], help="learned zoo models")
    parser.add_argument("--scans", nargs="+", default=list(SCANS), choices=SCANS)
    parser.add_argument("--curve-steps", type=int, default=30, help="steps of the curve on the demo scan (0: none)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="write every figure as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not (REALDATA / "brain_t1_8ch_full.cfl").exists():
        args.scans = [s for s in args.scans if s == "demo"]
        print(f"note: {REALDATA} not found: only the demo scan")
    cfg = AdaptConfig()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); adaptation: {cfg}")
    models = {name: mrizoo.load(name).eval() for name in args.models}
    rows: list[dict] = []
    curve: list[dict] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for scan in args.scans:
            k, mask, ref, maxval = load_scan(scan, Path(tmpdir))
            t0 = time.perf_counter()
            maps = espirit_maps(k)
            t_maps = time.perf_counter() - t0
            runs: list[tuple[str, object, AdaptConfig | None]] = [(b, mrizoo.create(b), None) for b in BASELINES]
            for n, net in models.items():
                runs.append((n, net, None))
                if default_refine(family_of(net)) != "none":
                    runs += [(f"{n}+wavelet", net, replace(cfg, steps=0)),
                             (f"{n}+tta-net", net, replace(cfg, refine="none"))]
                runs.append((f"{n}+tta", net, cfg))
            for label, net, how in runs:
                own = maps if getattr(net, "needs_maps", False) else None
                t = time.perf_counter()
                info = {}
                if how is not None:
                    net = adapt(net, k, mask, own, how, progress=False)
                    info = {"kept_step": net.adaptation.best_step, "steps_run": net.adaptation.steps_run,
                            "adapt_seconds": net.adaptation.seconds, "std_ratio": net.adaptation.std_ratio,
                            "refine": net.adaptation.refine}
                with torch.no_grad():
                    image = net.reconstruct(k, mask, own)[0]
                sec = time.perf_counter() - t + (t_maps if own is not None else 0.0)
                images = {label: image}
                if how is not None and net.adaptation.refine != "none":
                    images.update(parts(net, label.split("+", 1)[1], k, mask, maps.to(torch.complex64), cfg))
                for name, img in images.items():
                    m = score(ref, img, maxval=maxval)
                    row = {"scan": scan, "shape": list(k.shape[1:]), "method": name, "ssim": m["ssim"],
                           "psnr": m["psnr"]}
                    row.update({"seconds": sec, **info} if name == label else {})
                    rows.append(row)
                    print(f"{scan:14s} {name:32s} SSIM {m['ssim']:.4f}  PSNR {m['psnr']:6.2f}  "
                          + (f"{sec:7.1f} s  {info}" if name == label else "(part)"), flush=True)
        if args.curve_steps > 0:
            k, mask, ref, maxval = load_scan("demo", Path(tmpdir))
            name, net = next(iter(models.items()))
            marks: list[float] = []

            def track(step: int, image) -> None:
                m = score(ref, image()[0], maxval=maxval)
                curve.append({"step": step, "ssim": m["ssim"], "psnr": m["psnr"],
                              "seconds": time.perf_counter() - marks[0]})

            marks.append(time.perf_counter())
            long = adapt(net, k, mask, None, AdaptConfig(steps=args.curve_steps, patience=10**6),
                         progress=False, callback=track)
            for point, held in zip(curve, long.adaptation.heldout):
                point["heldout"] = held
            print(f"\ncurve ({name}, demo scan, no stopping; seconds include scoring each step):")
            print("| step | SSIM | PSNR | held-out error |\n|---|---|---|---|")
            for p in curve:
                print(f"| {p['step']} | {p['ssim']:.4f} | {p['psnr']:.2f} | {p['heldout']:.4f} |")
    print("\n| scan | method | SSIM | PSNR (dB) | seconds |\n|---|---|---|---|---|")
    for r in rows:
        sec = f"{r['seconds']:.1f}" if "seconds" in r else "(part)"
        print(f"| {r['scan']} | {r['method']} | {r['ssim']:.3f} | {r['psnr']:.2f} | {sec} |")
    for scan in dict.fromkeys(r["scan"] for r in rows):
        by = {r["method"]: r for r in rows if r["scan"] == scan}
        for label in (f"{n}{suffix}" for n in models for suffix in ("+tta", "+tta-net") if f"{n}{suffix}" in by):
            tta = by[label]
            wins = [b for b in ("cgsense", "l1wavelet")
                    if tta["ssim"] > by[b]["ssim"] and tta["psnr"] > by[b]["psnr"]]
            print(f"{scan}: {label} beats in both SSIM and PSNR: {', '.join(wins) or 'neither'} "
                  f"(of cgsense, l1wavelet)")
    if args.out:
        args.out.write_text(json.dumps({"config": str(cfg), "rows": rows, "curve": curve}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
