"""Scoring zoo models on test volumes: fastMRI metrics per volume, summaries per test set.

Every volume is undersampled once with a mask seeded from its file name (fastMRI's test-time
convention), and all models reconstruct the same k-space, each exactly as ``model.reconstruct(kspace,
mask)`` would (coil maps, when a model needs them, are estimated from the undersampled k-space,
never from the fully sampled data behind the target). Per volume: SSIM, PSNR, NMSE scored by
:func:`mrizoo.metrics.score` (fastMRI definitions on fastMRI's region: the centre crop to the
target's size, data range ``target.max()`` over the volume), the artifact score, optionally masked
SSIM/PSNR (``*_masked``) and mean/std-matched SSIM/PSNR/NMSE (``*_matched``, Lin & Heckel 2024).
Posterior models are scored on the mean of ``samples`` posterior samples; they also get APSD,
SSIM/PSNR of the mean of the first ``P`` samples (``ssim_p<P>``, ``psnr_p<P>``, Bendel et al. 2023)
and, with an embedding, CFID over the whole test set; per test set, the calibration of the mean
of ``P`` samples (:mod:`mrizoo.metrics.calibration`: variance/error ratio, 1- and 2-sigma
coverage, Prop. 3.3 ratio, pooled over every pixel of the set; ``P`` is ``calibration_samples``,
default the model's ``reconstruct_samples``, else 8). ``seconds_per_slice`` is the wall-clock time of
each model's call per slice (with the ESPIRiT maps for models that use them; adaptation included for
``+tta`` rows). Results convert to :class:`~mrizoo.results.EvaluationResults` (one per model)
for model cards; a learned model's results also carry, in ``compared``, its adapted row and the
classical baselines of the same run, and in ``adaptation`` the settings of that adaptation.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mrizoo.classical import zero_filled
from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.data.slices import SliceDataset, collate_samples
from mrizoo.errors import InputError
from mrizoo.evaluate_records import P_VALUES, EvalSet, Evaluation, ModelScores, VolumeScore
from mrizoo.evaluate_report import markdown_table, robustness_plot
from mrizoo.metrics import (
    apsd,
    artifact_score,
    center_crop,
    embed,
    evaluate_matched,
    masked_psnr,
    masked_ssim,
    metric_region,
    score,
)
from mrizoo.metrics.calibration import calibration_stats
from mrizoo.metrics.posterior import cfid
from mrizoo.metrics.reference import Reference, reference_problem, slice_reference
from mrizoo.models.adapt import AdaptConfig, default_params, default_refine, family_of
from mrizoo.models.adapting import AdaptingModel
from mrizoo.physics.espirit import espirit_maps
from mrizoo.zoo import load

__all__ = [
    "P_VALUES", "EvalSet", "VolumeScore", "ModelScores", "Evaluation", "evaluate_models",
    "markdown_table", "robustness_plot", "model_label", "Reference", "reference_problem", "slice_reference", "check_references",
]


def check_references(ds: Any, target: str) -> None:
    """Refuse, before any model runs, volumes of ``ds`` that cannot be scored truthfully.

    Fully sampled volumes are undersampled once and scored against their own reference. A volume
    whose k-space is already undersampled is never undersampled again; it is scored only when it
    declares its undersampling and stores a reference from the fully sampled data (``target`` names
    that stored image); otherwise :class:`InputError` says the file has no fully sampled reference.
    """
    for info in getattr(ds, "volumes", ()):
        with FastMRIVolume(info.path) as vol:
            if target not in ("rss", "mvue") and target not in vol.target_keys:
                raise InputError("no such target", path=info.path, field=target,
                                 expected=f"'rss', 'mvue' or one of {vol.target_keys}")
            why = reference_problem(vol, vol.sampling_info(), target)
            if why:
                raise InputError(why, path=info.path, field="kspace",
                                 expected="fully sampled volumes (or a declared mask with --target reconstruction_rss)")


def model_label(spec: str | os.PathLike[str], model: nn.Module | None = None) -> str:
    """A zoo-grammar name for a model given by name or path (its entry's name when it has one)."""
    entry_name = getattr(getattr(model, "zoo_entry", None), "name", None)
    text = str(entry_name) if entry_name else os.fspath(spec)
    text = Path(text).name if Path(text).exists() else text.removeprefix("hf-hub:").replace("/", "-")
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9.]+", "-", text.lower())).strip("-") or "model"


