"""Throughput of ``mrizoo reconstruct`` for every model that ships with the package, plus baselines.

Builds a volume of ``--slices`` copies of the shipped real scan (8 coils, 230 x 180, 4x) and
times ``reconstruct_file`` end to end (read, ESPIRiT where the model needs maps, model, write)
for each ``weights.kind: package`` zoo entry and for the zero-filled and CG-SENSE baselines in
the same run (ratios are against zero-filled). Posterior models are timed at ``--samples`` P
(32, as in Bendel et al. 2023) as slices/s and posterior samples/s. ``--stages`` also profiles
one run per model and prints the share of its time spent reading, choosing the mask, in ESPIRiT,
in the model itself and writing. Usage:
``python benchmarks/reconstruct_speed.py [--device cuda] [--slices 8] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from _timing import describe_device, median_time

import mrizoo
from mrizoo.data import FastMRIVolume, write_volume
from mrizoo.demo import demo_scan_path
from mrizoo.reconstruct import reconstruct_file
from mrizoo.zoo import REGISTRY


def _volume(folder: Path, slices: int) -> Path:
    with FastMRIVolume(demo_scan_path()) as vol:
        k, lines, target = vol.kspace(0), vol.mask(), vol.target(0)
    return write_volume(folder / "scan.h5", kspace=k[None].repeat(slices, 1, 1, 1).numpy(),
                        mask=lines.numpy().astype("uint8"),
                        targets={"reconstruction_rss": target[None].repeat(slices, 1, 1).numpy()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--slices", type=int, default=8, help="slices in the timed volume")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--samples", type=int, default=32, help="P for posterior models")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--stages", action="store_true", help="also print the share of time per stage")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    shipped = [n for n in REGISTRY.names() if REGISTRY.get(n).weights.kind == "package"]
    names = ["zerofilled", "cgsense", *shipped]
    print(f"device: {describe_device(args.device)}; torch {torch.__version__}; "
          f"volume: {args.slices} x (8 coils, 230 x 180), shipped real scan, R = 4")
    rows = []
    stages: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        src = _volume(Path(tmp), args.slices)
        for name in names:
            model = mrizoo.load(name, map_location=args.device)
            posterior = bool(getattr(model, "is_posterior", False))
            samples = args.samples if posterior else None
            out = Path(tmp) / f"{name}.h5"

            def run() -> None:
                reconstruct_file(model, src, out, batch_size=args.batch_size, device=args.device, samples=samples,
                                 overwrite=True, progress=False)

            seconds = median_time(run, args.repeats)
            rows.append((name, samples, args.slices / seconds, seconds))
            if args.stages:
                stages.append((name, _stage_shares(run)))
    base = rows[0][2]
    print(f"{'model':<18}{'P':>4}{'slices/s':>11}{'samples/s':>11}{'s/volume':>10}{'time / zero-filled':>20}")
    for name, samples, rate, seconds in rows:
        per_sample = f"{rate * samples:>11.2f}" if samples else f"{'-':>11}"
        print(f"{name:<18}{samples or '-':>4}{rate:>11.2f}{per_sample}{seconds:>10.2f}{base / rate:>19.1f}x")
    if stages:
        print("share of time per stage (one profiled run):")
        print(f"{'model':<18}" + "".join(f"{k:>10}" for k in _STAGES) + f"{'other':>10}")
        for name, shares in stages:
            print(f"{name:<18}" + "".join(f"{shares[k]:>9.0%} " for k in (*_STAGES, "other")))
    return 0


# stage -> (file suffix, function) whose cumulative time is that stage's
_STAGES = {
    "read": ("mrizoo/data/fastmri_h5.py", "kspace"),
    "mask": ("mrizoo/reconstruct_masks.py", "choose_mask"),
    "espirit": ("mrizoo/physics/espirit.py", "espirit_maps"),
    "model": ("mrizoo/reconstruct_runner.py", "_call"),
    "write": ("mrizoo/run_checks.py", "write_images"),
}


def _stage_shares(run) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Cumulative profiled time of each stage's function over the whole run (the model's
    share excludes ESPIRiT called from inside it)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(run)
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, fn), (_, _, _, ct, _) in stats.items() if fn == "run")
    shares = {}
    for stage, (suffix, func) in _STAGES.items():
        shares[stage] = sum(ct for (path, _, fn), (_, _, _, ct, _) in stats.items()
                            if fn == func and path.replace("\\", "/").endswith(suffix)) / total
    espirit_in_model = shares["espirit"] if shares["model"] >= shares["espirit"] else 0.0
    shares["model"] -= espirit_in_model
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


if __name__ == "__main__":
    raise SystemExit(main())
