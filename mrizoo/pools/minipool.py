"""The demo mini-pool: a multi-distribution data root built offline from real anatomy.

Anatomy (see :mod:`mrizoo.pools.minipool_sources`): the Colin27 head and its two brain
renderings and the macaque of Debian's ``mricron-data``, the MNI ICBM152 average of
``nilearn``, the EPI brains of ``dipy`` and ``nibabel``; with a real-data folder also the
real 8-coil brain k-space and the real knee image. Every T1 slab is written in each contrast
of ``contrasts`` (default T1 and synthetic T2, PD, FLAIR), each file its own acquisition (see
:mod:`mrizoo.pools.coil_sim`): a scanner matrix drawn from ``shapes``, the anatomy filling
72-92 % of it (about 1 mm pixels) with a small random rotation, mirror and shift, a random
receive array of ``coils`` loops, smooth background phase and coil-correlated noise.

Datasets (the ``dataset`` attribute :func:`mrizoo.pools.build_slice_index` reads):
``mini_colin_axial`` / ``_coronal`` (train, and held-out val slabs), ``mini_colin_sagittal``
(test: a view never trained on), ``mini_colin_variants`` (train: ``ch2bet``/``ch2better``
axial and coronal slabs, never inside the Colin val slabs), ``mini_mni152`` (train and val
slabs), ``mini_epi`` (train: real T2-weighted EPI), ``mini_macaque`` (test: other anatomy),
``mini_brain_real`` and ``mini_knee_real`` (test: the real scans, never trained on).
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from mrizoo._atomic import atomic_file
from mrizoo.errors import InputError
from mrizoo.pools.minipool_plan import plan_jobs
from mrizoo.pools.minipool_sources import (
    CONTRASTS,
    SOURCES,
    default_templates_dir,
    read_nifti,
    template_slice,
)
from mrizoo.pools.minipool_write import run_job

__all__ = [
    "MANIFEST_NAME",
    "MINIPOOL_DATASETS",
    "MiniPoolConfig",
    "MiniPoolResult",
    "build_minipool",
    "default_templates_dir",
    "read_nifti",
    "template_slice",
]

MANIFEST_NAME = "mrizoo_minipool.json"
_REALDATA_ENV = "MRIZOO_REALDATA"
_COLIN = "ch2.nii.gz"
_INSTALL_HINT = "install Debian's templates: apt-get install -y mricron-data"

#: The ``dataset`` values written by :func:`build_minipool` (what the shipped ``mini`` pool selects).
MINIPOOL_DATASETS = ("mini_colin_axial", "mini_colin_coronal", "mini_colin_sagittal", "mini_colin_variants",
                     "mini_mni152", "mini_epi", "mini_macaque", "mini_brain_real", "mini_knee_real")


@dataclass(frozen=True)
class MiniPoolConfig:
    """Settings of a mini-pool build (stored in the data root's manifest).

    ``shapes``: scanner matrices (rows, columns) drawn per volume; ``coils``: the range of
    receive-coil counts (log-uniform; equal ends for a fixed count); ``background``: range of
    the RSS background level relative to bright tissue (the noise level; the real brain scan
    has about 0.03); ``volumes_per_view``: slabs per view of Colin27 and of the MNI average,
    ``variant_volumes_per_view`` of each Colin rendering, ``sagittal_volumes`` of the Colin
    sagittal test view; each slab is written once per contrast. ``sources`` restricts the anatomy
    (e.g. ``("colin",)`` for a quick build); empty uses every source installed.
    """

    shapes: tuple[tuple[int, int], ...] = ((192, 160), (208, 176), (224, 176), (240, 192))
    coils: tuple[int, int] = (4, 32)
    slices_per_volume: int = 6
    volumes_per_view: int = 24
    variant_volumes_per_view: int = 16
    sagittal_volumes: int = 4
    macaque_volumes_per_view: int = 1
    contrasts: tuple[str, ...] = CONTRASTS
    background: tuple[float, float] = (0.015, 0.06)
    val_fraction: float = 0.15
    seed: int = 0
    sources: tuple[str, ...] = ()  # anatomy sources to use (keys of SOURCES; Colin27 always); empty: all found

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first bad field."""
        for name in ("slices_per_volume", "volumes_per_view", "variant_volumes_per_view", "sagittal_volumes",
                     "macaque_volumes_per_view"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError("must be a positive whole number", field=name, got=repr(value))
        if not self.shapes or any(len(s) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 16 for v in s)
                                  for s in self.shapes):
            raise InputError("matrix sizes must be (rows, columns) pairs of whole numbers >= 16", field="shapes",
                             got=repr(self.shapes))
        lo, hi = self.coils if len(self.coils) == 2 else (0, -1)
        if any(isinstance(v, bool) or not isinstance(v, int) for v in self.coils) or not 1 <= lo <= hi <= 64:
            raise InputError("coil counts must be a range lo <= hi within 1..64", field="coils", got=repr(self.coils))
        if not self.contrasts or any(c not in CONTRASTS for c in self.contrasts):
            raise InputError("unknown contrast", field="contrasts", expected=list(CONTRASTS), got=repr(self.contrasts))
        b = self.background
        numbers = len(b) == 2 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in b)
        if not numbers or not 0 < b[0] <= b[1] < 1:
            raise InputError("noise background must be a range 0 < lo <= hi < 1", field="background", got=repr(b))
        if not 0.0 <= self.val_fraction < 1.0:
            raise InputError("must lie in [0, 1)", field="val_fraction", got=self.val_fraction)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError("must be a whole number", field="seed", got=repr(self.seed))
        known = [src.key for src in SOURCES]
        if isinstance(self.sources, str) or any(key not in known for key in self.sources):
            raise InputError("unknown anatomy source", field="sources", expected=known, got=repr(self.sources))


