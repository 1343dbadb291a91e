"""Reconstructing fastMRI-convention volumes with a zoo model, slice batch by slice batch.

:func:`reconstruct_file` reads one ``.h5`` volume, undersamples fully sampled k-space
retrospectively (mask seeded from the file name, as fastMRI's test set is) or uses the stored
``mask``, runs the model on all slices and writes a fastMRI-convention output file
(``reconstruction`` ``[slices, H, W]`` float32 plus the attributes fastMRI's ``evaluate.py``
reads, and which weights made it), atomically. :func:`reconstruct_path` does the same for a
folder of volumes. Whether a volume is fully sampled is read from the file
(:meth:`~mrizoo.data.fastmri_h5.FastMRIVolume.sampling_info`): only fully sampled k-space is
undersampled and scored; undersampled k-space is reconstructed from its own samples. Every option,
output path and input is checked before the model runs, so a bad option never leaves an output.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mrizoo import __version__
from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.data.nifti import check_output_format, nifti_name, write_nifti
from mrizoo.errors import InputError
from mrizoo.models.adapt import AdaptConfig, family_of
from mrizoo.models.checkpoint import describe_weights
from mrizoo.reconstruct_figure import save_volume_figure
from mrizoo.reconstruct_masks import choose_mask, outside_training
from mrizoo.reconstruct_runner import SliceRunner, accepts, adapt_summary, model_name, model_task, needs_coils
from mrizoo.run_checks import check_numbers, check_space, pick_device, preflight, write_images
from mrizoo.zoo import load

__all__ = ["ReconstructResult", "reconstruct_file", "reconstruct_path", "resolve_model", "default_output",
           "pick_device"]

log = logging.getLogger("mrizoo.reconstruct")


@dataclass
class ReconstructResult:
    """What one reconstructed volume got: where it went and how it was made."""

    input: Path
    output: Path
    num_slices: int
    acceleration: float
    center_fraction: float
    mask: str
    batch_size: int
    acceleration_outside_training: bool
    figure: Path | None = None
    notes: list[str] = field(default_factory=list)
    skipped: bool = False
    sampling: str = ""
    weights: str = ""
    adaptation: str = ""  # test-time adaptation: steps and seconds per slice, "" when not adapted

    def summary(self) -> str:
        if self.skipped:
            return f"{self.input} -> {self.output}: skipped (output exists)"
        text = (f"{self.input} -> {self.output}: {self.num_slices} slices, mask {self.mask}, "
                f"R={self.acceleration:.3g}, centre fraction {self.center_fraction:.3g}")
        if self.sampling == "undersampled":
            text += " (input already undersampled: reconstructed from its own samples)"
        if self.acceleration_outside_training:
            text += " (acceleration outside the model's training range)"
        if self.adaptation:
            text += f"; {self.adaptation}"
        return text


# ----------------------------------------------------------------------------- models
def resolve_model(model: str | os.PathLike[str] | nn.Module, device: torch.device) -> nn.Module:
    """A model in eval mode on ``device`` from a zoo name, ``hf-hub:`` spec, checkpoint folder or module."""
    if isinstance(model, nn.Module):
        return model.to(device).eval()
    return load(model, map_location=device).eval()


def default_output(in_path: str | os.PathLike[str], model: str | os.PathLike[str] | nn.Module) -> Path:
    """``<input stem>_<model>.h5`` next to an input file, ``<folder>_<model>`` next to an input folder."""
    src = Path(in_path)
    name = model_name(model) if isinstance(model, nn.Module) else Path(os.fspath(model)).name
    tag = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "recon"
    if src.is_dir():
        return src.parent / f"{src.name}_{tag}"
    return src.with_name(f"{src.stem}_{tag}.h5")


# ------------------------------------------------------------------------- checks
def _check_options(model: nn.Module, samples: int | None, upsample: int) -> None:
    """Options that depend on the model."""
    if samples is not None and not getattr(model, "is_posterior", False):
        raise InputError(f"{model_name(model)} is not a posterior model", field="samples",
                         expected="no --samples (or a posterior model such as rcgan)", got=samples)
    if upsample != 1:
        fn = model.sample if samples is not None else model.reconstruct
        if not accepts(fn, "upsample"):
            raise InputError(f"{model_name(model)} does not support upsampling", field="upsample",
                             expected="1 (upsampling is a VarNet option)", got=upsample)


def _check_adapt(model: nn.Module, adapt: bool, steps: int | None, upsample: int = 1) -> int | None:
    """Steps of test-time adaptation (``None``: no adaptation); the model must be able to adapt."""
    if steps is not None and not adapt:
        raise InputError("--adapt-steps needs --adapt", field="adapt_steps", expected="--adapt as well", got=steps)
    if not adapt:
        return None
    if upsample != 1:
        raise InputError("--adapt reconstructs at the measured size", field="upsample",
                         expected="1 with --adapt", got=upsample)
    if isinstance(steps, bool) or (steps is not None and (not isinstance(steps, int) or steps < 0)):
        raise InputError("adaptation steps must be an integer >= 0", field="adapt_steps", expected="int >= 0",
                         got=repr(steps))
    family_of(model)
    return AdaptConfig().steps if steps is None else steps


def _header_xml(vol: FastMRIVolume) -> str:
    """The input's ISMRMRD XML header, '' when it has none."""
    ds = vol._file.get("ismrmrd_header")
    raw = ds[()] if ds is not None and ds.shape == () else b""
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _weights_attrs(net: nn.Module) -> tuple[dict[str, str], str]:
    """The output attributes naming the weights that ran, and a one-line description."""
    source = getattr(net, "weights_source", None)
    if not isinstance(source, dict):
        source = {"name": model_name(net), "kind": "unknown", "location": "", "revision": "", "sha256": ""}
    try:
        text = describe_weights(net)
    except (AttributeError, KeyError, TypeError):
        sha = str(source.get("sha256", ""))
        text = f"{source.get('name') or model_name(net)}: {source.get('kind', 'unknown')} weights" + (
            f", sha256 {sha[:16]}" if sha else "")
    attrs = {"weights_source": json.dumps({str(k): str(v) for k, v in source.items()}, sort_keys=True),
             "weights_sha256": str(source.get("sha256", "") or "")}
    return attrs, text



