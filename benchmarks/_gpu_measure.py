"""Measuring helpers of the GPU suite (``gpu_suite.py``): timing, peak memory, the per-part recorder.

GPU times come from CUDA events after ``torch.cuda.synchronize``; peak memory from
``torch.cuda.max_memory_allocated`` (memory a call allocates above what was resident before it).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

PARTS = {
    "1": "E2E-VarNet and U-Net vs fastmri (fp32, bf16, torch.compile)",
    "2": "rcGAN posterior sampling at P = 32",
    "3": "NCSNv2 + annealed Langevin",
    "4": "Training steps/s (accelerate; fp32 vs bf16; activation checkpointing)",
    "5": "CUDA tests, mrizoo reconstruct on the device, ESPIRiT device vs CPU",
}

# sizes: the published sizes (full) and toy ones that run every code path on a CPU in seconds (tiny)
SIZES: dict[bool, dict[str, Any]] = {
    False: {"coils": 15, "shape": (640, 368), "repeats": 10,
            "varnet": {}, "unet": {"chans": 256, "num_pool_layers": 4, "input_clamp": 6.0},
            "rcgan_size": 384, "rcgan_coils": 8, "samples": 32,
            "ncsn_size": 384, "ncsn_coils": 8, "ncsn_levels": 5, "chains": (1, 4),
            "train_shape": (640, 368), "train_coils": 15, "train_batch": 4, "train_warmup": 3, "train_steps": 20,
            "recon_slices": 16, "espirit_big": (15, 640, 368)},
    True: {"coils": 4, "shape": (64, 48), "repeats": 2,
           "varnet": {"num_cascades": 2, "sens_chans": 4, "sens_pools": 2, "chans": 4, "pools": 2},
           "unet": {"chans": 8, "num_pool_layers": 2, "input_clamp": 6.0},
           "rcgan_size": 64, "rcgan_coils": 4, "samples": 32,
           "ncsn_size": 64, "ncsn_coils": 4, "ncsn_levels": 2, "chains": (1, 2),
           "train_shape": (64, 64), "train_coils": 4, "train_batch": 2, "train_warmup": 1, "train_steps": 3,
           "recon_slices": 4, "espirit_big": (4, 64, 48)},
}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_once(fn: Callable[[], Any], dev: torch.device) -> tuple[float, Any]:
    """Seconds of one call (CUDA events on a GPU) and its result."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, out
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def peak_mib(fn: Callable[[], Any], dev: torch.device) -> float | None:
    """MiB a call allocates above what was resident before it (None off CUDA)."""
    if dev.type != "cuda":
        return None
    gc.collect()
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev)
    fn()
    torch.cuda.synchronize(dev)
    return (torch.cuda.max_memory_allocated(dev) - base) / 2**20


def mib(module: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in module.parameters()) / 2**20


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