@dataclass
class MiniPoolResult:
    """What a build wrote: the data root, volumes written and skipped, and notes."""

    root: Path
    written: list[str]
    skipped: list[str]
    notes: list[str]
    seconds: float


def _realdata_dir(realdata: str | os.PathLike[str] | None) -> Path | None:
    if realdata is None:
        env = os.environ.get(_REALDATA_ENV)
        if not env:
            return None
        realdata = env
    path = Path(realdata).expanduser()
    if not path.is_dir():
        raise InputError("real-data folder not found", path=path, field="realdata")
    return path


def build_minipool(
    dest: str | os.PathLike[str],
    config: MiniPoolConfig | None = None,
    *,
    templates: str | os.PathLike[str] | None = None,
    realdata: str | os.PathLike[str] | None = None,
    workers: int = 1,
) -> MiniPoolResult:
    """Build (or complete) the mini-pool data root ``dest``; deterministic given the config.

    ``templates``: folder of the mricron templates (default ``$MRIZOO_MRICRON_TEMPLATES`` or
    ``/usr/share/mricron/templates``). ``realdata``: folder with the real scans (default
    ``$MRIZOO_REALDATA``; without it the real sets are left out, which the result's notes say).
    Sources of packages not installed are left out with a note. Volumes are written atomically;
    existing ones are skipped, so an interrupted build resumes. A data root built with other
    settings is refused (its manifest differs).
    """
    start = time.perf_counter()
    cfg = config or MiniPoolConfig()
    cfg.validate()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError("must be a positive whole number", field="workers", got=repr(workers))
    tdir = Path(templates).expanduser() if templates is not None else default_templates_dir()
    if not (tdir / _COLIN).is_file():
        raise InputError(f"Colin27 template not found; {_INSTALL_HINT}", path=tdir / _COLIN,
                         expected=f"set $MRIZOO_MRICRON_TEMPLATES or --templates to a folder holding {_COLIN}")
    real = _realdata_dir(realdata)
    root = Path(dest).expanduser()
    settings = json.loads(json.dumps(asdict(cfg)))
    if not cfg.sources:  # roots built before the option existed stay valid
        del settings["sources"]
    manifest = root / MANIFEST_NAME
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8")).get("config")
        except (OSError, ValueError):
            old = None
        if old != settings:
            raise InputError("data root was built with other settings", path=manifest, field="config",
                             expected=settings, got=old)
    jobs, notes = plan_jobs(cfg, tdir, real)
    root.mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if not (root / j.relpath).is_file()]
    skipped = [j.relpath for j in jobs if (root / j.relpath).is_file()]

    with atomic_file(manifest) as tmp:
        tmp.write_text(json.dumps({"config": settings, "volumes": [j.relpath for j in jobs]}, indent=1),
                       encoding="utf-8")
    written: list[str] = []
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            written = list(pool.map(run_job, todo, [cfg] * len(todo), [str(root)] * len(todo), chunksize=4))
    else:
        written = [run_job(j, cfg, str(root)) for j in todo]
    return MiniPoolResult(root=root, written=written, skipped=skipped, notes=notes,
                          seconds=round(time.perf_counter() - start, 3))
