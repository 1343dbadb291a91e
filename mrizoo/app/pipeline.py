"""What the web app does, without the web: take an upload, reconstruct it with zoo models, score it.

An upload (fastMRI ``.h5``, BART ``.cfl`` + ``.hdr`` or a zip of both, Siemens ``.dat``, ``.npy``
k-space ``[coils, H, W]`` or ``[slices, coils, H, W]``) is size-checked and turned into a
fastMRI-convention volume in the session's folder by the project's converters. Each chosen
model (classical baselines are zoo entries too) then runs through
:func:`mrizoo.reconstruct.reconstruct_file`, exactly as ``mrizoo reconstruct`` runs it, so the
page can show the command that reproduces every output; each output is also written as NIfTI
(:func:`mrizoo.data.nifti.export_nifti`). The shown slice is scored by :func:`mrizoo.metrics.score`
against the reference of fully sampled data (:func:`mrizoo.metrics.reference.slice_reference`),
as ``demo`` and ``evaluate`` score it, and drawn by :func:`mrizoo.figures.save_panels`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from mrizoo.data.convert import convert_bart
from mrizoo.data.converters.generic import convert_array
from mrizoo.data.converters.twix import convert_twix
from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.data.nifti import export_nifti
from mrizoo.demo.scan import demo_scan_path
from mrizoo.errors import InputError
from mrizoo.figures import save_panels
from mrizoo.masks import list_masks
from mrizoo.masks._common import check_acceleration
from mrizoo.metrics import caption, center_crop, metric_region, score
from mrizoo.metrics.reference import slice_reference
from mrizoo.models.adapt import family_of
from mrizoo.reconstruct import reconstruct_file, resolve_model
from mrizoo.zoo import info, list_models

__all__ = ["AppResult", "MAX_UPLOAD_MB", "offline_models", "prepare_input", "run_models", "DEFAULT_APP_MODELS"]

MAX_UPLOAD_MB = float(os.environ.get("MRIZOO_APP_MAX_UPLOAD_MB", "512"))
"""Largest upload accepted, in MB (all files of one upload together; the uncompressed size of a zip)."""

DEFAULT_APP_MODELS: tuple[str, ...] = ("varnet-mini-r4", "zerofilled")
_SUFFIXES = ".h5, .hdf5, .cfl + .hdr, .zip (of a .cfl and its .hdr), .dat (Siemens twix), .npy"


@dataclass
class Prepared:
    """The fastMRI volume to reconstruct and the commands that made it from the upload."""

    path: Path
    label: str  # the name the reproducing commands use for the scan
    commands: list[str] = field(default_factory=list)


@dataclass
class AppResult:
    """Everything the page shows: metrics rows, seconds per method, the figure, downloads, commands."""

    source: str
    rows: list[list[object]] = field(default_factory=list)  # method, SSIM, PSNR, NMSE, seconds, mean std
    figure: Path | None = None
    downloads: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def command_text(self) -> str:
        return "\n".join(self.commands)


def offline_models() -> list[str]:
    """Zoo entries that run with no network: classical baselines and models whose weights ship or are local."""
    names = []
    for name in list_models():
        kind = getattr(getattr(info(name), "weights", None), "kind", None)
        if kind in ("package", "builtin"):
            names.append(name)
    return names


# --------------------------------------------------------------------------- uploads
def _size_mb(paths: Sequence[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


def _safe_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "scan"


def _unzip(path: Path, workdir: Path, limit_mb: float) -> list[Path]:
    """The .cfl/.hdr members of a zip, extracted flat into ``workdir`` (size-limited, no paths kept)."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError("not a zip file", path=path.name, expected="a .zip holding NAME.cfl and NAME.hdr") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir() and Path(m.filename).suffix.lower() in (".cfl", ".hdr")]
        if not members:
            raise InputError("the zip holds no BART array", path=path.name,
                             expected="NAME.cfl and NAME.hdr inside the zip",
                             got=[m.filename for m in zf.infolist()][:6])
        total = sum(m.file_size for m in members) / 1e6
        if total > limit_mb:
            raise InputError("upload too large", path=path.name, expected=f"at most {limit_mb:g} MB unpacked",
                             got=f"{total:.1f} MB")
        out = []
        for m in members:
            target = workdir / _safe_stem(Path(m.filename).name)
            with zf.open(m) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            out.append(target)
        return out