# ---------------------------------------------------------------------------- files
def reconstruct_file(
    model: str | os.PathLike[str] | nn.Module,
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    mask: str | None = None,
    acceleration: float | None = None,
    center_fraction: float | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    samples: int | None = None,
    save_samples: bool = False,
    upsample: int = 1,
    overwrite: bool = False,
    skip_existing: bool = False,
    figure: str | os.PathLike[str] | None = None,
    figure_slice: int | None = None,
    seed: int | None = 0,
    progress: bool = True,
    format: str = "h5",
    adapt: bool = False,
    adapt_steps: int | None = None,
) -> ReconstructResult:
    """Reconstruct every slice of one fastMRI-convention volume and write the result.

    Fully sampled input is undersampled with ``mask`` (default: the model's training mask,
    else ``equispaced``) at ``acceleration`` / ``center_fraction`` (defaults: the model's first
    training acceleration, else 4; fastMRI's ``0.32 / R``), seeded from the file name. Input
    that is already undersampled is reconstructed from its own samples (its stored or measured
    pattern) and never undersampled again. Posterior models with ``samples=P`` store the sample
    mean as ``reconstruction`` and the pixel-wise ``std`` (and all ``samples`` ``[P, slices, H, W]``
    with ``save_samples``); ``seed`` fixes their noise. ``upsample`` passes to models that
    support it (VarNet). An out-of-memory error halves the batch and retries. ``skip_existing``
    keeps a complete earlier output and returns a result marked ``skipped``. ``adapt`` adapts a
    copy of the model to each slice (test-time adaptation, at most ``adapt_steps`` steps; see
    :mod:`mrizoo.models.adapt`) before reconstructing it. Every option and
    path is checked before the model runs; the output records the weights' source and sha256.
    """
    if overwrite and skip_existing:
        raise InputError("--overwrite and --skip-existing exclude each other", field="skip_existing")
    check_numbers(mask, acceleration, center_fraction, batch_size, samples, save_samples, upsample, seed,
                   figure_slice)
    dev = pick_device(device)
    src = Path(in_path)
    if out_path is None:
        out_path = default_output(src, model)
        out_path = nifti_name(Path(out_path)) if format == "nifti" else out_path
    out = Path(out_path)
    check_output_format(format, out, skip_existing)  # format: h5 | nifti (NIfTI through nibabel)
    fig_target = Path(figure) if figure is not None else None
    checked = preflight(src, out, fig_target, figure_slice, overwrite, skip_existing)
    if checked.skip:
        return ReconstructResult(src, out, checked.num_slices, float("nan"), float("nan"), "", batch_size,
                                 False, skipped=True)
    net = resolve_model(model, dev)
    _check_options(net, samples, upsample)
    steps = _check_adapt(net, adapt, adapt_steps, upsample)
    if not checked.multicoil and needs_coils(net):
        raise InputError(f"{model_name(net)} needs multi-coil k-space", path=src, field="kspace",
                         expected="[slices, coils, H, W]", got=f"single-coil shape {checked.shape}")
    weights_attrs, weights_text = _weights_attrs(net)

    with FastMRIVolume(src) as vol:
        n = vol.num_slices
        h, w = vol.kspace_shape[-2:]
        choice = choose_mask(vol, net, (h, w), mask, acceleration, center_fraction)
        per_slice = n * h * w * 4 * upsample ** 2
        check_space(out, per_slice * (1 + (samples is not None) + (samples or 0) * save_samples))
        outside = outside_training(net, choice)
        task = model_task(net)
        if outside:
            msg = (f"{src}: acceleration {choice.acceleration:.3g} is outside what {model_name(net)} "
                   f"was trained for ({', '.join(f'{a:g}' for a in task.accelerations)})")
            warnings.warn(msg, UserWarning, stacklevel=2)
            log.warning(msg)

        def kspace_of(i: int) -> torch.Tensor:
            ks = vol.kspace(i)
            if ks.ndim == 2:
                ks = ks.unsqueeze(0)
            return ks * choice.mask

        runner = SliceRunner(net, 1 if adapt else batch_size, samples, upsample, seed, steps, progress)
        images = runner.run(kspace_of, n, choice.mask, dev, progress, src.name)
        if not save_samples:
            images.pop("samples", None)
        attrs_in = vol.attrs
        keep = ("acquisition", "max", "patient_id") if choice.retrospective else ("acquisition", "patient_id")
        attrs: dict[str, Any] = {k: attrs_in[k] for k in keep if k in attrs_in}
        attrs.update({
            "model": model_name(net),
            "model_source": os.fspath(model) if not isinstance(model, nn.Module) else model_name(net),
            **weights_attrs,
            "mask": choice.name,
            "acceleration": float(choice.acceleration),
            "center_fraction": float(choice.center_fraction),
            "retrospective_undersampling": choice.retrospective,
            "input_sampling": "fully_sampled" if choice.retrospective else "undersampled",
            "acceleration_outside_training": outside,
            "mrizoo_version": __version__,
            "input_file": src.name,
            "batch_size": int(runner.batch_size),
            "batch_size_requested": int(batch_size),
            "oom_batch_halvings": len(runner.halvings),
            "upsample": int(upsample),
            "test_time_adaptation": bool(adapt),
        })
        if runner.adapted:
            attrs["adapt_max_steps"] = int(steps or 0)
            attrs["adapt_kept_steps"] = np.asarray([r.best_step for r in runner.adapted], dtype=np.int64)
            attrs["adapt_seconds"] = np.asarray([r.seconds for r in runner.adapted], dtype=np.float64)
            attrs["adapt_refine"] = runner.adapted[0].refine  # "none" or how the final image was refined
        if header := _header_xml(vol):
            attrs["ismrmrd_header"] = header  # voxel sizes for viewers (mrizoo export)
        if samples is not None:
            attrs["num_samples"] = int(samples)
        if trained := (tuple(task.accelerations) if task is not None else ()):
            attrs["trained_accelerations"] = np.asarray(trained, dtype=np.float64)
        fig_path = None
        if fig_target is not None:  # drawn first: a figure that cannot be written leaves no .h5 either
            fig_new = not fig_target.exists()
            fig_path = save_volume_figure(fig_target, vol, choice, images, figure_slice, model_name(net), overwrite)
        try:
            if format == "nifti":
                write_nifti(out, images, header=attrs.get("ismrmrd_header"), attrs=attrs, overwrite=overwrite)
            else:
                write_images(out, images, attrs, overwrite)
        except BaseException:
            if fig_path is not None and fig_new:
                fig_path.unlink(missing_ok=True)
            raise

    notes = [f"out of memory: batch size halved to {b}" for b in runner.halvings]
    result = ReconstructResult(src, out, n, choice.acceleration, choice.center_fraction, choice.name,
                               runner.batch_size, outside, fig_path, notes,
                               sampling="fully_sampled" if choice.retrospective else "undersampled",
                               weights=weights_text, adaptation=adapt_summary(runner.adapted))
    log.debug(result.summary())
    return result


