"""The measuring parts (1-4) of the GPU suite (``gpu_suite.py`` runs each in its own process).

Each part takes a :class:`_gpu_measure.Part`, records its figures as rows (value, reference
measured in the same run or a paper figure, ratio, target) and raw data, and survives the
failure of one measurement (recorded, the next one runs).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from _gpu_checks import part_checks
from _gpu_measure import Part, _sync, autocast, knee_slice, mib, peak_mib, rel_diff, time_once

PAPER_RCGAN_SAMPLES_PER_S = 4 / 0.217  # Bendel et al. 2023: 4 samples in 217 ms
PAPER_LANGEVIN_S_PER_SLICE = 14 * 60.0  # Jalal et al. 2021: 14 minutes per slice


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


@contextmanager
def strict_fp32() -> Iterator[None]:
    """Full fp32 convolutions and matmuls on a GPU (no TF32) inside the block."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


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
        with strict_fp32():  # parity without TF32 convolutions (on by default on a GPU)
            data["max_rel_diff_strict_fp32"] = rel_diff(pair["call_ours"](), pair["call_ref"]())
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
        strict = data["max_rel_diff_strict_fp32"]
        p.row(f"{pair['name']}, fp32 without TF32: max relative difference to fastmri", strict, "",
              target="<= 1e-4", met=strict <= 1e-4,
              note=f"{data['max_rel_diff_mrizoo_vs_fastmri']:.1e} with the default TF32 settings")
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
    p.row(f"{pair['name']}, torch.compile ({p.compile_backend}): time per slice", med["mrizoo"] * 1e3, "ms",
          med["fastmri"] * 1e3,
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
        rate = chains / med["score"]
        key, ref_key = f"score {tag}, {chains} chains", f"score fp32, {chains if bf16 else 1} chains"
        ref = p.doc["data"].get(ref_key) if ref_key != key else None  # bf16: fp32; batches: one image
        p.doc["data"][key] = {"seconds": med["score"], "images_per_s": rate, "peak_extra_mib": peak_mib(score, p.dev)}
        p.row(f"NCSNv2, {tag}: network evaluations per second ({chains} image(s) per call)", rate, "images/s",
              ref["images_per_s"] if ref else None,
              ("fp32, same batch" if bf16 else "fp32, one image per call") if ref else None,
              note=f"{med['score'] * 1e3:.1f} ms per call")

    def steps(chains: int) -> None:
        short = dataclasses.replace(lcfg, start_level=0, end_level=min(p.sizes["ncsn_levels"], levels))
        n_steps = (short.end_level - short.start_level) * short.steps_per_level

        def run() -> Any:
            return annealed_langevin(model.score, k, mask, maps, model.net.sigmas, short, n=chains)

        t, _ = time_once(run, p.dev)  # warm-up
        t, out = time_once(run, p.dev)
        per_step = t / n_steps
        projected = per_step * total_steps
        p.doc["data"][f"langevin {chains} chains"] = {"timed_steps": n_steps, "seconds": t,
                                                     "seconds_per_step": per_step,
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
    from mrizoo.train.loop import _reset_accelerate_state, build_model
    from mrizoo.train.recipe import DataSource, SyntheticData, load_recipe
    from mrizoo.train.task_base import to_device as _to_device
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
    p.doc["data"]["setup"] = {"recipe": "varnet-pool-r4", "model_overrides": overrides,
                              "slices_per_batch": len(batches[0]),
                              "shape": list(s["train_shape"]), "coils": s["train_coils"],
                              "checkpointing_supported": supported, "data": "2 batches preloaded on the device"}
    p.save()
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
        ref = results.get("fp32") if name != "fp32" else None
        ref_name = "fp32, no checkpointing" if ref else None
        p.row(f"VarNet recipe training, {name}: optimizer steps/s", done / seconds, "steps/s",
              ref["steps_per_s"] if ref else None, ref_name)
        if peak is not None:
            p.row(f"VarNet recipe training, {name}: peak memory", peak, "MiB",
                  ref["peak_mib"] if ref else None, ref_name)

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


RUNNERS: dict[str, Callable[[Part], None]] = {"1": part_inference, "2": part_rcgan, "3": part_langevin,
                                              "4": part_training, "5": part_checks}