def _slice_kwargs(mask: str, acceleration: float, center_fraction: float | None,
                  target: str) -> dict[str, Any]:
    params: dict[str, Any] = {"acceleration": acceleration}
    if center_fraction is not None:
        params["center_fraction"] = center_fraction
    return {"target": target, "mask": mask, "mask_params": params, "seed_mode": "filename"}


def _dataset(s: EvalSet, kwargs: dict[str, Any]) -> Any:
    if callable(s.source):
        return s.source(**kwargs)
    return SliceDataset(s.source, **kwargs)


def _volumes(ds: Any) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for i, vid in enumerate(ds.volume_ids):
        groups.setdefault(int(vid), []).append(i)
    return list(groups.values())


def _fit(img: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``img`` on the metric region of a target of size ``shape`` (see :func:`mrizoo.metrics.score`)."""
    hw = metric_region(shape, tuple(img.shape[-2:]))
    return img if tuple(img.shape[-2:]) == hw else center_crop(img, hw)


def _image_metrics(gt: torch.Tensor, pred: torch.Tensor, *, masked: bool, matched: bool) -> dict[str, float]:
    gt = _fit(gt, tuple(pred.shape[-2:]))  # where the reconstruction is narrower (fastMRI)
    out = dict(score(gt, pred))
    out["artifact"] = artifact_score(gt, pred)
    if masked:
        out["ssim_masked"] = masked_ssim(gt, pred)
        out["psnr_masked"] = masked_psnr(gt, pred)
    if matched:
        out.update({f"{k}_matched": v for k, v in evaluate_matched(gt, pred).items()})
    return out


def _to_models(models: Mapping[str, nn.Module] | Sequence[str | nn.Module]) -> dict[str, nn.Module]:
    if isinstance(models, Mapping):
        return dict(models)
    out: dict[str, nn.Module] = {}
    for m in models:
        if isinstance(m, nn.Module):
            label = model_label(type(m).__name__.lower(), m)
        else:
            m_loaded = load(m)
            label, m = model_label(m, m_loaded), m_loaded
        if label in out:
            raise InputError("model given twice", field="models", got=label)
        out[label] = m
    return out


def evaluate_models(
    models: Mapping[str, nn.Module] | Sequence[str | nn.Module],
    datasets: Sequence[EvalSet],
    *,
    mask: str = "equispaced_fraction",
    acceleration: float = 4.0,
    center_fraction: float | None = 0.08,
    samples: int = 32,
    samples_max: int | None = None,
    match_mean_std: bool = False,
    masked: bool = False,
    embedding: Callable[[torch.Tensor], torch.Tensor] | None = None,
    target: str = "rss",
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    generator_seed: int = 0,
    progress: Callable[[str], None] | None = None,
    adapt: bool = False,
    adapt_steps: int | None = None,
    calibration_samples: int | None = None,
) -> Evaluation:
    """Reconstruct every volume of every test set with every model and score it (module docstring).

    ``models``: zoo names / checkpoint paths / models (labelled by their zoo entry), or a mapping
    ``label -> model``. ``samples``: posterior samples per slice (the P-curves use
    ``P_VALUES`` up to ``samples_max``, default ``samples``). ``embedding``: an image embedding
    ``[N, C, H, W] -> [N, d]``; with it, posterior models also get CFID per test set (rows:
    every sample, with the target and the zero-filled condition image repeated). ``adapt`` adds a
    row ``<label>+tta`` per learned model: a copy adapted to each slice (test-time adaptation,
    at most ``adapt_steps`` steps, :mod:`mrizoo.models.adapt`). ``calibration_samples``: the ``P``
    of the calibration metrics (at most ``samples``; default each model's ``reconstruct_samples``,
    else 8, capped at ``samples``).
    """
    if not datasets:
        raise InputError("no test data", field="datasets", expected="at least one test set")
    names = [s.name for s in datasets]
    if len(set(names)) != len(names):
        raise InputError("test-set names must be unique", field="datasets", got=names)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise InputError("posterior evaluation needs at least 2 samples", field="samples", got=samples)
    if calibration_samples is not None and (
            isinstance(calibration_samples, bool) or not isinstance(calibration_samples, int)
            or not 2 <= calibration_samples <= samples):
        raise InputError("calibration needs 2 to `samples` posterior samples", field="calibration_samples",
                         expected=f"an integer in [2, {samples}]", got=calibration_samples)
    pmax = samples if samples_max is None else samples_max
    p_values = [p for p in P_VALUES if p <= min(pmax, samples)]
    kwargs = _slice_kwargs(mask, acceleration, center_fraction, target)
    built = {s.name: _dataset(s, kwargs) for s in datasets}
    for s in datasets:  # before any model loads or runs
        check_references(built[s.name], target)
    nets = _to_models(models)
    if not nets:
        raise InputError("no models to evaluate", field="models")
    if adapt or adapt_steps is not None:
        nets.update(_adapting(nets, adapt, adapt_steps))
    dev = torch.device(device)
    for net in nets.values():
        net.to(dev).eval()
    any_posterior = any(getattr(n, "is_posterior", False) for n in nets.values())
    scores = {k: ModelScores(k, bool(getattr(n, "is_posterior", False))) for k, n in nets.items()}
    say = progress or (lambda _msg: None)
    calib_p = {k: _calibration_p(n, calibration_samples, samples) for k, n in nets.items() if scores[k].is_posterior}

    for s in datasets:
        ds = built[s.name]
        cfid_rows: dict[str, list[torch.Tensor]] = {k: [] for k, sc in scores.items() if sc.is_posterior}
        emb_x: list[torch.Tensor] = []
        emb_y: list[torch.Tensor] = []
        calib: dict[str, Any] = {}
        for vol in _volumes(ds):
            items = [ds[i] for i in vol]
            fname = items[0].fname
            gt_parts: list[torch.Tensor] = []
            recon: dict[str, list[torch.Tensor]] = {k: [] for k in nets}
            post: dict[str, list[torch.Tensor]] = {k: [] for k in cfid_rows}
            zf_parts: list[torch.Tensor] = []
            seconds: dict[str, float] = {}
            for start in range(0, len(items), batch_size):
                batch = collate_samples(items[start : start + batch_size])
                kspace, bmask = batch.kspace.to(dev), batch.mask.to(dev)
                shape = tuple(batch.target.shape[-2:])
                gt_parts.append(batch.target.double())
                maps = None  # never the dataset's maps: those may come from the fully sampled k-space
                maps_s = 0.0
                if any(getattr(n, "needs_maps", False) for n in nets.values()):
                    # the maps each such model would estimate itself, computed once per batch
                    tick = _clock(dev)
                    maps = espirit_maps(kspace)
                    maps_s = _clock(dev) - tick
                if any_posterior and embedding is not None:
                    zf_parts.append(_fit(zero_filled(kspace, bmask), shape).double().cpu())
                for label, net in nets.items():
                    own = maps if getattr(net, "needs_maps", False) else None  # others estimate their own
                    tick = _clock(dev) - (maps_s if own is not None else 0.0)
                    with torch.no_grad():
                        if scores[label].is_posterior:
                            gen = torch.Generator(device=dev).manual_seed(generator_seed)
                            try:
                                out = net.sample(kspace, bmask, own, n=samples, generator=gen)
                            except TypeError:
                                out = net.sample(kspace, bmask, own, n=samples)
                            smp = _fit(out.samples, shape).double().cpu()
                            post[label].append(smp)
                            recon[label].append(smp.mean(0))
                        else:
                            recon[label].append(_fit(net.reconstruct(kspace, bmask, own), shape).double().cpu())
                    seconds[label] = seconds.get(label, 0.0) + _clock(dev) - tick
            gt = torch.cat(gt_parts)
            for label in nets:
                pred = torch.cat(recon[label])
                metrics = _image_metrics(gt, pred, masked=masked, matched=match_mean_std)
                metrics["seconds_per_slice"] = seconds[label] / max(1, int(gt.shape[0]))
                if label in post:
                    smp = torch.cat(post[label], dim=1)  # [n, S, H, W]
                    metrics["apsd"] = apsd(smp)
                    stats = calibration_stats(smp[: calib_p[label]], gt)
                    calib[label] = stats if label not in calib else calib[label].merge(stats)
                    for p in p_values:
                        mean_p = smp[:p].mean(0)
                        scored = score(gt, mean_p)
                        metrics[f"ssim_p{p}"], metrics[f"psnr_p{p}"] = scored["ssim"], scored["psnr"]
                    if embedding is not None:
                        n = smp.shape[0]
                        cfid_rows[label].append(embed(smp.transpose(0, 1).reshape(-1, *gt.shape[-2:]), embedding))
                        if label == next(iter(cfid_rows)):
                            emb_x.append(embed(gt, embedding).repeat_interleave(n, dim=0))
                            emb_y.append(embed(torch.cat(zf_parts), embedding).repeat_interleave(n, dim=0))
                scores[label].volumes.append(VolumeScore(s.name, fname, int(gt.shape[0]), metrics))
                say(f"{label} {s.name} {fname}: ssim {metrics['ssim']:.4f} psnr {metrics['psnr']:.2f}")
        for label, stats in calib.items():
            summary = stats.summary()
            scores[label].calibration[s.name] = summary
            scores[label].set_metrics.setdefault(s.name, {}).update(
                {k: v for k, v in summary.metrics().items() if math.isfinite(v)})
        if embedding is not None:
            for label, rows in cfid_rows.items():
                if rows:
                    scores[label].set_metrics.setdefault(s.name, {})["cfid"] = cfid(
                        torch.cat(emb_x), torch.cat(rows), torch.cat(emb_y))
    return Evaluation(models=scores, sets=list(datasets), mask=mask, acceleration=float(acceleration),
                      center_fraction=center_fraction, samples=samples if any_posterior else None,
                      weights={k: dict(getattr(n, "weights_source", None) or {}) for k, n in nets.items()},
                      adaptation={k: {"config": asdict(n.config), "threads": torch.get_num_threads(),
                                      "device": str(dev)}
                                  for k, n in nets.items() if k.endswith("+tta") and hasattr(n, "config")})


def _clock(dev: torch.device) -> float:
    """Seconds on a monotonic clock, after the device has finished its queued work."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter()


def _calibration_p(net: nn.Module, requested: int | None, samples: int) -> int:
    """``P`` of a model's calibration metrics: as requested, else its ``reconstruct_samples`` (8 if
    it has none), at most the samples drawn."""
    if requested is not None:
        return requested
    own = getattr(getattr(net, "config", None), "reconstruct_samples", None)
    own = own if isinstance(own, int) and not isinstance(own, bool) and own >= 2 else 8
    return min(own, samples)


def _adapting(nets: dict[str, nn.Module], adapt: bool, steps: int | None) -> dict[str, nn.Module]:
    """``<label>+tta`` -> the model adapted per slice, for every model that can adapt (checked first)."""
    if not adapt:
        raise InputError("adapt_steps needs adapt", field="adapt_steps", expected="adapt=True", got=steps)
    cfg = AdaptConfig() if steps is None else replace(AdaptConfig(), steps=steps)
    out: dict[str, nn.Module] = {}
    for label, net in nets.items():
        try:
            family = family_of(net)
        except InputError:
            continue
        out[f"{label}+tta"] = AdaptingModel(net, replace(cfg, params=cfg.params or default_params(family),
                                                         refine=cfg.refine or default_refine(family)))
    if not out:
        raise InputError("none of the models can adapt at test time", field="adapt",
                         expected="a learned VarNet, MoDL, U-Net, ViT or rcGAN", got=sorted(nets))
    return out