class Part:
    """One part's results, written to its JSON file after every step so a killed part keeps them."""

    def __init__(self, key: str, path: Path, budget_s: float, dev: torch.device, tiny: bool) -> None:
        self.key, self.path, self.dev, self.tiny = key, path, dev, tiny
        self.sizes = SIZES[tiny]
        self.compile_backend = "inductor"
        self.t0 = time.monotonic()
        self.deadline = self.t0 + 0.85 * budget_s - 1.0  # the parent kills the process at budget_s
        self.doc: dict[str, Any] = {"part": key, "title": PARTS[key], "status": "running", "budget_s": budget_s,
                                    "environment": environment(dev), "rows": [], "data": {}, "errors": [],
                                    "skipped": []}
        self.save()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        self.doc["wall_s"] = round(time.monotonic() - self.t0, 2)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, default=str))
        os.replace(tmp, self.path)

    def row(self, measure: str, value: float | None, unit: str, reference: float | None = None,
            reference_name: str | None = None, target: str | None = None, met: bool | None = None,
            note: str | None = None) -> None:
        """A headline figure; ``ratio`` is value / reference (both in ``unit``)."""
        ratio = value / reference if value is not None and reference else None
        self.doc["rows"].append({"measure": measure, "value": value, "unit": unit, "reference": reference,
                                 "reference_name": reference_name, "ratio": ratio, "target": target, "met": met,
                                 "note": note})

    def step(self, name: str, fn: Callable[[], Any], need_s: float = 0.0) -> Any:
        """Run one measurement; an exception is recorded and the part goes on."""
        if self.left() < need_s:
            self.doc["skipped"].append(f"{name}: time budget spent ({max(self.left(), 0):.0f} s left, "
                                       f"about {need_s:.0f} s needed)")
            self.save()
            return None
        print(f"[part {self.key}] {name} ...", flush=True)
        try:
            return fn()
        except Exception as err:  # noqa: BLE001  (recorded: one failure must not end the suite)
            self.doc["errors"].append({"step": name, "error": f"{type(err).__name__}: {err}"[:2000],
                                       "traceback": traceback.format_exc()[-4000:]})
            print(traceback.format_exc(), flush=True)
            return None
        finally:
            if self.dev.type == "cuda":
                gc.collect()
                torch.cuda.empty_cache()
            self.save()

    def timed(self, fns: dict[str, Callable[[], Any]], share_s: float) -> tuple[dict[str, float], dict[str, Any]]:
        """Median seconds of each function, called alternately (after one untimed warm-up call each)
        up to ``repeats`` times or until ``share_s`` seconds are spent; and their last outputs."""
        outs = {k: fn() for k, fn in fns.items()}
        _sync(self.dev)
        times: dict[str, list[float]] = {k: [] for k in fns}
        stop = min(time.monotonic() + share_s, self.deadline)
        for i in range(self.sizes["repeats"]):
            for k in (list(fns) if i % 2 == 0 else list(reversed(fns))):
                times[k].append((res := time_once(fns[k], self.dev))[0])
                outs[k] = res[1]
            if time.monotonic() > stop:
                break
        return {k: statistics.median(v) for k, v in times.items()}, outs


def environment(dev: torch.device) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    env: dict[str, Any] = {"device": str(dev), "python": platform.python_version(), "torch": torch.__version__,
                           "cuda": torch.version.cuda, "cpu_count": os.cpu_count(),
                           "torch_threads": torch.get_num_threads()}
    for pkg in ("fastmri", "accelerate", "sigpy"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = None
    import mrizoo

    env["mrizoo"] = mrizoo.__version__
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version(),
                   cudnn_benchmark=torch.backends.cudnn.benchmark,
                   tf32_conv=torch.backends.cudnn.allow_tf32, tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    return env


def knee_slice(coils: int, shape: tuple[int, int], dev: torch.device, acceleration: int = 4,
               mask_name: str = "equispaced_fraction") -> tuple[torch.Tensor, torch.Tensor]:
    """Undersampled synthetic k-space [1, C, H, W] (max |k| = 1) and its mask [H, W] on ``dev``."""
    from mrizoo.data.synthetic import ellipse_phantom, simulate_multicoil
    from mrizoo.masks import create_mask

    k, _ = simulate_multicoil(ellipse_phantom(shape), num_coils=coils, snr_db=30.0, seed=0)
    params: dict[str, Any] = {"acceleration": acceleration}
    if mask_name == "equispaced_fraction":  # 8% centre, at least 8 lines (ESPIRiT's kernel needs 6)
        params["center_fraction"] = max(0.08, 8 / shape[-1])
    mask = create_mask(mask_name, shape, seed=0, **params).mask
    k = (k / k.abs().max() * mask)[None]
    return k.to(dev), mask.to(dev)


def autocast(dev: torch.device, on: bool) -> Any:
    return torch.autocast(dev.type, dtype=torch.bfloat16) if on else nullcontext()