def prepare_input(files: Sequence[str | os.PathLike[str]] | None, workdir: str | os.PathLike[str], *,
                  limit_mb: float = MAX_UPLOAD_MB) -> Prepared:
    """Turn an upload into a fastMRI volume in ``workdir``; no upload = the shipped scan.

    Checked first: total size, file types, a .cfl with its .hdr. Bad data raises
    :class:`~mrizoo.errors.InputError` with the converter's or reader's message.
    """
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    paths = [Path(os.fspath(f)) for f in (files or []) if f]
    if not paths:
        path = demo_scan_path()
        return Prepared(path, path.name)
    size = _size_mb(paths)
    if size > limit_mb:
        raise InputError("upload too large", path=", ".join(p.name for p in paths),
                         expected=f"at most {limit_mb:g} MB", got=f"{size:.1f} MB")
    suffixes = {p.suffix.lower() for p in paths}
    if len(paths) == 1 and suffixes == {".zip"}:
        paths = _unzip(paths[0], work, limit_mb)
        suffixes = {p.suffix.lower() for p in paths}
    if suffixes <= {".cfl", ".hdr"}:
        stems = {p.stem for p in paths}
        if suffixes != {".cfl", ".hdr"} or len(paths) != 2 or len(stems) != 1:
            raise InputError("a BART array needs its .cfl and .hdr together", path=", ".join(p.name for p in paths),
                             expected="NAME.cfl and NAME.hdr (or a zip of both)",
                             got=", ".join(sorted(p.name for p in paths)))
        stem = _safe_stem(stems.pop())
        for p in paths:
            if p.parent != work or p.name != stem + p.suffix.lower():
                shutil.copyfile(p, work / (stem + p.suffix.lower()))
        dest = work / f"{stem}.h5"
        convert_bart(work / stem, dest, overwrite=True)
        return Prepared(dest, f"{stem}.h5", [f"mrizoo convert bart {stem}.cfl {stem}.h5"])
    if len(paths) != 1:
        raise InputError("upload one scan at a time", path=", ".join(p.name for p in paths),
                         expected=f"one file of {_SUFFIXES}", got=f"{len(paths)} files")
    src = paths[0]
    suffix = src.suffix.lower()
    stem = _safe_stem(src.stem)
    if suffix in (".h5", ".hdf5"):
        dest = work / f"{stem}.h5"
        if src.resolve() != dest.resolve():
            shutil.copyfile(src, dest)
        try:
            with FastMRIVolume(dest) as vol:
                vol.sampling_info()
        except InputError as err:
            raise InputError(err.problem, path=src.name, field=err.field, expected=err.expected, got=err.got) from None
        except OSError:
            raise InputError("not an HDF5 file", path=src.name,
                             expected="a fastMRI .h5 volume ('kspace' [slices, coils, H, W])") from None
        return Prepared(dest, f"{stem}.h5")
    if suffix == ".dat":
        dest = work / f"{stem}.h5"
        convert_twix(src, dest, overwrite=True)
        return Prepared(dest, f"{stem}.h5", [f"mrizoo convert twix {shlex.quote(src.name)} {stem}.h5"])
    if suffix == ".npy":
        return _prepare_npy(src, work, stem)
    raise InputError("unsupported file type", path=src.name, expected=_SUFFIXES, got=suffix or "no suffix")


