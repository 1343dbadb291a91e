"""Shared timing helper for the benchmark scripts (median wall time, CUDA-synchronised)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
REALDATA = ROOT.parent / "shared" / "realdata"


def _sync(device: torch.device | str | None = None) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def describe_device(device: str) -> str:
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({torch.get_num_threads()} threads)"


def interleaved_medians(first: Callable[[], object], second: Callable[[], object], repeats: int,
                        warmup: int = 1) -> tuple[float, float]:
    """Median seconds of two functions timed alternately (ABBA order), so load changes on a
    shared machine hit both alike."""
    for _ in range(warmup):
        first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(repeats):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            _sync()
            start = time.perf_counter()
            (first, second)[which]()
            _sync()
            times[which].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def real_brain_case(mask: str = "columns") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str] | None:
    """``(undersampled k-space [C, H, W], mask [H, W], ESPIRiT maps, description)`` of the real brain.

    The fully sampled slice scaled to max |k| = 1, undersampled by 4x equispaced columns with an
    8% centre (``mask="columns"``), or the real Poisson-disc file (``mask="poisson"``, same scale);
    None when the real data are absent.
    """
    import numpy as np

    from mrizoo.data.bart import read_cfl
    from mrizoo.physics.espirit import espirit_maps

    path = REALDATA / "brain_t1_8ch_full"
    if not path.with_suffix(".cfl").exists():
        print(f"SKIP: real brain slice not found at {path}.cfl")
        return None
    full = torch.from_numpy(np.ascontiguousarray(np.squeeze(read_cfl(path)).transpose(2, 0, 1)))
    scale = full.abs().amax()
    full = full / scale
    c, h, w = full.shape
    if mask == "poisson":
        under = torch.from_numpy(np.load(REALDATA / "brain_t1_8ch_poisson_r8.npy")) / scale
        sampled = (under.abs() > 0).any(0)
        maps = espirit_maps(under)
    else:
        columns = torch.zeros(w, dtype=torch.bool)
        columns[::4] = True
        low = round(w * 0.08)
        start = (w - low + 1) // 2
        columns[start : start + low] = True
        sampled = columns.expand(h, w)
        under = full * sampled
        maps = espirit_maps(under, calib_width=low)
    return under, sampled, maps, f"brain_t1_8ch_full {c} x {h} x {w}, {mask} mask"


def classical_args(doc: str, *, iters: tuple[int, str], lam: tuple[float, str], repeats: int) -> argparse.Namespace:
    """Parsed options of a classical-solver benchmark against sigpy on :func:`real_brain_case`:
    ``--iters``, ``--lam`` and ``--repeats`` (defaults and help as given), ``--threads`` (set here)
    and ``--mask``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--iters", type=int, default=iters[0], help=iters[1])
    parser.add_argument("--lam", type=float, default=lam[0], help=lam[1])
    parser.add_argument("--repeats", type=int, default=repeats, help="timed runs of each (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--mask", choices=("columns", "poisson"), default="columns",
                        help="4x equispaced columns, or the real Poisson-disc sampled file")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    return args
