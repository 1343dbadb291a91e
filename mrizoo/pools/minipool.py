"""The demo mini-pool: a small multi-distribution data root built offline from real anatomy.

Sources: Debian's ``mricron-data`` templates (Colin27 T1 head ``ch2.nii.gz``, macaque brain
``inia19-t1-brain.nii.gz``) and, when a real-data folder is given, the real 8-coil brain
k-space (``brain_t1_8ch_full``) and the real knee image (``knee_image_1map``). Colin27 is
sliced in three views, each its own dataset (``mini_colin_axial`` / ``_coronal`` /
``_sagittal``), with two contrasts: ``T1`` (the template) and ``T2`` (an inverted intensity
mapping inside the head). Each slice is resized to ``size x size`` and turned into
multi-coil k-space with a smooth random phase, birdcage coil maps and Gaussian noise. Files
are fastMRI-convention volumes whose attributes (dataset, anatomy, view, contrast, split, ...)
are what :func:`mrizoo.pools.build_slice_index` reads; the shipped pool ``mini`` trains on
Colin axial + coronal and tests on the sagittal view, the macaque and the real scans.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import struct
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrizoo.errors import InputError

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
_TEMPLATES_ENV = "MRIZOO_MRICRON_TEMPLATES"
_REALDATA_ENV = "MRIZOO_REALDATA"
_COLIN = "ch2.nii.gz"
_MACAQUE = "inia19-t1-brain.nii.gz"
_VIEWS = ("axial", "coronal", "sagittal")
_CONTRASTS = ("T1", "T2")
_NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4"}
_INSTALL_HINT = "install Debian's templates: apt-get install -y mricron-data"


# ----------------------------------------------------------------------------- NIfTI reading
def _affine(header: bytes, e: str) -> np.ndarray:
    """3x3 voxel-to-world matrix: sform when set, else qform, else the voxel sizes."""
    qform_code, sform_code = struct.unpack(e + "2h", header[252:256])
    pix = struct.unpack(e + "8f", header[76:108])
    if sform_code > 0:
        return np.array(struct.unpack(e + "12f", header[280:328]), dtype=np.float64).reshape(3, 4)[:, :3]
    if qform_code > 0:
        b, c, d = struct.unpack(e + "3f", header[256:268])
        a = math.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
        rot = np.array([
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - b * b - c * c],
        ])
        qfac = -1.0 if pix[0] < 0 else 1.0
        return rot * np.array([pix[1], pix[2], pix[3] * qfac])
    return np.diag([abs(pix[1]) or 1.0, abs(pix[2]) or 1.0, abs(pix[3]) or 1.0])


def read_nifti(path: str | os.PathLike[str]) -> np.ndarray:
    """A 3D NIfTI-1 volume (``.nii`` or ``.nii.gz``) as float32, reoriented to RAS axes.

    Axis 0 runs left to right, axis 1 posterior to anterior, axis 2 inferior to superior
    (the nearest axis permutation and flips of the header's sform/qform; no resampling).
    """
    path = Path(path)
    try:
        raw = gzip.open(path).read() if path.name.endswith(".gz") else path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read NIfTI file ({err})", path=path) from None
    if len(raw) < 348:
        raise InputError("too short for a NIfTI-1 header", path=path)
    e = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    if struct.unpack(e + "i", raw[:4])[0] != 348 or raw[344:347] not in (b"n+1", b"ni1"):
        raise InputError("not a NIfTI-1 file", path=path, expected="sizeof_hdr 348 and magic 'n+1'")
    dim = struct.unpack(e + "8h", raw[40:56])
    if dim[0] < 3 or any(d > 1 for d in dim[4:1 + dim[0]]):
        raise InputError("not a single 3D volume", path=path, got=f"dims {dim[1:1 + dim[0]]}")
    (datatype,) = struct.unpack(e + "h", raw[70:72])
    if datatype not in _NIFTI_DTYPES:
        raise InputError("unsupported NIfTI data type", path=path, field="datatype",
                         expected=f"one of {sorted(_NIFTI_DTYPES)}", got=datatype)
    (vox_offset,) = struct.unpack(e + "f", raw[108:112])
    slope, inter = struct.unpack(e + "2f", raw[112:120])
    shape = tuple(int(d) for d in dim[1:4])
    count = int(np.prod(shape))
    dtype = np.dtype(e + _NIFTI_DTYPES[datatype])
    start = int(vox_offset)
    if start + count * dtype.itemsize > len(raw):
        raise InputError("file is truncated", path=path, expected=f"{count} voxels after byte {start}")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=start).reshape(shape, order="F")
    data = data.astype(np.float32)
    if slope not in (0.0, 1.0) and math.isfinite(slope):
        data = data * np.float32(slope)
    if inter != 0.0 and math.isfinite(inter):
        data = data + np.float32(inter)
    mat = _affine(raw[:348], e)
    world_axis = np.argmax(np.abs(mat), axis=0)  # which world axis each voxel axis follows
    if sorted(world_axis.tolist()) != [0, 1, 2]:
        raise InputError("oblique orientation not supported", path=path, got=mat.round(3).tolist())
    order = np.argsort(world_axis)
    data = np.transpose(data, order)
    for ax in range(3):
        if mat[ax, order[ax]] < 0:
            data = np.flip(data, axis=ax)
    return np.ascontiguousarray(data)


def default_templates_dir() -> Path:
    """``$MRIZOO_MRICRON_TEMPLATES``, else where ``mricron-data`` installs them."""
    env = os.environ.get(_TEMPLATES_ENV)
    return Path(env).expanduser() if env else Path("/usr/share/mricron/templates")


@lru_cache(maxsize=4)
def _template(path: str) -> tuple[np.ndarray, float]:
    """RAS volume cropped to the head's bounding box (+4 voxels), and its 99.5th-percentile level."""
    vol = read_nifti(path)
    level = float(np.percentile(vol[vol > 0], 99.5)) if np.any(vol > 0) else 1.0
    fg = vol > 0.05 * level
    if not fg.any():
        raise InputError("template is empty", path=path)
    lo = [max(0, int(np.flatnonzero(fg.any(axis=tuple(a for a in range(3) if a != ax)))[0]) - 4) for ax in range(3)]
    hi = [int(np.flatnonzero(fg.any(axis=tuple(a for a in range(3) if a != ax)))[-1]) + 5 for ax in range(3)]
    box = vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    return np.ascontiguousarray(box), level


def template_slice(volume: np.ndarray, view: str, index: int) -> np.ndarray:
    """A radiological-style 2D slice of a RAS volume.

    ``axial``: rows anterior (top) to posterior, columns right to left of the subject;
    ``coronal``: rows superior (top) to inferior, columns right to left; ``sagittal``: rows
    superior to inferior, columns anterior to posterior.
    """
    if view == "axial":
        return volume[::-1, ::-1, index].T
    if view == "coronal":
        return volume[::-1, index, ::-1].T
    if view == "sagittal":
        return volume[index, ::-1, ::-1].T
    raise InputError("unknown view", field="view", expected=list(_VIEWS), got=repr(view))


# ----------------------------------------------------------------------------- config and plan
@dataclass(frozen=True)
class MiniPoolConfig:
    """Settings of a mini-pool build (stored in the data root's manifest)."""

    size: int = 128
    coils: int = 8
    slices_per_volume: int = 8
    volumes_per_view: int = 4
    macaque_volumes_per_view: int = 1
    snr_db: float = 30.0
    phase_strength: float = math.pi / 2
    val_fraction: float = 0.15
    seed: int = 0
    random_coils: bool = False  # each volume its own coil array (rotation, radius), not one fixed array

    def validate(self) -> None:
        for name in ("size", "coils", "slices_per_volume", "volumes_per_view", "macaque_volumes_per_view"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError("must be a positive whole number", field=name, got=repr(value))
        if self.size < 16:
            raise InputError("image size too small", field="size", expected=">= 16", got=self.size)
        if not (isinstance(self.snr_db, (int, float)) and math.isfinite(self.snr_db)):
            raise InputError("must be a finite number of dB", field="snr_db", got=repr(self.snr_db))
        if not 0.0 <= self.val_fraction < 1.0:
            raise InputError("must lie in [0, 1)", field="val_fraction", got=self.val_fraction)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError("must be a whole number", field="seed", got=repr(self.seed))


#: The ``dataset`` values written by :func:`build_minipool` (what the shipped ``mini`` pool selects).
MINIPOOL_DATASETS = ("mini_colin_axial", "mini_colin_coronal", "mini_colin_sagittal", "mini_macaque",
                     "mini_brain_real", "mini_knee_real")

@dataclass(frozen=True)
class _Job:
    relpath: str
    kind: str  # "template", "real_brain", "real_knee"
    source: str
    view: str
    contrast: str
    slices: tuple[int, ...]
    attrs: tuple[tuple[str, Any], ...]


@dataclass
class MiniPoolResult:
    """What a build wrote: the data root, volumes written and skipped, and notes."""

    root: Path
    written: list[str]
    skipped: list[str]
    notes: list[str]
    seconds: float


def _view_axis(view: str) -> int:
    return {"sagittal": 0, "coronal": 1, "axial": 2}[view]


def _slabs(extent: int, volumes: int, per_volume: int) -> list[tuple[int, ...]]:
    """``volumes`` slabs of ``per_volume`` contiguous-stride slices spread over the central 70 %."""
    lo, hi = int(round(0.15 * extent)), int(round(0.85 * extent))
    span = max(1, hi - lo)
    chunk = span / volumes
    step = max(1, min(3, int(chunk // per_volume)))
    out = []
    for v in range(volumes):
        start = lo + int(round(v * chunk + (chunk - step * (per_volume - 1)) / 2))
        idx = [min(extent - 1, max(0, start + step * s)) for s in range(per_volume)]
        out.append(tuple(idx))
    return out


def _n_val(volumes: int, fraction: float) -> int:
    return 0 if volumes < 2 or fraction <= 0 else max(1, min(volumes - 1, int(round(fraction * volumes))))


def _plan(cfg: MiniPoolConfig, templates: Path, realdata: Path | None) -> tuple[list[_Job], list[str]]:
    notes: list[str] = []
    jobs: list[_Job] = []
    colin, macaque = templates / _COLIN, templates / _MACAQUE
    sim = (("vendor", "simulated"), ("scanner", "birdcage"))
    for view in _VIEWS:
        vol, _ = _template(str(colin))
        slabs = _slabs(vol.shape[_view_axis(view)], cfg.volumes_per_view, cfg.slices_per_volume)
        n_val = _n_val(len(slabs), cfg.val_fraction)
        for v, slab in enumerate(slabs):
            split = "val" if v >= len(slabs) - n_val else "train"
            if view == "sagittal":
                split = "test"
            for contrast in _CONTRASTS:
                jobs.append(_Job(
                    f"mini_colin_{view}/colin_{view}_{contrast.lower()}_{v:02d}.h5", "template", str(colin), view,
                    contrast, slab,
                    (("dataset", f"mini_colin_{view}"), ("anatomy", "brain"), ("view", view), ("contrast", contrast),
                     ("split", split), ("field_strength", 1.5), *sim, ("patient_id", "colin27")),
                ))
    if macaque.is_file():
        vol, _ = _template(str(macaque))
        for view in _VIEWS:
            slabs = _slabs(vol.shape[_view_axis(view)], cfg.macaque_volumes_per_view, cfg.slices_per_volume)
            for v, slab in enumerate(slabs):
                for contrast in _CONTRASTS:
                    jobs.append(_Job(
                        f"mini_macaque/macaque_{view}_{contrast.lower()}_{v:02d}.h5", "template", str(macaque),
                        view, contrast, slab,
                        (("dataset", "mini_macaque"), ("anatomy", "macaque_brain"), ("view", view),
                         ("contrast", contrast), ("split", "test"), *sim, ("patient_id", "inia19")),
                    ))
    else:
        notes.append(f"macaque template {macaque} not found: mini_macaque left out")
    if realdata is None:
        notes.append(f"no real-data folder (--realdata or ${_REALDATA_ENV}): real brain and knee left out")
        return jobs, notes
    brain, knee = realdata / "brain_t1_8ch_full", realdata / "knee_image_1map"
    if brain.with_suffix(".cfl").is_file():
        jobs.append(_Job("mini_brain_real/brain_t1_8ch.h5", "real_brain", str(brain), "axial", "T1", (0,),
                         (("dataset", "mini_brain_real"), ("anatomy", "brain"), ("view", "axial"),
                          ("contrast", "T1"), ("split", "test"), ("patient_id", "espirit_brain"))))
    else:
        notes.append(f"{brain}.cfl not found: mini_brain_real left out")
    if knee.with_suffix(".cfl").is_file():
        jobs.append(_Job("mini_knee_real/knee_1map.h5", "real_knee", str(knee), "", "", (0,),
                         (("dataset", "mini_knee_real"), ("anatomy", "knee"), ("split", "test"), *sim,
                          ("patient_id", "espirit_knee"))))
    else:
        notes.append(f"{knee}.cfl not found: mini_knee_real left out")
    return jobs, notes


# ----------------------------------------------------------------------------- image making
def _stable_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big")


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad ``[..., H, W]`` (real) to a centred square, then resize to ``size x size`` (antialiased)."""
    h, w = img.shape[-2:]
    n = max(h, w)
    top, left = (n - h) // 2, (n - w) // 2
    pad = torch.nn.functional.pad(img, (left, n - w - left, top, n - h - top))
    lead = pad.shape[:-2]
    out = torch.nn.functional.interpolate(pad.reshape(-1, 1, n, n).float(), size=(size, size), mode="bilinear",
                                          antialias=True, align_corners=False)
    return out.reshape(*lead, size, size)


def _head_mask(img: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    mask = img > 0.05
    mask = ndimage.binary_closing(mask, iterations=2)
    mask = ndimage.binary_fill_holes(mask)
    return ndimage.gaussian_filter(mask.astype(np.float32), 1.0)


def _contrast(img: np.ndarray, contrast: str) -> np.ndarray:
    """``T1``: the template scaled to [0, 1]; ``T2``: inverted intensities inside the head mask."""
    if contrast == "T1":
        return img
    return _head_mask(img) * np.clip(1.05 - img, 0.0, 1.0) ** 1.5


def _template_images(job: _Job, cfg: MiniPoolConfig) -> torch.Tensor:
    vol, level = _template(job.source)
    imgs = []
    for index in job.slices:
        s = np.clip(template_slice(vol, job.view, index) / level, 0.0, 1.0).astype(np.float32)
        imgs.append(torch.from_numpy(np.ascontiguousarray(_contrast(s, job.contrast))))
    return _resize(torch.stack(imgs), cfg.size)


def _simulate(images: torch.Tensor, job: _Job, cfg: MiniPoolConfig, *, add_phase: bool) -> torch.Tensor:
    from mrizoo.data.synthetic import birdcage_maps, simulate_multicoil, smooth_phase

    if cfg.random_coils:  # a volume is one acquisition: one coil placement per volume
        rng = np.random.default_rng(_stable_seed(cfg.seed, job.relpath, "coils"))
        maps = birdcage_maps(cfg.coils, (cfg.size, cfg.size), radius=float(rng.uniform(1.2, 2.0)),
                             rotation=float(rng.uniform(0.0, 2.0 * math.pi)))
    else:
        maps = birdcage_maps(cfg.coils, (cfg.size, cfg.size))
    out = []
    for s in range(images.shape[0]):
        base = _stable_seed(cfg.seed, job.relpath, s)
        img = images[s].to(torch.complex64)
        if add_phase:
            phase = smooth_phase((cfg.size, cfg.size), base, strength=cfg.phase_strength)
            img = img * torch.polar(torch.ones_like(phase), phase)
        out.append(simulate_multicoil(img, snr_db=cfg.snr_db, seed=base + 1, maps=maps)[0])
    return torch.stack(out)


def _real_brain_kspace(job: _Job, cfg: MiniPoolConfig) -> torch.Tensor:
    """The real 8-coil slice: coil images centre-cropped to a square and resized (real and imaginary parts)."""
    from mrizoo.data.bart import read_cfl
    from mrizoo.physics.fft import fft2c, ifft2c

    k = np.squeeze(read_cfl(job.source))
    if k.ndim != 3:
        raise InputError("expected one multi-coil slice", path=job.source, got=f"shape {k.shape}")
    coil_imgs = ifft2c(torch.from_numpy(np.ascontiguousarray(k.transpose(2, 0, 1))).to(torch.complex64))
    h, w = coil_imgs.shape[-2:]
    n = min(h, w)
    top, left = (h - n) // 2, (w - n) // 2
    sq = coil_imgs[:, top:top + n, left:left + n]
    parts = _resize(torch.view_as_real(sq).permute(3, 0, 1, 2).contiguous(), cfg.size)  # [2, C, S, S]
    resized = torch.complex(parts[0], parts[1])
    return fft2c(resized)[None]


def _real_knee_images(job: _Job, cfg: MiniPoolConfig) -> torch.Tensor:
    """The real complex knee image, centre-cropped to a square and resized (keeps its own phase)."""
    from mrizoo.data.bart import read_cfl

    img = torch.from_numpy(np.ascontiguousarray(np.squeeze(read_cfl(job.source)))).to(torch.complex64)
    if img.ndim != 2:
        raise InputError("expected one 2D image", path=job.source, got=f"shape {tuple(img.shape)}")
    h, w = img.shape
    n = min(h, w)
    top, left = (h - n) // 2, (w - n) // 2
    sq = img[top:top + n, left:left + n]
    parts = _resize(torch.view_as_real(sq).permute(2, 0, 1).contiguous(), cfg.size)
    out = torch.complex(parts[0], parts[1])
    return (out / out.abs().max())[None]


def _header(h: int, w: int, job: _Job) -> str:
    from mrizoo.data.writer import make_ismrmrd_header

    xml = make_ismrmrd_header((h, w, 1), (h, w, 1))
    attrs = dict(job.attrs)
    fields = [f"<systemVendor>{attrs['vendor']}</systemVendor>" if attrs.get("vendor") else "",
              f"<systemModel>{attrs['scanner']}</systemModel>" if attrs.get("scanner") else "",
              f"<systemFieldStrength_T>{attrs['field_strength']}</systemFieldStrength_T>"
              if attrs.get("field_strength") else ""]
    block = "".join(fields)
    if block:
        xml = xml.replace("  <experimentalConditions>",
                          f"  <acquisitionSystemInformation>{block}</acquisitionSystemInformation>\n"
                          "  <experimentalConditions>", 1)
    return xml


def _run_job(job: _Job, cfg: MiniPoolConfig, root: str) -> str:
    from mrizoo.data.writer import write_volume
    from mrizoo.physics.coils import rss
    from mrizoo.physics.fft import ifft2c

    torch.set_num_threads(1)
    if job.kind == "template":
        kspace = _simulate(_template_images(job, cfg), job, cfg, add_phase=True)
    elif job.kind == "real_knee":
        kspace = _simulate(_real_knee_images(job, cfg), job, cfg, add_phase=False)
    else:
        kspace = _real_brain_kspace(job, cfg)
    kspace = kspace.to(torch.complex64)
    target = torch.stack([rss(ifft2c(kspace[s])) for s in range(kspace.shape[0])])
    attrs = {k: v for k, v in job.attrs if k not in ("vendor", "scanner")}
    attrs.update({
        "max": float(target.max()), "norm": float(torch.linalg.vector_norm(target.double())),
        "acquisition": f"{job.view[:3].upper() or 'UNK'}{job.contrast or 'UNK'}",
        "source_format": "minipool", "minipool_slices": list(job.slices),
    })
    dest = Path(root) / job.relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_volume(dest, kspace=kspace.numpy(), targets={"reconstruction_rss": target.numpy()}, attrs=attrs,
                 header=_header(int(kspace.shape[-2]), int(kspace.shape[-1]), job))
    return job.relpath


# ----------------------------------------------------------------------------- the build
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

    ``templates``: folder of the mricron templates (default :func:`default_templates_dir`).
    ``realdata``: folder with the real scans (default ``$MRIZOO_REALDATA``; without it the
    real sets are left out, which the result's notes say). Volumes are written atomically;
    existing ones are skipped, so an interrupted build resumes. A data root built with
    other settings is refused (its manifest differs).
    """
    start = time.perf_counter()
    cfg = config or MiniPoolConfig()
    cfg.validate()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError("must be a positive whole number", field="workers", got=repr(workers))
    tdir = Path(templates).expanduser() if templates is not None else default_templates_dir()
    if not (tdir / _COLIN).is_file():
        raise InputError(f"Colin27 template not found; {_INSTALL_HINT}", path=tdir / _COLIN,
                         expected=f"set ${_TEMPLATES_ENV} or --templates to a folder holding {_COLIN}")
    real = _realdata_dir(realdata)
    root = Path(dest).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    manifest = root / MANIFEST_NAME
    settings = asdict(cfg)
    if not cfg.random_coils:  # roots built before the option existed stay valid
        del settings["random_coils"]
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8")).get("config")
        except (OSError, ValueError):
            old = None
        if old != json.loads(json.dumps(settings)):
            raise InputError("data root was built with other settings", path=manifest, field="config",
                             expected=settings, got=old)
    jobs, notes = _plan(cfg, tdir, real)
    todo = [j for j in jobs if not (root / j.relpath).is_file()]
    skipped = [j.relpath for j in jobs if (root / j.relpath).is_file()]
    from mrizoo._atomic import atomic_file

    with atomic_file(manifest) as tmp:
        tmp.write_text(json.dumps({"config": settings, "volumes": [j.relpath for j in jobs]}, indent=1),
                       encoding="utf-8")
    written: list[str] = []
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            written = list(pool.map(_run_job, todo, [cfg] * len(todo), [str(root)] * len(todo)))
    else:
        written = [_run_job(j, cfg, str(root)) for j in todo]
    return MiniPoolResult(root=root, written=written, skipped=skipped, notes=notes,
                          seconds=round(time.perf_counter() - start, 3))