def _prepare_npy(src: Path, work: Path, stem: str) -> Prepared:
    """A .npy k-space array ``[coils, H, W]`` or ``[slices, coils, H, W]``, converted by the array converter."""
    try:
        arr = np.load(src, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise InputError(f"not a readable .npy array ({err})", path=src.name,
                         expected="a complex k-space array saved by numpy.save") from None
    axes = {3: "cxy", 4: "scxy"}.get(arr.ndim)
    if axes is None or not np.iscomplexobj(arr):
        raise InputError("a .npy upload must be complex multi-coil k-space", path=src.name, field="array",
                         expected="complex [coils, H, W] or [slices, coils, H, W]",
                         got=f"{arr.dtype} {tuple(arr.shape)}")
    local = work / f"{stem}.npy"
    if src.resolve() != local.resolve():
        shutil.copyfile(src, local)
    out_dir = work / f"{stem}-converted"
    result = convert_array(local, out_dir, axes=axes, overwrite=True)
    if result.failures or not result.outcomes:
        why = result.failures[0] if result.failures else "nothing written"
        raise InputError(f"could not convert the array ({why})", path=src.name,
                         expected="complex [coils, H, W] or [slices, coils, H, W] k-space")
    dest = work / f"{stem}.h5"
    shutil.move(str(result.outcomes[0].path), dest)
    return Prepared(dest, f"{stem}.h5",
                    [f"mrizoo convert array {shlex.quote(src.name)} OUT --axes {axes}  # writes OUT/{stem}.h5"])


# --------------------------------------------------------------------------- models
def _tag(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def _command(name: str, scan: str, out: str, *, retrospective: bool, mask: str, acceleration: float,
             samples: int | None, seed: int, adapt_steps: int | None = None) -> str:
    parts = ["mrizoo", "reconstruct", name, scan, out]
    if retrospective:
        parts += ["--mask", mask, "--acceleration", f"{acceleration:g}"]
    if samples is not None:
        parts += ["--samples", str(samples), "--seed", str(seed)]
    if adapt_steps is not None:
        parts += ["--adapt", "--adapt-steps", str(adapt_steps)]
    return " ".join(shlex.quote(p) for p in parts)


def _can_adapt(net: torch.nn.Module) -> bool:
    """Whether test-time adaptation applies to ``net`` (learned VarNet, MoDL, U-Net, ViT, rcGAN)."""
    try:
        family_of(net)
    except InputError:
        return False
    return True


def run_models(prepared: Prepared, models: Sequence[str], workdir: str | os.PathLike[str], *,
               mask: str = "equispaced_fraction", acceleration: float = 4.0, samples: int = 8, seed: int = 0,
               slice_index: int | None = None, device: str = "cpu", adapt_steps: int | None = None,
               progress: Callable[[float, str], None] | None = None) -> AppResult:
    """Reconstruct ``prepared`` with every model, write .h5 + NIfTI outputs, score and draw one slice.

    ``adapt_steps``: test-time adaptation (at most that many steps per slice) of every model that can
    adapt; the others run as they are, and a note says so.
    """
    names = list(dict.fromkeys(str(m).strip() for m in models if str(m).strip()))
    if not names:
        raise InputError("choose at least one model", field="models", expected="one or more zoo names")
    if mask not in list_masks():
        raise InputError("unknown mask", field="mask", expected=f"one of {list_masks()}", got=repr(mask))
    check_acceleration(acceleration)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise InputError("posterior models need at least 2 samples", field="samples", expected=">= 2", got=samples)
    if adapt_steps is not None and (isinstance(adapt_steps, bool) or not isinstance(adapt_steps, int)
                                    or adapt_steps < 1):
        raise InputError("adaptation steps must be a positive integer", field="adapt_steps", expected="int >= 1",
                         got=repr(adapt_steps))
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda frac, text: None)
    dev = torch.device(device)

    with FastMRIVolume(prepared.path) as vol:
        n = vol.num_slices
        index = n // 2 if slice_index is None else int(slice_index)
        if not 0 <= index < n:
            raise InputError("slice index out of range", path=prepared.label, field="slice",
                             expected=f"0..{n - 1}", got=slice_index)
        info = vol.sampling_info()
        ref, why = slice_reference(vol, index, info)
    retrospective = bool(info.fully_sampled)
    result = AppResult(source=prepared.label, commands=list(prepared.commands))
    if why:  # named by the upload's name, not the session folder
        result.notes.append(why.replace(str(prepared.path), prepared.label))

    nets = []
    for i, name in enumerate(names):  # every name resolved before anything runs
        report(0.02 + 0.08 * i / len(names), f"loading {name}")
        nets.append(resolve_model(name, dev))
    images: dict[str, torch.Tensor] = {}
    stds: dict[str, torch.Tensor] = {}
    for i, (name, net) in enumerate(zip(names, nets)):
        report(0.1 + 0.85 * i / len(names), f"reconstructing with {name} ({i + 1}/{len(names)})")
        posterior = bool(getattr(net, "is_posterior", False))
        steps = adapt_steps if adapt_steps is not None and _can_adapt(net) else None
        if adapt_steps is not None and steps is None:
            result.notes.append(f"{name} cannot be adapted at test time: run as it is")
        out = work / f"{_tag(name)}.h5"
        nii = work / f"{_tag(name)}.nii.gz"
        t0 = time.perf_counter()
        reconstruct_file(net, prepared.path, out, mask=mask if retrospective else None,
                         acceleration=acceleration if retrospective else None,
                         samples=samples if posterior else None, seed=seed, device=dev, overwrite=True,
                         progress=False, **({"adapt": True, "adapt_steps": steps} if steps is not None else {}))
        result.seconds[name] = time.perf_counter() - t0
        export_nifti(out, nii, overwrite=True)
        result.downloads += [out, nii]
        result.commands.append(_command(name, prepared.label, out.name, retrospective=retrospective, mask=mask,
                                        acceleration=acceleration, samples=samples if posterior else None,
                                        seed=seed, adapt_steps=steps))
        result.commands.append(f"mrizoo export {out.name} {nii.name}")
        with h5py.File(out, "r") as f:
            images[name] = torch.from_numpy(f["reconstruction"][index])
            if "std" in f:
                stds[name] = torch.from_numpy(f["std"][index])

    report(0.96, "scoring and drawing")
    captions: dict[str, str] = {}
    metrics: dict[str, dict[str, float]] = {}
    target = None
    if ref is not None:
        h, w = next(iter(images.values())).shape[-2:]
        hw = metric_region(tuple(ref.image.shape), (h, w))
        for name, image in images.items():
            metrics[name] = score(ref.image, image, maxval=ref.maxval)
            captions[name] = caption(metrics[name])
        target = center_crop(ref.image, hw)
        images = {k: center_crop(v, hw) for k, v in images.items()}
        stds = {k: center_crop(v, hw) for k, v in stds.items()}
    heat = {f"{k} std": v for k, v in stds.items()}
    for key, std in heat.items():
        captions[key] = f"posterior std, P = {samples}"
    for name in names:
        m = metrics.get(name, {})
        result.rows.append([name, *(round(m[k], 4) if k in m else None for k in ("ssim", "psnr", "nmse")),
                            round(result.seconds[name], 2),
                            round(float(stds[name].mean()), 4) if name in stds else None])
    panels = ({"reference": target} if target is not None else {}) | images
    how = "retrospective" if retrospective else "measured"
    result.figure = save_panels(
        work / "comparison.png", panels, reference="reference" if target is not None else None,
        captions=captions, heatmaps=heat,
        suptitle=f"{prepared.label} slice {index}: {how} mask"
                 + (" (reference: fully sampled RSS)" if target is not None else " (no fully sampled reference)"))
    report(1.0, "done")
    return result
