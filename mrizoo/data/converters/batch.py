"""Resumable, parallel conversion of a folder of source files into fastMRI volumes.

Every output volume is written atomically (temporary file, then rename) and stamped with a
fingerprint of the settings that made it (attribute ``mrizoo_conversion``). Its sampling is
read from the converted k-space (:func:`~mrizoo.masks.sampling.detect_sampling`); only fully
sampled volumes get the ``reconstruction_rss`` target. A re-run skips outputs that open, hold
consistent datasets and carry the same fingerprint; it replaces unreadable or partial files and removes temporary files a
killed run left behind. Source files are converted in parallel by a process pool.
"""

from __future__ import annotations

import fnmatch
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from mrizoo._dataclass_io import to_dict
from mrizoo.data.converters.headers import HeaderInfo, output_header, read_header_info
from mrizoo.data.converters.pipeline import (
    combine_averages,
    cut_view,
    drop_roundoff,
    roll_kspace,
    split_echoes,
    to_kspace_and_target,
    view_support,
)
from mrizoo.data.converters.readers import SourceVolume, echo_labels, read_source
from mrizoo.data.converters.spec import ConversionSpec, ViewGeometry
from mrizoo.data.writer import check_not_source, write_volume
from mrizoo.errors import InputError
from mrizoo.masks.sampling import detect_sampling

__all__ = [
    "BatchResult",
    "ConversionFailedError",
    "OutputView",
    "VolumeOutcome",
    "convert_folder",
    "find_sources",
    "output_state",
    "print_progress",
]

FINGERPRINT_ATTR = "mrizoo_conversion"
_VERSION = 2  # 2: sampling read from the data; targets only for fully sampled volumes


@dataclass(frozen=True)
class OutputView:
    """A named view to write (``axial``, ``coronal``, ...) and how it is cut."""

    name: str
    geometry: ViewGeometry = field(default_factory=ViewGeometry)
    attrs: dict[str, Any] = field(default_factory=dict)  # extra file attributes of this view's volumes


@dataclass(frozen=True)
class VolumeOutcome:
    """One output volume: written now, replaced (was partial or unreadable) or skipped (complete)."""

    path: Path
    status: Literal["written", "replaced", "skipped"]
    source: Path
    view: str
    echo: int | None = None
    slices: int | None = None
    pid: int = field(default_factory=os.getpid)  # the process that handled it
    sampling: str | None = None  # what the volume measured (SamplingInfo.describe()), when written now


@dataclass
class BatchResult:
    """What a folder conversion did."""

    dest: Path
    outcomes: list[VolumeOutcome] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def summary(self) -> str:
        parts = [f"{self.count('written')} written", f"{self.count('replaced')} replaced (were incomplete)",
                 f"{self.count('skipped')} already complete"]
        text = f"{self.dest}: {len(self.outcomes)} volumes ({', '.join(parts)})"
        if self.failures:
            text += f"; {len(self.failures)} source files failed"
        return text


class ConversionFailedError(InputError):
    """Some source files could not be converted; the others were. ``result`` holds both."""

    def __init__(self, result: BatchResult) -> None:
        self.result = result
        lines = [f"{src}: {msg}" for src, msg in result.failures[:10]]
        more = f" (and {len(result.failures) - 10} more)" if len(result.failures) > 10 else ""
        super().__init__(
            f"{len(result.failures)} source file(s) failed{more}; the other outputs are complete and a re-run "
            f"converts only what is missing:\n  " + "\n  ".join(lines),
            path=result.dest,
        )