def reconstruct_path(
    model: str | os.PathLike[str] | nn.Module,
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    figure: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    device: str | torch.device | None = None,
    **options: Any,
) -> list[ReconstructResult]:
    """:func:`reconstruct_file` for a file, or for every ``*.h5`` in a folder (OUT is then a folder).

    In folder mode every input, output name and option is checked before any work starts,
    ``figure`` names a folder of PNGs, and the model is loaded once. ``skip_existing`` resumes
    a folder run that stopped: volumes whose complete output exists are skipped.
    """
    src = Path(in_path)
    if out_path is None:
        out_path = default_output(src, model)
    if not src.is_dir():
        return [reconstruct_file(model, src, out_path, figure=figure, overwrite=overwrite,
                                 skip_existing=skip_existing, device=device, **options)]
    if overwrite and skip_existing:
        raise InputError("--overwrite and --skip-existing exclude each other", field="skip_existing")
    files = sorted(p for p in src.iterdir() if p.suffix == ".h5" and p.is_file())
    if not files:
        raise InputError("no .h5 volumes in the folder", path=src, expected="files named *.h5")
    out_dir = Path(out_path)
    fig_dir = Path(figure) if figure is not None else None
    for folder, what in ((out_dir, "output"), (fig_dir, "figure")):
        if folder is None:
            continue
        if folder.exists() and not folder.is_dir():
            raise InputError(f"input is a folder, so the {what} must be one too", path=folder, field=what)
        if folder.exists() and folder.resolve() == src.resolve():
            raise InputError(f"the {what} folder is the input folder", path=folder, field=what,
                             expected="another folder (outputs take the input file names)")
    check_output_format(options.get("format", "h5"), None, skip_existing)
    targets = [out_dir / (nifti_name(f).name if options.get("format") == "nifti" else f.name) for f in files]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite and not skip_existing:
        raise InputError(f"{len(existing)} output file(s) exist", path=out_dir,
                         expected="new names, --skip-existing to resume, or --overwrite",
                         got=[t.name for t in existing[:5]])
    keys = ("mask", "acceleration", "center_fraction", "batch_size", "samples", "save_samples", "upsample",
            "seed", "figure_slice")
    defaults = {"batch_size": 4, "save_samples": False, "upsample": 1, "seed": 0}
    check_numbers(*(options.get(k, defaults.get(k)) for k in keys))
    dev = pick_device(device)
    figs = [fig_dir / f"{f.stem}.png" if fig_dir is not None else None for f in files]
    checked = [preflight(f, t, g, options.get("figure_slice"), overwrite, skip_existing)
               for f, t, g in zip(files, targets, figs)]
    todo = [i for i, c in enumerate(checked) if not c.skip]
    results = [ReconstructResult(files[i], targets[i], c.num_slices, float("nan"), float("nan"), "", 0, False,
                                 skipped=True) for i, c in enumerate(checked) if c.skip]
    if not todo:
        return results
    net = resolve_model(model, dev)
    _check_options(net, options.get("samples"), options.get("upsample", 1))
    single = [i for i in todo if not checked[i].multicoil]
    if single and needs_coils(net):
        raise InputError(f"{model_name(net)} needs multi-coil k-space", path=files[single[0]], field="kspace",
                         expected="[slices, coils, H, W]", got=f"single-coil shape {checked[single[0]].shape}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for i in todo:
        results.append(reconstruct_file(net, files[i], targets[i], figure=figs[i], overwrite=overwrite,
                                        device=dev, **options))
    return results
