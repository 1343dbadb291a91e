"""Which volumes a mini-pool build writes: one job per (source, view, slab, contrast).

A slab is ``slices_per_volume`` slices at an even stride (1-3 mm) inside the central 80 % of
the anatomy along the view's axis. Colin27 and the MNI average hold out their last slabs as
validation (``val_fraction``); the Colin renderings (``ch2bet``, ``ch2better``, the same
subject in the same space) train only on slabs at least 5 mm away from Colin's validation
slabs, so no validation anatomy is ever trained on. Sagittal slices are never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrizoo.pools.minipool_sources import extent, find_sources, load_volume, source, view_axis

__all__ = ["Job", "plan_jobs"]

_SIM = (("vendor", "simulated"), ("scanner", "loop-array"))
_GUARD_MM = 5.0


@dataclass(frozen=True)
class Job:
    """One volume to write."""

    relpath: str
    kind: str  # "template", "real_brain", "real_knee"
    source: str  # path of the source file
    view: str
    contrast: str
    slices: tuple[int, ...]
    attrs: tuple[tuple[str, Any], ...]


def _slabs(lo: int, hi: int, spacing: float, volumes: int, per_volume: int) -> list[tuple[int, ...]]:
    """``volumes`` slabs of ``per_volume`` evenly strided slices spread over the central 80 % of [lo, hi]."""
    span_lo = lo + 0.1 * (hi - lo)
    span = max(1.0, 0.8 * (hi - lo))
    chunk = span / volumes
    step = max(1, min(int(round(3.0 / spacing)), int(chunk // per_volume)))
    out = []
    for v in range(volumes):
        start = int(round(span_lo + v * chunk + (chunk - step * (per_volume - 1)) / 2))
        out.append(tuple(min(hi, max(lo, start + step * s)) for s in range(per_volume)))
    return out


def _n_val(volumes: int, fraction: float) -> int:
    return 0 if volumes < 2 or fraction <= 0 else max(1, min(volumes - 1, int(round(fraction * volumes))))


def _attrs(dataset: str, key: str, view: str, contrast: str, split: str) -> tuple[tuple[str, Any], ...]:
    src = source(key)
    return (("dataset", dataset), ("anatomy", src.anatomy), ("view", view), ("contrast", contrast),
            ("split", split), *_SIM, ("patient_id", key), ("minipool_source", src.description))


def plan_jobs(cfg: Any, templates: Path, realdata: Path | None) -> tuple[list[Job], list[str]]:
    """Every job of a build with config ``cfg`` (:class:`~mrizoo.pools.minipool.MiniPoolConfig`) and notes."""
    found, notes = find_sources(templates)
    if cfg.sources:
        found = {k: v for k, v in found.items() if k in set(cfg.sources) | {"colin"}}
        notes = [n for n in notes if n.split(" ", 1)[0] in set(cfg.sources)]
    jobs: list[Job] = []
    t1 = cfg.contrasts

    def add(dataset: str, key: str, view: str, slabs: list[tuple[int, ...]], splits: list[str],
            contrasts: tuple[str, ...], tag: str) -> None:
        for v, (slab, split) in enumerate(zip(slabs, splits)):
            for contrast in contrasts:
                name = f"{tag}_{view}_{contrast.lower()}_{v:02d}.h5"
                jobs.append(Job(f"{dataset}/{name}", "template", str(found[key]), view, contrast, slab,
                                _attrs(dataset, key, view, contrast, split)))

    # Colin27: axial and coronal train + val; sagittal is a test view
    colin_vol, colin_level = load_volume(str(found["colin"]))
    guard: dict[str, tuple[float, float]] = {}
    for view in ("axial", "coronal", "sagittal"):
        ax = view_axis(view)
        lo, hi = extent(colin_vol, colin_level, view)
        count = cfg.sagittal_volumes if view == "sagittal" else cfg.volumes_per_view
        slabs = _slabs(lo, hi, colin_vol.spacing[ax], count, cfg.slices_per_volume)
        n_val = 0 if view == "sagittal" else _n_val(len(slabs), cfg.val_fraction)
        splits = ["test" if view == "sagittal" else ("val" if v >= len(slabs) - n_val else "train")
                  for v in range(len(slabs))]
        held = [i for slab, sp in zip(slabs, splits) if sp == "val" for i in slab]
        if held:
            pos = colin_vol.coords[ax][held]
            guard[view] = (float(pos.min()) - _GUARD_MM, float(pos.max()) + _GUARD_MM)
        add(f"mini_colin_{view}", "colin", view, slabs, splits, t1, "colin")

    # Colin renderings: train only, outside Colin's validation zone
    for key in ("colin_bet", "colin_better"):
        if key not in found:
            continue
        vol, level = load_volume(str(found[key]))
        for view in ("axial", "coronal"):
            ax = view_axis(view)
            lo, hi = extent(vol, level, view)
            slabs = _slabs(lo, hi, vol.spacing[ax], cfg.variant_volumes_per_view, cfg.slices_per_volume)
            zone = guard.get(view)
            if zone is not None:
                slabs = [s for s in slabs
                         if not any(zone[0] <= vol.coords[ax][i] <= zone[1] for i in s)]
            add("mini_colin_variants", key, view, slabs, ["train"] * len(slabs), t1, key)

    # MNI ICBM152 average: train + val
    if "mni152" in found:
        vol, level = load_volume(str(found["mni152"]))
        for view in ("axial", "coronal"):
            ax = view_axis(view)
            lo, hi = extent(vol, level, view)
            slabs = _slabs(lo, hi, vol.spacing[ax], cfg.volumes_per_view, cfg.slices_per_volume)
            n_val = _n_val(len(slabs), cfg.val_fraction)
            add("mini_mni152", "mni152", view, slabs,
                ["val" if v >= len(slabs) - n_val else "train" for v in range(len(slabs))], t1, "mni152")

    # real EPI brains (T2-weighted): train, every axial slice, one acquisition per contrast slot
    for key in ("dipy_b0", "nibabel_epi"):
        if key not in found:
            continue
        vol, level = load_volume(str(found[key]))
        lo, hi = extent(vol, level, "axial")
        n = hi - lo + 1
        per = min(cfg.slices_per_volume, n)
        slabs = [tuple(range(s, s + per)) for s in range(lo, hi - per + 2, per)]
        for r in range(len(t1)):  # as many acquisitions as a T1 slab has contrasts
            add("mini_epi", key, "axial", slabs, ["train"] * len(slabs), ("T2",), f"{key}_r{r}")

    # macaque: a test anatomy, every view
    if "macaque" in found:
        vol, level = load_volume(str(found["macaque"]))
        for view in ("axial", "coronal", "sagittal"):
            ax = view_axis(view)
            lo, hi = extent(vol, level, view)
            slabs = _slabs(lo, hi, vol.spacing[ax], cfg.macaque_volumes_per_view, cfg.slices_per_volume)
            add("mini_macaque", "macaque", view, slabs, ["test"] * len(slabs), t1, "macaque")

    if realdata is None:
        notes.append("no real-data folder (--realdata or $MRIZOO_REALDATA): real brain and knee left out")
        return _dedupe(jobs), notes
    brain, knee = realdata / "brain_t1_8ch_full", realdata / "knee_image_1map"
    if brain.with_suffix(".cfl").is_file():
        jobs.append(Job("mini_brain_real/brain_t1_8ch.h5", "real_brain", str(brain), "axial", "T1", (0,),
                        (("dataset", "mini_brain_real"), ("anatomy", "brain"), ("view", "axial"),
                         ("contrast", "T1"), ("split", "test"), ("patient_id", "espirit_brain"))))
    else:
        notes.append(f"{brain}.cfl not found: mini_brain_real left out")
    if knee.with_suffix(".cfl").is_file():
        jobs.append(Job("mini_knee_real/knee_1map.h5", "real_knee", str(knee), "", "", (0,),
                        (("dataset", "mini_knee_real"), ("anatomy", "knee"), ("split", "test"), *_SIM,
                         ("patient_id", "espirit_knee"))))
    else:
        notes.append(f"{knee}.cfl not found: mini_knee_real left out")
    return _dedupe(jobs), notes


def _dedupe(jobs: list[Job]) -> list[Job]:
    seen: set[str] = set()
    out = []
    for j in jobs:
        if j.relpath not in seen:
            seen.add(j.relpath)
            out.append(j)
    return out