# ----------------------------------------------------------------------------- planning
def find_sources(
    source: str | os.PathLike[str],
    spec: ConversionSpec,
    *,
    exclude_dir: str | os.PathLike[str] | None = None,
    suffixes: Sequence[str] | None = None,
) -> tuple[Path, list[Path]]:
    """``(root, files)``: the file itself, or the files under a folder matching ``spec.files``
    (and, when given, ending in one of ``suffixes``)."""
    src = Path(source).expanduser()
    if src.is_file():
        return src.parent, [src]
    if not src.is_dir():
        raise InputError("source not found", path=src, expected="a source file or a folder of them")
    skip = Path(exclude_dir).resolve() if exclude_dir is not None else None
    files = []
    for p in sorted(src.glob(spec.files)):
        if not p.is_file() or p.name.startswith("."):
            continue
        if suffixes is not None and p.suffix.lower() not in suffixes:
            continue
        rel = p.relative_to(src).as_posix()
        if any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(p.name, pat) for pat in spec.exclude):
            continue
        if skip is not None and skip in p.resolve().parents:
            continue
        files.append(p)
    if not files:
        raise InputError("no source files found", path=src,
                         expected=f"files matching {spec.files!r}"
                         + (f" other than {list(spec.exclude)}" if spec.exclude else ""))
    return src, files


def fingerprint(spec: ConversionSpec, view: OutputView, dataset: str | None, echo: int | None) -> str:
    """The settings that determine an output's content, as canonical JSON."""
    settings = {k: v for k, v in to_dict(spec).items() if k not in ("files", "exclude")}
    doc = {"version": _VERSION, "dataset": dataset, "view": view.name, "geometry": to_dict(view.geometry),
           "attrs": to_dict(view.attrs), "spec": settings, "echo": echo}
    return json.dumps(doc, sort_keys=True)


def output_state(path: Path, expected: str) -> Literal["missing", "complete", "incomplete", "different"]:
    """Whether an output exists, is complete with the expected fingerprint, partial, or foreign."""
    if not path.exists():
        return "missing"
    try:
        with h5py.File(path, "r") as f:
            ks, target = f.get("kspace"), f.get("reconstruction_rss")
            if not isinstance(ks, h5py.Dataset) or ks.ndim != 4 or ks.shape[0] < 1 or "ismrmrd_header" not in f:
                return "incomplete"
            sampling = f.attrs.get("sampling")
            if isinstance(sampling, bytes):
                sampling = sampling.decode("utf-8", "replace")
            if sampling == "undersampled":
                if target is not None:
                    return "incomplete"
            elif not (isinstance(target, h5py.Dataset) and target.ndim == 3 and target.shape[0] == ks.shape[0]
                      and "max" in f.attrs):
                return "incomplete"
            stamp = f.attrs.get(FINGERPRINT_ATTR)
    except (OSError, KeyError, ValueError):
        return "incomplete"
    if isinstance(stamp, bytes):
        stamp = stamp.decode("utf-8", "replace")
    return "complete" if stamp == expected else "different"


@dataclass(frozen=True)
class _Job:
    source: Path
    label: str  # source path relative to the source root (stored as an attribute)
    outputs: tuple[tuple[OutputView, Path], ...]  # (view, output path without echo suffix)
    spec: ConversionSpec
    dataset: str | None
    meta: dict[str, str]
    overwrite: bool


def _echo_path(path: Path, echo: int | None) -> Path:
    return path if echo is None else path.with_name(f"{path.stem}_echo{echo}{path.suffix}")


def _crop(geometry: ViewGeometry, info: HeaderInfo | None, size: tuple[int, int]) -> tuple[int, int]:
    h, w = size
    if geometry.crop is not None:
        return min(geometry.crop[0], h), min(geometry.crop[1], w)
    if geometry.crop_to_header and info is not None and info.recon is not None:
        recon = dict(zip("xyz", info.recon))
        return min(recon.get(geometry.rows, h), h), min(recon.get(geometry.cols, w), w)
    return h, w


