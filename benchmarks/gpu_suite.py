"""GPU suite: every CUDA path of mrizoo exercised and its headline speeds measured, in one command.

    python benchmarks/gpu_suite.py --out DIR [--device cuda|cpu] [--tiny] [--budget-s N] [--parts 1,2:60,5]

Parts (each runs in its own process under its own time budget, so a crash, a hang or an
out-of-memory error in one part is recorded and the others still run):

1. E2E-VarNet (12 cascades, chans 18, sens 8) and U-Net (chans 256) on a 15-coil 640 x 368
   knee-sized slice, mrizoo vs the ``fastmri`` package with identical weights: fp32, bf16
   autocast (SSIM against fp32), ``torch.compile`` (compile time reported apart); time per
   slice, slices/s, peak memory.
2. rcGAN at full size (86.8M generator, 384 x 384, 8 coils, GRO R = 4): P = 32 posterior
   samples in one batched call, against the bare generator pass and the paper's 18 samples/s.
3. NCSNv2 + annealed Langevin (384 x 384): network evaluations per second and the projected
   seconds per slice of the seed's schedule (2311 levels x 3 steps), against the paper's 14 min.
4. Training: optimizer steps/s of the ``varnet-pool-r4`` recipe on synthetic data through
   ``accelerate``, fp32 vs bf16 mixed precision, activation checkpointing off and on, peak memory.
5. The CUDA-dependent tests (pytest, pass/fail per test), ``mrizoo reconstruct`` on the device
   (default device selection, the out-of-memory fallback under a real memory cap, GPU vs CPU
   output), ESPIRiT on the device vs the CPU.

GPU times come from CUDA events after ``torch.cuda.synchronize``; peak memory from
``torch.cuda.max_memory_allocated`` (memory a call allocates above what was resident before
it). Results go to ``DIR/results.json`` and ``DIR/results.md`` (rewritten after every part),
each part's output to ``DIR/logs/``. The default budget (400 s in all) fits one H200 in under
7 minutes; ``--device cpu --tiny`` runs every code path at toy sizes in about a minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

PARTS = {
    "1": "E2E-VarNet and U-Net vs fastmri (fp32, bf16, torch.compile)",
    "2": "rcGAN posterior sampling at P = 32",
    "3": "NCSNv2 + annealed Langevin",
    "4": "Training steps/s (accelerate; fp32 vs bf16; activation checkpointing)",
    "5": "CUDA tests, mrizoo reconstruct on the device, ESPIRiT device vs CPU",
}
SHARES = {"1": 0.45, "2": 0.07, "3": 0.09, "4": 0.19, "5": 0.20}  # of the total budget
DEFAULT_BUDGET_S = {False: 400.0, True: 150.0}  # full, tiny
RESULTS, REPORT = "results.json", "results.md"

# sizes: the (full) and toy ones that run every code path on a CPU in seconds (tiny)
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
PAPER_RCGAN_SAMPLES_PER_S = 4 / 0.217  # Bendel et al. 2023: 4 samples in 217 ms
PAPER_LANGEVIN_S_PER_SLICE = 14 * 60.0  # Jalal et al. 2021: 14 minutes per slice

import torch  # noqa: E402  (after the sys.path set-up)


# ---------------------------------------------------------------------------------- measuring
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
    for pkg in ("mrizoo", "fastmri", "accelerate", "sigpy"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = None
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


# ---------------------------------------------------------------------- part 1: VarNet, U-Net
def _varnet_pair(p: Part, k: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
    import fastmri.models as fm

    from mrizoo.models.varnet import VarNet, VarNetConfig

    cfg = VarNetConfig(**p.sizes["varnet"])
    torch.manual_seed(0)
    with p.dev:  # parameters initialised where they run
        ref = fm.VarNet(cfg.num_cascades, cfg.sens_chans, cfg.sens_pools, cfg.chans, cfg.pools, cfg.mask_center)
        ours = VarNet(cfg)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours, ref = ours.eval(), ref.eval()
    masked = torch.view_as_real(k * mask)
    fmask = mask[0].view(1, 1, 1, -1, 1)
    return {"name": f"E2E-VarNet {cfg.num_cascades} cascades, chans {cfg.chans}, sens {cfg.sens_chans}",
            "ours": ours, "ref": ref, "call_ours": lambda: ours(masked, fmask), "call_ref": lambda: ref(masked, fmask),
            "extra": {"mrizoo reconstruct()": lambda: ours.reconstruct(k, mask)}}


def _unet_pair(p: Part, k: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
    import fastmri
    import fastmri.models as fm
    from fastmri.data import transforms as T

    from mrizoo.models.unet import UnetConfig, UnetRecon

    cfg = UnetConfig(**p.sizes["unet"])
    torch.manual_seed(0)
    with p.dev:  # 496M parameters at full size: initialised where they run
        ours = UnetRecon(cfg)
        ref = fm.Unet(1, 1, cfg.chans, cfg.num_pool_layers)
    ref.load_state_dict(ours.state_dict(), strict=True)
    ours, ref = ours.eval(), ref.eval()
    padder = fm.NormUnet(1, 1)  # only its pad / unpad helpers
    masked = torch.view_as_real(k * mask)
    clamp = ours.clamp

    def call_ref() -> torch.Tensor:  # fastMRI's U-Net data transform and model, padded to 16
        image = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(masked)), dim=1)
        image, mean, std = T.normalize_instance(image, eps=1e-11)
        if clamp:
            image = image.clamp(-clamp, clamp)
        x, pads = padder.pad(image[:, None])
        return padder.unpad(ref(x), *pads)[:, 0] * std + mean

    return {"name": f"U-Net chans {cfg.chans}, {cfg.num_pool_layers} pools", "ours": ours, "ref": ref,
            "call_ours": lambda: ours.reconstruct(k, mask), "call_ref": call_ref, "extra": {}}


def _eager(p: Part, fam: str, pair: dict[str, Any], bf16: bool, fp32_out: dict[str, torch.Tensor]) -> None:
    from mrizoo.metrics import ssim

    def wrap(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def call() -> torch.Tensor:
            with autocast(p.dev, bf16):
                return fn()
        return call

    fns = {"mrizoo": wrap(pair["call_ours"]), "fastmri": wrap(pair["call_ref"])}
    if not bf16:
        fns.update({k: wrap(f) for k, f in pair["extra"].items()})
    med, outs = p.timed(fns, share_s=max(5.0, p.left() / 8))
    tag = "bf16 autocast" if bf16 else "fp32"
    data: dict[str, Any] = {"seconds": med, "slices_per_s": {k: 1 / v for k, v in med.items()},
                            "peak_extra_mib": {k: peak_mib(f, p.dev) for k, f in fns.items()}}
    if not bf16:
        fp32_out.update(mrizoo=outs["mrizoo"].float(), fastmri=outs["fastmri"].float())
        data["max_rel_diff_mrizoo_vs_fastmri"] = rel_diff(outs["mrizoo"], outs["fastmri"])
        data["weights_mib"] = mib(pair["ours"])
    else:
        data["ssim_vs_fp32"] = {k: ssim(fp32_out[k], outs[k].float()) for k in ("mrizoo", "fastmri")}
    p.doc["data"][f"{fam} {tag}"] = data
    ratio = med["mrizoo"] / med["fastmri"]
    p.row(f"{pair['name']}, {tag}: time per slice", med["mrizoo"] * 1e3, "ms", med["fastmri"] * 1e3,
          "fastmri, same weights", "<= 0.7", ratio <= 0.7,
          note=f"{1 / med['mrizoo']:.2f} vs {1 / med['fastmri']:.2f} slices/s")
    mem = data["peak_extra_mib"]
    if mem["mrizoo"] is not None:
        p.row(f"{pair['name']}, {tag}: peak memory of a call", mem["mrizoo"], "MiB", mem["fastmri"], "fastmri")
    if not bf16:
        p.row(f"{pair['name']}, fp32: max relative difference to fastmri", data["max_rel_diff_mrizoo_vs_fastmri"],
              "", target="<= 1e-4", met=data["max_rel_diff_mrizoo_vs_fastmri"] <= 1e-4)
        for k in pair["extra"]:
            p.row(f"{pair['name']}, fp32: {k} time per slice", med[k] * 1e3, "ms", med["fastmri"] * 1e3,
                  "fastmri forward")
    else:
        s = data["ssim_vs_fp32"]
        p.row(f"{pair['name']}, bf16: SSIM vs fp32 output", s["mrizoo"], "", s["fastmri"], "fastmri bf16 vs fp32",
              ">= 0.999", s["mrizoo"] >= 0.999)


def _compiled(p: Part, fam: str, pair: dict[str, Any], fp32_out: dict[str, torch.Tensor]) -> None:
    compile_s = {}
    for key, module, call in (("mrizoo", pair["ours"], pair["call_ours"]), ("fastmri", pair["ref"], pair["call_ref"])):
        module.compile(backend=p.compile_backend)
        compile_s[key] = time_once(call, p.dev)[0]  # first call: tracing + code generation + one run
        p.doc["data"][f"{fam} compile"] = {"compile_s": compile_s}
        p.save()
    med, outs = p.timed({"mrizoo": pair["call_ours"], "fastmri": pair["call_ref"]}, share_s=max(5.0, p.left() / 6))
    diff = {k: rel_diff(outs[k], fp32_out[k]) for k in outs} if fp32_out else {}
    p.doc["data"][f"{fam} compile"] = {"backend": p.compile_backend, "compile_s": compile_s, "seconds": med,
                                       "slices_per_s": {k: 1 / v for k, v in med.items()},
                                       "max_rel_diff_vs_eager_fp32": diff}
    p.row(f"{pair['name']}, torch.compile ({p.compile_backend}): compile time (first call)", compile_s["mrizoo"],
          "s", compile_s["fastmri"], "fastmri")
    p.row(f"{pair['name']}, torch.compile ({p.compile_backend}): time per slice", med["mrizoo"] * 1e3, "ms", med["fastmri"] * 1e3,
          "fastmri compiled", "<= 0.7", med["mrizoo"] / med["fastmri"] <= 0.7,
          note=f"max rel diff to eager fp32: {diff.get('mrizoo', float('nan')):.1e}")


def part_inference(p: Part) -> None:
    k, mask = knee_slice(p.sizes["coils"], p.sizes["shape"], p.dev)
    p.doc["data"]["input"] = {"coils": k.shape[1], "shape": list(k.shape[-2:]), "mask": "equispaced_fraction R=4, 8%"}
    pairs: dict[str, dict[str, Any]] = {}
    fp32: dict[str, dict[str, torch.Tensor]] = {"varnet": {}, "unet": {}}
    with torch.inference_mode():
        for fam, build in (("varnet", _varnet_pair), ("unet", _unet_pair)):
            pair = p.step(f"{fam}: build", lambda: build(p, k, mask))
            if pair is None:
                continue
            pairs[fam] = pair
            p.step(f"{fam}: eager fp32", lambda: _eager(p, fam, pair, False, fp32[fam]))
            p.step(f"{fam}: bf16 autocast", lambda: _eager(p, fam, pair, True, fp32[fam]))
        estimate = 10.0 if p.tiny else 45.0  # one compiled pair, roughly
        for fam, pair in pairs.items():
            p.step(f"{fam}: torch.compile", lambda: _compiled(p, fam, pair, fp32[fam]), need_s=estimate)


# ------------------------------------------------------------------------------ part 2: rcGAN
def part_rcgan(p: Part) -> None:
    from mrizoo.models.rcgan import RCGAN_BENDEL2023, RCGANConfig, build_rcgan
    from mrizoo.physics.espirit import espirit_maps

    size, coils, n = p.sizes["rcgan_size"], p.sizes["rcgan_coils"], p.sizes["samples"]
    base = RCGAN_BENDEL2023 if not p.tiny else RCGANConfig(in_coils=coils, chans=8, depth=2, disc_chans=(8, 16, 16),
                                                           disc_input_size=None)
    with p.dev:
        model = build_rcgan(dataclasses.replace(base, sample_chunk=n)).eval()  # all P in one pass
    params = sum(q.numel() for q in model.generator.parameters())
    k, mask = knee_slice(coils, (size, size), p.dev, mask_name="gro" if size == 384 else "equispaced_fraction")
    t_maps, maps = time_once(lambda: espirit_maps(k, calib_width=16, kernel_width=6, crop=0.70), p.dev)
    gen = torch.Generator(device=p.dev).manual_seed(0)
    z = torch.randn(n, 2 * coils + base.noise_chans, size, size, device=p.dev)
    p.doc["data"]["setup"] = {"generator_parameters": params, "image": [size, size], "coils": coils, "P": n,
                              "mask": "gro R=4" if size == 384 else "equispaced R=4", "espirit_s": t_maps}

    def measure(bf16: bool) -> None:
        def sample() -> Any:
            with autocast(p.dev, bf16):
                return model.sample(k, mask, maps, n=n, generator=gen)

        def bare() -> Any:
            with autocast(p.dev, bf16):
                return model.generator(z)

        med, outs = p.timed({"sample": sample, "generator": bare}, share_s=max(4.0, p.left() / 3))
        tag = "bf16 autocast" if bf16 else "fp32"
        p.doc["data"][tag] = {"seconds": med, "samples_per_s": n / med["sample"],
                              "peak_extra_mib": peak_mib(sample, p.dev),
                              "finite": bool(torch.isfinite(outs["sample"].samples).all())}
        p.row(f"rcGAN {params / 1e6:.3g}M, {tag}: P = {n} samples, one batched call", med["sample"] * 1e3, "ms",
              med["generator"] * 1e3, "bare generator pass on the same batch", "<= 100 ms",
              med["sample"] <= 0.1, note=f"{n / med['sample']:.0f} samples/s")
        p.row(f"rcGAN, {tag}: posterior samples per second", n / med["sample"], "samples/s",
              PAPER_RCGAN_SAMPLES_PER_S, "paper: 4 samples in 217 ms", ">= 320", n / med["sample"] >= 320)
        if (mem := p.doc["data"][tag]["peak_extra_mib"]) is not None:
            p.row(f"rcGAN, {tag}: peak memory of the P = {n} call", mem, "MiB")

    with torch.inference_mode():
        p.step("rcgan fp32", lambda: measure(False))
        p.step("rcgan bf16 autocast", lambda: measure(True))


# ------------------------------------------------------------------ part 3: NCSNv2 + Langevin
def part_langevin(p: Part) -> None:
    from mrizoo.models.langevin import annealed_langevin, build_score_posterior
    from mrizoo.models.ncsnv2 import NCSNV2_JALAL2021, NCSNV2_TINY
    from mrizoo.physics.espirit import espirit_maps

    size, coils = p.sizes["ncsn_size"], p.sizes["ncsn_coils"]
    with p.dev:
        model = build_score_posterior(NCSNV2_TINY if p.tiny else NCSNV2_JALAL2021).eval()
    lcfg = model.langevin
    levels = model.net.sigmas.numel()
    total_steps = (levels - lcfg.start_level) * lcfg.steps_per_level
    k, mask = knee_slice(coils, (size, size), p.dev)
    maps = espirit_maps(k)
    p.doc["data"]["setup"] = {"parameters": sum(q.numel() for q in model.parameters()), "image": [size, size],
                              "coils": coils, "levels": levels, "steps_per_level": lcfg.steps_per_level,
                              "schedule_steps": total_steps, "seed_chains": lcfg.reconstruct_samples}

    def nfe(chains: int, bf16: bool) -> None:
        x = torch.randn(chains, 1, size, size, dtype=torch.complex64, device=p.dev)

        def score() -> Any:
            with autocast(p.dev, bf16):
                return model.score(x, 1.0)

        med, _ = p.timed({"score": score}, share_s=max(3.0, p.left() / 6))
        tag = "bf16 autocast" if bf16 else "fp32"
        p.doc["data"][f"score {tag}, {chains} chains"] = {"seconds": med["score"], "peak_extra_mib": peak_mib(score, p.dev)}
        p.row(f"NCSNv2, {tag}: network evaluations per second ({chains} image(s) per call)",
              chains / med["score"], "images/s")

    def steps(chains: int) -> None:
        short = dataclasses.replace(lcfg, start_level=0, end_level=min(p.sizes["ncsn_levels"], levels))
        n_steps = (short.end_level - short.start_level) * short.steps_per_level

        def run() -> Any:
            return annealed_langevin(model.score, k, mask, maps, model.net.sigmas, short, n=chains)

        t, _ = time_once(run, p.dev)  # warm-up
        t, out = time_once(run, p.dev)
        per_step = t / n_steps
        projected = per_step * total_steps
        p.doc["data"][f"langevin {chains} chains"] = {"timed_steps": n_steps, "seconds": t, "seconds_per_step": per_step,
                                                     "projected_s_per_slice": projected,
                                                     "finite": bool(torch.isfinite(out).all())}
        p.row(f"Langevin, {chains} chain(s): projected time per slice ({total_steps} steps)", projected, "s",
              PAPER_LANGEVIN_S_PER_SLICE, "paper: 14 min per slice",
              note=f"{per_step * 1e3:.1f} ms per step (score + data consistency), from {n_steps} steps")

    with torch.inference_mode():
        for chains in p.sizes["chains"]:
            p.step(f"score fp32, {chains} chains", lambda: nfe(chains, False))
        p.step("score bf16", lambda: nfe(p.sizes["chains"][-1], True))
        for chains in p.sizes["chains"]:
            p.step(f"langevin steps, {chains} chains", lambda: steps(chains), need_s=2.0)


# ----------------------------------------------------------------------------- part 4: training
def part_training(p: Part) -> None:
    from accelerate import Accelerator

    from mrizoo.train.data import ShardedVolumeBatches, build_datasets, draw_masks, make_loader
    from mrizoo.train.loop import _reset_accelerate_state, _to_device, build_model
    from mrizoo.train.recipe import DataSource, SyntheticData, load_recipe
    from mrizoo.train.tasks import make_task

    s = p.sizes
    base, _ = load_recipe("varnet-pool-r4", smoke=True)  # the recipe with synthetic data sources
    synth = SyntheticData(volumes=1, slices=2 * s["train_batch"], shape=s["train_shape"], coils=s["train_coils"])
    data = dataclasses.replace(base.data, train=DataSource(synthetic=synth),
                               val=DataSource(synthetic=dataclasses.replace(synth, slices=1, seed=1)), ood={},
                               crop=None, slices_per_batch=s["train_batch"])
    overrides = dict(base.model_overrides) if p.tiny else {}  # tiny: the recipe's smoke model
    spec = dataclasses.replace(base, data=data, model_overrides=overrides, steps=10_000, epochs=None)
    supported = hasattr(build_model(spec).config, "checkpoint_cascades")
    tmp = tempfile.TemporaryDirectory(prefix="mrizoo-gpu-suite-")
    train = build_datasets(spec.data, spec.masks, cache_dir=tmp.name).train
    loader = make_loader(train, ShardedVolumeBatches(train, s["train_batch"], seed=0, num_replicas=1, rank=0), 0)
    batches = list(loader)[:2]
    masks = [draw_masks(spec.masks, tuple(b.kspace.shape[-2:]), len(b), i, b.fname, b.slice_index.tolist())
             for i, b in enumerate(batches)]
    p.doc["data"]["setup"] = {"recipe": "varnet-pool-r4", "model_overrides": overrides, "slices_per_batch": len(batches[0]),
                              "shape": list(s["train_shape"]), "coils": s["train_coils"],
                              "checkpointing_supported": supported, "data": "2 batches preloaded on the device"}
    results: dict[str, dict[str, Any]] = {}

    def variant(name: str, precision: str, ckpt: bool) -> None:
        extra = {"checkpoint_cascades": True} if ckpt else {}
        run = dataclasses.replace(spec, precision=precision, model_overrides={**overrides, **extra})
        accelerator = Accelerator(mixed_precision=precision, cpu=p.dev.type == "cpu")
        try:
            torch.manual_seed(0)
            task = make_task(build_model(run), run, accelerator, total_steps=run.steps, steps_per_epoch=len(batches))
            for m in task.prepared:
                m.train()
            dev_batches = [_to_device(b, accelerator.device) for b in batches]
            dev_masks = [m.to(accelerator.device) for m in masks]

            def one(i: int) -> None:
                with accelerator.accumulate(*task.prepared):
                    task.train_step(dev_batches[i % 2], dev_masks[i % 2], epoch=0,
                                    generator=torch.Generator().manual_seed(i))
                task.after_optimizer_step()

            for i in range(s["train_warmup"]):
                one(i)
            if p.dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(p.dev)
            stop = time.monotonic() + max(3.0, p.left() / 5)
            _sync(p.dev)
            t0, done = time.perf_counter(), 0
            while done < s["train_steps"] and (done == 0 or time.monotonic() < stop):
                one(done)
                done += 1
            _sync(p.dev)
            seconds = time.perf_counter() - t0
            peak = torch.cuda.max_memory_allocated(p.dev) / 2**20 if p.dev.type == "cuda" else None
        finally:
            _reset_accelerate_state()
        results[name] = {"steps": done, "seconds": seconds, "steps_per_s": done / seconds,
                         "slices_per_s": done * len(batches[0]) / seconds, "peak_mib": peak}
        p.doc["data"][name] = results[name]
        ref = results.get("fp32")
        p.row(f"VarNet recipe training, {name}: optimizer steps/s", done / seconds, "steps/s",
              ref["steps_per_s"] if ref and name != "fp32" else None, "fp32, no checkpointing" if name != "fp32" else None)
        if peak is not None:
            p.row(f"VarNet recipe training, {name}: peak memory", peak, "MiB",
                  ref["peak_mib"] if ref and name != "fp32" else None, "fp32, no checkpointing" if name != "fp32" else None)

    try:
        for name, precision, ckpt in (("fp32", "no", False), ("bf16", "bf16", False),
                                      ("fp32 + activation checkpointing", "no", True),
                                      ("bf16 + activation checkpointing", "bf16", True)):
            if ckpt and not supported:
                p.row(f"VarNet recipe training, {name}", None, "", note="not supported by the model")
                continue
            p.step(f"train {name}", lambda: variant(name, precision, ckpt), need_s=2.0)
    finally:
        tmp.cleanup()


# ------------------------------------------------------- part 5: tests, reconstruct, ESPIRiT
def cuda_test_ids() -> list[str]:
    """Tests that need CUDA: marked ``cuda`` or skipped by a condition on CUDA."""
    import ast

    ids = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.name.startswith("test"):
                continue
            marks = " ".join(ast.unparse(d) for d in node.decorator_list)
            if "mark.cuda" in marks or ("skipif" in marks and "cuda" in marks):
                ids.append(f"tests/{path.name}::{node.name}")
    return ids


def _run_pytest(p: Part, out: Path) -> None:
    import xml.etree.ElementTree as ET

    ids = cuda_test_ids()
    if not ids:
        raise RuntimeError("no CUDA-dependent tests found under tests/")
    junit = out / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", *ids, "-q", "-rA", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(5.0, p.left() / 2))
    tests: dict[str, str] = {}
    if junit.is_file():
        for case in ET.parse(junit).getroot().iter("testcase"):
            fail = next((e for e in (case.find("failure"), case.find("error")) if e is not None), None)
            skip = case.find("skipped")
            outcome = ("failed: " + (fail.get("message") or "")[:300]) if fail is not None else \
                ("skipped: " + (skip.get("message") or "")[:300]) if skip is not None else "passed"
            tests[f"{case.get('classname')}::{case.get('name')}"] = outcome
    counts = {o: sum(v.split(":")[0] == o for v in tests.values()) for o in ("passed", "failed", "skipped")}
    p.doc["data"]["cuda_tests"] = {"command": " ".join(cmd[1:]), "returncode": proc.returncode, "tests": tests,
                                   **counts, "output_tail": (proc.stdout + proc.stderr)[-3000:]}
    p.row("CUDA-dependent tests passed", counts["passed"], "tests", float(len(tests)), "tests run",
          "all pass", counts["passed"] == len(tests) > 0 if p.dev.type == "cuda" else None,
          note=f"{counts['failed']} failed, {counts['skipped']} skipped (pytest exit {proc.returncode})"
               + ("" if p.dev.type == "cuda" else "; without CUDA they skip"))


_CLI = ("import json, sys, torch\n"
        "cap = float(sys.argv[1])\n"
        "if cap > 0: torch.cuda.set_per_process_memory_fraction(cap)\n"
        "from mrizoo.cli import main\n"
        "rc = main(sys.argv[2:])\n"
        "used = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0\n"
        "print('GPU_SUITE ' + json.dumps({'rc': rc, 'cuda_max_allocated': used}))\n"
        "sys.exit(rc)\n")


def _cli(p: Part, args: list[str], cap: float = 0.0) -> dict[str, Any]:
    """``mrizoo`` in a fresh process (optionally under a CUDA memory cap, a fraction of the GPU)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CLI, str(cap), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=max(5.0, p.left() / 2))
    report = next((json.loads(line[10:]) for line in proc.stdout.splitlines() if line.startswith("GPU_SUITE ")), {})
    if proc.returncode != 0:
        raise RuntimeError(f"mrizoo {' '.join(args[:2])} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
    return {**report, "seconds": time.perf_counter() - t0, "stderr_tail": proc.stderr[-800:]}


def _reconstruct(p: Part, out: Path) -> None:
    import h5py
    import numpy as np

    from mrizoo.data import FastMRIVolume, write_volume
    from mrizoo.demo import demo_scan_path

    n = p.sizes["recon_slices"]
    with FastMRIVolume(demo_scan_path()) as vol:
        k, lines, target = vol.kspace(0), vol.mask(), vol.target(0)
    src = write_volume(out / "scan.h5", kspace=k[None].repeat(n, 1, 1, 1).numpy(), mask=lines.numpy().astype("uint8"),
                       targets={"reconstruction_rss": target[None].repeat(n, 1, 1).numpy()})
    common = ["reconstruct", "varnet-mini-r4", str(src), "--no-progress", "--overwrite"]
    auto = _cli(p, [*common[:3], str(out / "auto.h5"), *common[3:], "--batch-size", "4"])
    cpu = _cli(p, [*common[:3], str(out / "cpu.h5"), *common[3:], "--batch-size", "4", "--device", "cpu"])
    with h5py.File(out / "auto.h5") as a, h5py.File(out / "cpu.h5") as c:
        ra, rc_ = a["reconstruction"][()], c["reconstruction"][()]
    diff = float(np.abs(ra - rc_).max() / np.abs(rc_).max())
    on_gpu = auto["cuda_max_allocated"] > 0
    p.doc["data"]["reconstruct"] = {"slices": n, "default_device": auto, "cpu": cpu, "max_rel_diff_default_vs_cpu": diff}
    p.row("mrizoo reconstruct, no --device: volume time", auto["seconds"], "s", cpu["seconds"], "--device cpu",
          note=f"{'ran on the GPU' if on_gpu else 'ran on the CPU'}; max rel diff to CPU output {diff:.1e}")
    p.row("mrizoo reconstruct: default device is the GPU when there is one", float(on_gpu), "bool",
          target="1 on a GPU machine", met=on_gpu if p.dev.type == "cuda" else None)
    if p.dev.type != "cuda":
        p.doc["skipped"].append("reconstruct out-of-memory fallback: needs a CUDA device (memory cap)")
        return
    # a real out-of-memory error: cap this process's GPU memory near what batch 4 needed, ask for 4x that batch
    total = torch.cuda.get_device_properties(p.dev).total_memory
    cap = min(0.9, (1.3 * auto["cuda_max_allocated"] + 64 * 2**20) / total)
    oom = _cli(p, [*common[:3], str(out / "oom.h5"), *common[3:], "--batch-size", str(n)], cap=cap)
    with h5py.File(out / "oom.h5") as f:
        ro, halvings, bs = f["reconstruction"][()], int(f.attrs["oom_batch_halvings"]), int(f.attrs["batch_size"])
    same = float(np.abs(ro - ra).max() / np.abs(ra).max())
    p.doc["data"]["reconstruct_oom"] = {"memory_cap_fraction": cap, "batch_requested": n, "batch_used": bs,
                                        "halvings": halvings, "max_rel_diff_vs_batch4": same, **oom}
    p.row("mrizoo reconstruct under a GPU memory cap: batch halvings after real OOM errors", float(halvings), "halvings",
          target=">= 1, output as without the cap", met=halvings >= 1 and same < 1e-4,
          note=f"batch {n} -> {bs}; max rel diff to the uncapped run {same:.1e}")


def _espirit(p: Part) -> None:
    from mrizoo.data import FastMRIVolume
    from mrizoo.demo import demo_scan_path
    from mrizoo.physics.espirit import espirit_maps

    with FastMRIVolume(demo_scan_path()) as vol:
        demo = vol.kspace(0)
    c, h, w = p.sizes["espirit_big"]
    big, _ = knee_slice(c, (h, w), torch.device("cpu"))
    last_cpu_s = 0.0
    for name, k in (("demo scan 8 x 230 x 180", demo), (f"knee-sized {c} x {h} x {w}", big[0])):
        for solver in ("eigh", "power"):
            if p.left() < 3 * last_cpu_s:
                p.doc["skipped"].append(f"ESPIRiT ({solver}) on {name}: time budget spent")
                continue
            t_cpu, m_cpu = time_once(lambda: espirit_maps(k, solver=solver), torch.device("cpu"))
            kd = k.to(p.dev)
            espirit_maps(kd, solver=solver)  # warm-up
            t_dev, m_dev = time_once(lambda: espirit_maps(kd, solver=solver), p.dev)
            m_dev = m_dev.cpu()
            s_cpu, s_dev = m_cpu.abs().sum(0) > 0, m_dev.abs().sum(0) > 0
            keep = s_cpu & s_dev
            coherence = float((m_cpu.conj() * m_dev).sum(0).abs()[keep].min()) if bool(keep.any()) else float("nan")
            mismatch = float((s_cpu ^ s_dev).float().mean())
            last_cpu_s = t_cpu
            p.doc["data"][f"espirit {name} {solver}"] = {"cpu_s": t_cpu, "device_s": t_dev, "min_coherence": coherence,
                                                         "support_mismatch": mismatch}
            p.row(f"ESPIRiT ({solver}) on {name}: time on {p.dev.type}", t_dev * 1e3, "ms", t_cpu * 1e3, "CPU",
                  target="same maps", met=coherence > 0.9999 and mismatch < 1e-3,
                  note=f"min |<cpu, device>| {coherence:.6f}; support mismatch {mismatch:.1e}")
            p.save()


def part_checks(p: Part) -> None:
    out = Path(tempfile.mkdtemp(prefix="mrizoo-gpu-suite-"))
    try:
        p.step("cuda tests (pytest)", lambda: _run_pytest(p, out), need_s=5.0)
        p.step("mrizoo reconstruct", lambda: _reconstruct(p, out), need_s=5.0)
        p.step("espirit device vs cpu", lambda: _espirit(p), need_s=2.0)
    finally:
        shutil.rmtree(out, ignore_errors=True)


RUNNERS: dict[str, Callable[[Part], None]] = {"1": part_inference, "2": part_rcgan, "3": part_langevin,
                                              "4": part_training, "5": part_checks}


# ---------------------------------------------------------------------------------- reporting
def _fmt(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.0f}"
    return str(x)


def write_report(doc: dict[str, Any], out: Path) -> None:
    """results.json and results.md, each written whole and then moved into place."""
    env = doc.get("environment") or {}
    lines = ["# mrizoo GPU suite", "",
             f"- device: {env.get('gpu') or env.get('device', doc['device'])}"
             + (f" ({env.get('gpu_memory_gib')} GiB, compute capability {env.get('capability')})" if env.get("gpu") else ""),
             f"- torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}; mrizoo {env.get('mrizoo')}, "
             f"fastmri {env.get('fastmri')}, accelerate {env.get('accelerate')}; Python {env.get('python')}",
             f"- started {doc['started']}; {'toy sizes (--tiny)' if doc['tiny'] else 'full sizes'}; "
             f"budget {doc['budget_s']:.0f} s; wall {doc.get('wall_s', 0):.0f} s",
             f"- command: `{doc['command']}`", "",
             "Ratio = value / reference, both measured in the same run (unless the reference is a paper figure).", ""]
    for key, part in doc["parts"].items():
        lines += [f"## Part {key}: {part['title']}", "",
                  f"status **{part['status']}**, {part.get('wall_s', 0):.0f} s of a {part['budget_s']:.0f} s budget", ""]
        if part.get("rows"):
            lines += ["| measure | value | unit | reference | reference value | ratio | target | met | note |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in part["rows"]:
                lines.append("| " + " | ".join(_fmt(r.get(c)) for c in ("measure", "value", "unit", "reference_name",
                                                                           "reference", "ratio", "target", "met",
                                                                           "note")) + " |")
            lines.append("")
        for e in part.get("errors", []):
            lines.append(f"- error in {e['step']}: `{e['error'][:400]}`")
        for s in part.get("skipped", []):
            lines.append(f"- skipped: {s}")
        lines.append("")
    for name, text in ((RESULTS, json.dumps(doc, indent=1, default=str)), (REPORT, "\n".join(lines))):
        tmp = out / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, out / name)


# ------------------------------------------------------------------------------ orchestration
def run_part(key: str, budget_s: float, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Run one part in its own process group, killed at ``budget_s``; its partial results survive."""
    (out / "logs").mkdir(exist_ok=True)
    part_json, log = out / "logs" / f"part{key}.json", out / "logs" / f"part{key}.log"
    part_json.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", key, "--out", str(out), "--device", args.device,
           "--budget-s", str(budget_s), *(["--tiny"] if args.tiny else []),
           *(["--compile-backend", args.compile_backend] if args.compile_backend else [])]
    t0 = time.monotonic()
    with open(log, "w") as fh:
        # a private compiler cache: compile times are cold ones, and a part killed mid-compile
        # leaves no half-written kernel behind for later runs
        cache = tempfile.mkdtemp(prefix="mrizoo-gpu-suite-inductor-")
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "TRITON_CACHE_DIR": os.path.join(cache, "triton"),
               **({"OMP_NUM_THREADS": "1"} if args.tiny and args.device == "cpu" else {})}
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT, env=env)
        try:
            rc = proc.wait(timeout=budget_s)
            status = None
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc, status = proc.wait(), "timeout"
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    part = json.loads(part_json.read_text()) if part_json.is_file() else \
        {"part": key, "title": PARTS[key], "budget_s": budget_s, "rows": [], "data": {}, "errors": [], "skipped": []}
    part["wall_s"] = round(time.monotonic() - t0, 2)
    part["log"] = str(log.relative_to(out))
    tail = log.read_text(errors="replace")[-2000:]
    if status == "timeout":
        part["status"] = "timeout"
        part["errors"].append({"step": "part", "error": f"stopped at its {budget_s:.0f} s budget; log tail: {tail}"})
    elif rc != 0 or part.get("status") != "done":
        part["status"] = "failed"
        part["errors"].append({"step": "part", "error": f"process exited {rc}; log tail: {tail}"})
    else:
        part["status"] = "errors" if part["errors"] else "ok"
    return part


def worker(key: str, args: argparse.Namespace) -> int:
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    elif args.tiny:  # toy tensors: one thread is fastest, and robust on a busy machine
        torch.set_num_threads(1)
    part = Part(key, Path(args.out) / "logs" / f"part{key}.json", args.budget_s, dev, args.tiny)
    part.compile_backend = args.compile_backend or ("aot_eager" if args.tiny and dev.type == "cpu" else "inductor")
    try:
        RUNNERS[key](part)
        part.doc["status"] = "done"
    except Exception as err:  # noqa: BLE001  (recorded; the parent reports the part as failed)
        part.doc["errors"].append({"step": "setup", "error": f"{type(err).__name__}: {err}"[:2000],
                                   "traceback": traceback.format_exc()[-4000:]})
        part.doc["status"] = "done"
        traceback.print_exc()
    part.save()
    return 0


def parse_parts(text: str, total_s: float) -> dict[str, float]:
    """``"1,2:60,5"`` -> {part: budget seconds}; a part without ``:S`` gets its share of ``total_s``."""
    from mrizoo.errors import InputError

    parts: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, _, secs = item.partition(":")
        if key not in PARTS:
            raise InputError("unknown part", field="--parts", expected=f"a list of {', '.join(PARTS)}, each "
                             "optionally PART:SECONDS", got=repr(item))
        try:
            budget = float(secs) if secs else SHARES[key] * total_s
        except ValueError:
            budget = -1.0
        if not budget > 0:
            raise InputError("a part's budget must be a positive number of seconds", field="--parts",
                             expected="PART:SECONDS with SECONDS > 0", got=repr(item))
        parts[key] = budget
    if not parts:
        raise InputError("no part selected", field="--parts", expected=f"a list of {', '.join(PARTS)}", got=repr(text))
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for results.json, results.md and logs/")
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu; also cuda:N")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: checks every code path in about a minute")
    parser.add_argument("--budget-s", type=float, default=None,
                        help=f"total seconds, shared among the parts (default {DEFAULT_BUDGET_S[False]:.0f}, "
                             f"{DEFAULT_BUDGET_S[True]:.0f} with --tiny)")
    parser.add_argument("--parts", default=",".join(PARTS), help="parts to run, e.g. 1,2:60,5 (PART:SECONDS sets "
                        "that part's budget; default: all, each with its share of --budget-s)")
    parser.add_argument("--compile-backend", default=None,
                        help="torch.compile backend (default inductor; aot_eager with --tiny on the CPU, which "
                             "traces the models without generating C++)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    parser.add_argument("--worker", choices=list(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from mrizoo.errors import InputError

    try:
        if args.worker:  # one part, run by the parent below
            return worker(args.worker, args)
        args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(args.device)
        except RuntimeError:
            raise InputError("unknown device", field="--device", expected="cuda, cuda:N or cpu",
                             got=repr(args.device)) from None
        if dev.type not in ("cuda", "cpu"):
            raise InputError("unsupported device", field="--device", expected="cuda, cuda:N or cpu", got=args.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError("CUDA is not available on this machine", field="--device", expected="cpu here",
                             got=args.device)
        total = DEFAULT_BUDGET_S[args.tiny] if args.budget_s is None else args.budget_s
        if not total > 0:
            raise InputError("the time budget must be positive", field="--budget-s", expected="> 0 seconds", got=total)
        parts = parse_parts(args.parts, total)
        out = Path(args.out).expanduser()
        if out.exists() and not out.is_dir():
            raise InputError("the output path exists and is not a folder", path=out, field="--out",
                             expected="a folder (new or empty)")
        if (out / RESULTS).exists() and not args.overwrite:
            raise InputError("the output folder already holds results", path=out / RESULTS, field="--out",
                             expected="a new folder, or --overwrite")
    except InputError as err:
        print(f"gpu_suite: error: {err}", file=sys.stderr)
        return 2

    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"suite": "mrizoo GPU suite", "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
                           if argv is None else " ".join(["gpu_suite.py", *argv]),
                           "device": args.device, "tiny": args.tiny, "budget_s": sum(parts.values()),
                           "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                           "environment": None, "parts": {}}
    t0 = time.monotonic()
    for key, budget in parts.items():
        print(f"part {key} ({PARTS[key]}), budget {budget:.0f} s ...", flush=True)
        part = run_part(key, budget, args, out)
        doc["environment"] = doc["environment"] or part.pop("environment", None)
        part.pop("environment", None)
        doc["parts"][key] = part
        doc["wall_s"] = round(time.monotonic() - t0, 1)
        write_report(doc, out)
        print(f"part {key}: {part['status']} in {part['wall_s']:.0f} s", flush=True)
    print(f"results: {out / RESULTS}, {out / REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