def _remove_stale_temporaries(path: Path) -> None:
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def _write(job: _Job, src: SourceVolume, view: OutputView, echo: int | None, vol: Any, path: Path,
           stamp: str, info: HeaderInfo | None) -> tuple[int, str]:
    g = view.geometry
    data, is_kspace = cut_view(vol, g, job.spec, path=job.source)
    crop = _crop(g, info, (data.shape[-2], data.shape[-1]))
    stored = src.target
    identity = (is_kspace and src.untouched and job.spec.scale == 1.0 and g.drop_first == 0 and g.drop_last == 0
                and (g.slice_axis, g.rows, g.cols) == ("s", "x", "y") and echo is None)
    if identity and stored is not None and stored.shape == (data.shape[0], *crop):
        kspace, target = np.ascontiguousarray(data), stored
    else:
        kspace, target = to_kspace_and_target(data, is_kspace, crop)
        if not is_kspace:  # image-space steps turned the source's exact zeros into round-off
            kspace = drop_roundoff(kspace, view_support(vol, g, job.spec))
    sampling = detect_sampling(kspace, path=job.source)
    header = output_header(src.header, (kspace.shape[-2], kspace.shape[-1]), (target.shape[-2], target.shape[-1]),
                           meta=job.meta, path=job.source)
    attrs: dict[str, Any] = {**src.attrs, **job.spec.attrs}
    if "acquisition" not in attrs and job.meta.get("protocolName"):
        attrs["acquisition"] = job.meta["protocolName"]
    attrs.update({
        "source_file": job.label,
        "view": view.name,
        "scale": float(job.spec.scale),
        "dropped_slices": np.array([g.drop_first, g.drop_last], dtype=np.int64),
        FINGERPRINT_ATTR: stamp,
    })
    attrs.update(sampling.attrs())
    targets = None
    if sampling.fully_sampled:  # the RSS of undersampled data is not a reference image
        targets = {"reconstruction_rss": target}
        attrs.update({"max": float(target.max()), "norm": float(np.linalg.norm(target.astype(np.float64)))})
    attrs.update(view.attrs)
    if echo is not None:
        attrs["echo"] = int(echo)
    mask = None if bool(sampling.mask.all()) else sampling.stored_mask()
    _remove_stale_temporaries(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_volume(path, kspace=kspace, mask=mask, targets=targets, attrs=attrs, header=header, overwrite=True,
                 sources=(job.source,))
    return int(kspace.shape[0]), sampling.describe()


def _run_job(job: _Job) -> list[VolumeOutcome]:
    labels = echo_labels(job.source, job.spec)
    echoes: tuple[int | None, ...] = labels if labels else (None,)
    outcomes: list[VolumeOutcome] = []
    todo: dict[tuple[str, int | None], tuple[Path, str, str]] = {}
    for view, base in job.outputs:
        for echo in echoes:
            path = _echo_path(base, echo)
            stamp = fingerprint(job.spec, view, job.dataset, echo)
            if job.overwrite:
                todo[(view.name, echo)] = (path, stamp, "replaced" if path.exists() else "written")
                continue
            state = output_state(path, stamp)
            if state == "complete":
                outcomes.append(VolumeOutcome(path, "skipped", job.source, view.name, echo))
            elif state == "different":
                raise InputError(
                    "output exists but was written with other settings or by another program", path=path,
                    expected="--overwrite to replace it, or another destination folder",
                )
            else:
                todo[(view.name, echo)] = (path, stamp, "written" if state == "missing" else "replaced")
    if not todo:
        return outcomes
    src = read_source(job.source, job.spec)
    vol = combine_averages(src.volume, job.spec.averages, path=job.source)
    vol = roll_kspace(vol, dict(job.spec.kspace_roll), path=job.source)
    parts = split_echoes(vol, src.echo_labels)
    if tuple(label for label, _ in parts) != echoes:
        raise InputError("the echoes found in the data differ from those in its metadata", path=job.source,
                         expected=echoes, got=tuple(label for label, _ in parts))
    info = read_header_info(src.header, path=job.source) if src.header is not None else None
    for echo, part in parts:
        for view, _ in job.outputs:
            if (view.name, echo) not in todo:
                continue
            path, stamp, status = todo[(view.name, echo)]
            slices, sampling = _write(job, src, view, echo, part, path, stamp, info)
            outcomes.append(VolumeOutcome(path, status, job.source, view.name, echo, slices,  # type: ignore[arg-type]
                                          sampling=sampling))
    return outcomes


def _job_entry(job: _Job) -> tuple[list[VolumeOutcome], str | None]:
    try:
        return _run_job(job), None
    except (InputError, OSError, ValueError, MemoryError, KeyError, TypeError) as err:
        return [], str(err) or type(err).__name__


def _pool_context() -> multiprocessing.context.BaseContext:
    """Fresh worker processes (no inherited threads); with a fork server, this module is imported once."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def convert_folder(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    spec: ConversionSpec,
    views: Sequence[OutputView],
    *,
    dataset: str | None = None,
    meta: dict[str, str] | None = None,
    workers: int = 1,
    overwrite: bool = False,
    subfolders: bool | None = None,
    progress: Callable[[VolumeOutcome], None] | None = None,
    suffixes: Sequence[str] | None = None,
) -> BatchResult:
    """Convert a source file or every matching file under a folder into ``dest``.

    Output: ``dest/[view/]<relative folder>/<source stem>[_echoN].h5`` (one folder per view
    when ``subfolders``, the default for several views). ``workers`` > 1 converts source
    files in that many processes. Finished outputs are skipped unless ``overwrite``.
    Raises :class:`ConversionFailedError` after converting all it can when some files fail.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError("workers must be a positive integer", field="workers", got=workers)
    if not views:
        raise InputError("no view to write", field="views")
    names = [v.name for v in views]
    if len(set(names)) != len(names):
        raise InputError("view names must be unique", field="views", got=names)
    dest_dir = Path(dest).expanduser()
    if dest_dir.exists() and not dest_dir.is_dir():
        raise InputError("destination must be a folder", path=dest_dir)
    root, files = find_sources(source, spec, exclude_dir=dest_dir, suffixes=suffixes)
    dest_dir.mkdir(parents=True, exist_ok=True)
    split = len(views) > 1 if subfolders is None else subfolders

    jobs, seen = [], {}
    for f in files:
        rel = f.relative_to(root)
        outputs = []
        for view in views:
            base = dest_dir / (view.name if split else "") / rel.parent / f"{f.stem}.h5"
            if base in seen:
                raise InputError("two source files would write the same output", path=base,
                                 got=f"{seen[base]} and {f}")
            seen[base] = f
            check_not_source(base, [f])
            outputs.append((view, base))
        jobs.append(_Job(f, rel.as_posix(), tuple(outputs), spec, dataset, dict(meta or {}), overwrite))

    result = BatchResult(dest_dir)

    def collect(job: _Job, outcomes: list[VolumeOutcome], error: str | None) -> None:
        if error is not None:
            result.failures.append((job.source, error))
        for o in outcomes:
            result.outcomes.append(o)
            if progress is not None:
                progress(o)

    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            collect(job, *_job_entry(job))
    else:
        pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=_pool_context())
        try:
            futures = {pool.submit(_job_entry, job): job for job in jobs}
            for future in as_completed(futures):
                try:
                    outcomes, error = future.result()
                except BrokenProcessPool:  # a worker was killed (often: out of memory)
                    outcomes, error = [], "a worker process died while converting (out of memory?); retry with fewer --workers"
                collect(futures[future], outcomes, error)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    result.outcomes.sort(key=lambda o: str(o.path))
    if result.failures:
        raise ConversionFailedError(result)
    return result


def print_progress(outcome: VolumeOutcome) -> None:
    """Progress line on stderr for one output volume."""
    what = {"written": "wrote", "replaced": "rewrote", "skipped": "kept"}[outcome.status]
    details = [f"{outcome.slices} slices"] if outcome.slices is not None else []
    if outcome.sampling:
        details.append(outcome.sampling)
    extra = f" ({', '.join(details)})" if details else ""
    print(f"{what} {outcome.path}{extra}", file=sys.stderr)
