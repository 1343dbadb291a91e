"""Anatomy sources of the demo mini-pool: the real MR volumes that installed packages ship.

Every source is a magnitude volume that no one on this project made: Debian's
``mricron-data`` templates (Colin27 T1 head ``ch2``, its brain-extracted ``ch2bet`` and
high-resolution ``ch2better`` renderings, the macaque ``inia19``), the MNI ICBM152 2009a
average of ``nilearn``'s package data, the b=0 (T2-weighted EPI) brain of ``dipy``'s data
files and the EPI brain of ``nibabel``'s test data. Label maps (AAL, Brodmann, JHU, ...) are
not images and are never used. This module reads them (a small NIfTI-1 reader that keeps voxel
sizes and world positions), cuts 2D slices in radiological orientation, places a slab of
slices on a scanner matrix at a random field of view, and maps T1 intensities to other
contrasts (T2, PD, FLAIR) through tissue classes found by 1-D k-means.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mrizoo.errors import InputError

__all__ = [
    "CONTRASTS",
    "SOURCES",
    "Source",
    "Volume",
    "contrast_map",
    "default_templates_dir",
    "extent",
    "find_sources",
    "load_volume",
    "place_slab",
    "read_nifti",
    "read_nifti_volume",
    "source",
    "template_slice",
    "tissue_levels",
    "view_axis",
    "view_spacing",
]

_TEMPLATES_ENV = "MRIZOO_MRICRON_TEMPLATES"
_VIEWS = ("axial", "coronal", "sagittal")
_NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4"}


# ----------------------------------------------------------------------------- NIfTI reading
@dataclass(frozen=True)
class Volume:
    """A RAS volume (axis 0 left->right, 1 posterior->anterior, 2 inferior->superior).

    ``spacing``: voxel size in mm per axis; ``coords``: world position (mm) of every index
    along each axis, increasing (so positions compare across volumes in one space).
    """

    data: np.ndarray
    spacing: tuple[float, float, float]
    coords: tuple[np.ndarray, np.ndarray, np.ndarray]


def _affine(header: bytes, e: str) -> tuple[np.ndarray, np.ndarray]:
    """3x3 voxel-to-world matrix and offset: sform when set, else qform, else the voxel sizes."""
    qform_code, sform_code = struct.unpack(e + "2h", header[252:256])
    pix = struct.unpack(e + "8f", header[76:108])
    if sform_code > 0:
        m = np.array(struct.unpack(e + "12f", header[280:328]), dtype=np.float64).reshape(3, 4)
        return m[:, :3], m[:, 3]
    if qform_code > 0:
        b, c, d = struct.unpack(e + "3f", header[256:268])
        off = np.array(struct.unpack(e + "3f", header[268:280]), dtype=np.float64)
        a = math.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
        rot = np.array([
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - b * b - c * c],
        ])
        qfac = -1.0 if pix[0] < 0 else 1.0
        return rot * np.array([pix[1], pix[2], pix[3] * qfac]), off
    return np.diag([abs(pix[1]) or 1.0, abs(pix[2]) or 1.0, abs(pix[3]) or 1.0]), np.zeros(3)


def read_nifti_volume(path: str | os.PathLike[str]) -> Volume:
    """A NIfTI-1 volume (``.nii`` / ``.nii.gz``) as a float32 RAS :class:`Volume`.

    The nearest axis permutation and flips of the header's sform/qform (no resampling); a 4D
    file gives its first frame.
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
    if dim[0] < 3 or min(dim[1:4]) < 1:
        raise InputError("not a 3D volume", path=path, got=f"dims {dim[1:1 + dim[0]]}")
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
    mat, off = _affine(raw[:348], e)
    world_axis = np.argmax(np.abs(mat), axis=0)  # which world axis each voxel axis follows
    if sorted(world_axis.tolist()) != [0, 1, 2]:
        raise InputError("oblique orientation not supported", path=path, got=mat.round(3).tolist())
    order = np.argsort(world_axis)
    data = np.transpose(data, order)
    spacing, coords = [], []
    for ax in range(3):
        step = float(mat[ax, order[ax]])
        pos = off[ax] + step * np.arange(data.shape[ax])
        if step < 0:
            data = np.flip(data, axis=ax)
            pos = pos[::-1]
        spacing.append(abs(step) or 1.0)
        coords.append(pos.astype(np.float64))
    return Volume(np.ascontiguousarray(data), (spacing[0], spacing[1], spacing[2]),
                  (coords[0], coords[1], coords[2]))


def read_nifti(path: str | os.PathLike[str]) -> np.ndarray:
    """A 3D NIfTI-1 volume as float32 RAS array (see :func:`read_nifti_volume`)."""
    return read_nifti_volume(path).data


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


def view_axis(view: str) -> int:
    """The RAS axis a view slices along."""
    return {"sagittal": 0, "coronal": 1, "axial": 2}[view]


def view_spacing(spacing: tuple[float, float, float], view: str) -> tuple[float, float]:
    """Pixel size (rows, columns) in mm of :func:`template_slice` for ``view``."""
    return {"axial": (spacing[1], spacing[0]), "coronal": (spacing[2], spacing[0]),
            "sagittal": (spacing[2], spacing[1])}[view]


# ----------------------------------------------------------------------------- the catalogue
@dataclass(frozen=True)
class Source:
    """One shipped volume: where it lies, what it shows and which contrast it has natively."""

    key: str
    package: str  # "mricron-data" (a folder) or a Python distribution holding it
    relpath: str
    anatomy: str
    native: str  # "T1" or "T2": T1 sources get the synthetic contrasts, T2 ones stay as they are
    description: str


#: Every anatomical volume the builder knows (label maps of the same packages are not listed).
SOURCES: tuple[Source, ...] = (
    Source("colin", "mricron-data", "ch2.nii.gz", "brain", "T1", "Colin27 single-subject T1 head, 1 mm"),
    Source("colin_bet", "mricron-data", "ch2bet.nii.gz", "brain", "T1", "Colin27 brain-extracted, 1 mm"),
    Source("colin_better", "mricron-data", "ch2better.nii.gz", "brain", "T1",
           "Colin27 high-resolution brain rendering, 0.5 mm"),
    Source("macaque", "mricron-data", "inia19-t1-brain.nii.gz", "macaque_brain", "T1",
           "INIA19 macaque T1 brain template, 0.5 mm"),
    Source("mni152", "nilearn", "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", "brain", "T1",
           "MNI ICBM152 2009a symmetric T1 average (152 subjects), 1 mm"),
    Source("dipy_b0", "dipy", "data/files/S0_10slices.nii.gz", "brain", "T2",
           "b=0 diffusion EPI (T2-weighted) brain, 10 axial slices, 2 mm"),
    Source("nibabel_epi", "nibabel", "tests/data/example4d.nii.gz", "brain", "T2",
           "EPI (T2*-weighted) brain, 24 axial slices, 2 mm"),
)


def default_templates_dir() -> Path:
    """``$MRIZOO_MRICRON_TEMPLATES``, else where ``mricron-data`` installs them."""
    env = os.environ.get(_TEMPLATES_ENV)
    return Path(env).expanduser() if env else Path("/usr/share/mricron/templates")


def _package_dir(name: str) -> Path | None:
    """Folder of an installed Python package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def find_sources(templates: Path) -> tuple[dict[str, Path], list[str]]:
    """The path of every source present (``key -> path``) and a note per missing one."""
    found: dict[str, Path] = {}
    notes: list[str] = []
    for src in SOURCES:
        base = templates if src.package == "mricron-data" else _package_dir(src.package)
        path = base / src.relpath if base is not None else None
        if path is not None and path.is_file():
            found[src.key] = path
        else:
            hint = "apt-get install mricron-data" if src.package == "mricron-data" else f"pip install {src.package}"
            notes.append(f"{src.key} ({src.description}) not found ({hint}): left out")
    return found, notes


def source(key: str) -> Source:
    """The catalogue entry ``key``."""
    for src in SOURCES:
        if src.key == key:
            return src
    raise InputError("unknown anatomy source", field="source", expected=[s.key for s in SOURCES], got=key)


@lru_cache(maxsize=8)
def load_volume(path: str) -> tuple[Volume, float]:
    """The RAS volume of ``path`` and its 99.5th-percentile foreground level (for scaling to ~[0, 1])."""
    vol = read_nifti_volume(path)
    data = np.clip(vol.data, 0.0, None)
    fg = data[data > 0]
    level = float(np.percentile(fg, 99.5)) if fg.size else 1.0
    if level <= 0 or not np.any(data > 0.05 * level):
        raise InputError("volume is empty", path=path)
    return Volume(data, vol.spacing, vol.coords), level


def extent(vol: Volume, level: float, view: str) -> tuple[int, int]:
    """First and last slice index (along ``view``'s axis) that hold foreground."""
    ax = view_axis(view)
    fg = (vol.data > 0.05 * level).any(axis=tuple(a for a in range(3) if a != ax))
    idx = np.flatnonzero(fg)
    return int(idx[0]), int(idx[-1])


# ----------------------------------------------------------------------------- contrasts
@lru_cache(maxsize=8)
def tissue_levels(path: str) -> tuple[float, float, float]:
    """Three intensity classes (CSF-like, grey-like, white-like; scaled by the level) by 1-D k-means."""
    vol, level = load_volume(path)
    t = vol.data[::2, ::2, ::2] / level
    t = t[(t > 0.08) & (t <= 1.0)]
    centres = np.quantile(t, [0.15, 0.5, 0.85])
    for _ in range(25):
        lab = np.argmin(np.abs(t[:, None] - centres[None, :]), axis=1)
        new = np.array([t[lab == k].mean() if np.any(lab == k) else centres[k] for k in range(3)])
        if np.allclose(new, centres, atol=1e-4):
            break
        centres = new
    c = np.sort(centres)
    return float(c[0]), float(c[1]), float(c[2])


# tissue values (dark background, CSF, grey, white, brightest) of the synthetic contrasts
_CONTRAST_VALUES = {
    "T2": (1.00, 0.55, 0.38, 0.55),
    "PD": (0.80, 0.82, 0.66, 0.75),
    "FLAIR": (0.10, 0.78, 0.55, 0.60),
}
CONTRASTS = ("T1", "T2", "PD", "FLAIR")


def contrast_map(img: np.ndarray, levels: tuple[float, float, float], contrast: str,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """A T1 image (scaled to ~[0, 1]) mapped to ``contrast`` through its tissue classes.

    Piecewise-linear in the T1 intensity: background stays 0, the CSF, grey and white levels
    go to the contrast's values (each jittered by up to 10 % with ``rng``), so partial volumes
    blend as they would. ``T1`` returns the image unchanged.
    """
    if contrast == "T1":
        return img
    if contrast not in _CONTRAST_VALUES:
        raise InputError("unknown contrast", field="contrast", expected=list(CONTRASTS), got=contrast)
    values = np.array(_CONTRAST_VALUES[contrast], dtype=np.float64)
    if rng is not None:
        values = values * rng.uniform(0.9, 1.1, size=values.size)
    csf, grey, white = levels
    xp = [0.0, 0.5 * csf, csf, grey, white, 1.0]
    fp = [0.0, 0.35 * values[0], values[0], values[1], values[2], values[3]]
    out = np.interp(np.clip(img, 0.0, 1.0), xp, fp)
    return (out / max(out.max(), 1e-6)).astype(np.float32)


# ----------------------------------------------------------------------------- placement
def place_slab(
    slices: np.ndarray, spacing: tuple[float, float], shape: tuple[int, int], *, fill: float, angle: float,
    flip: bool, shift: tuple[float, float],
) -> tuple[np.ndarray, float]:
    """Slices ``[S, r, c]`` (pixel size ``spacing`` mm) placed on a ``shape`` matrix: ``[S, H, W]`` and its pixel mm.

    The slab's foreground box is scaled so that it fills ``fill`` of the matrix along its tighter
    side (one pixel size for both axes, so anatomy keeps its proportions), rotated by ``angle``
    radians, mirrored left-right with ``flip`` and shifted by ``shift`` (fractions of the matrix).
    Bilinear interpolation with a Gaussian pre-filter when shrinking (no aliasing).
    """
    # imported on use: a heavy package that most calls of this module do not need
    from scipy import ndimage

    s_n, rows, cols = slices.shape
    h, w = shape
    fg = slices.max(axis=0) > 0.05 * max(float(slices.max()), 1e-6)
    if not fg.any():
        fg = np.ones((rows, cols), dtype=bool)
    r_idx, c_idx = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    box_h = (r_idx[-1] - r_idx[0] + 1) * spacing[0]
    box_w = (c_idx[-1] - c_idx[0] + 1) * spacing[1]
    cr, cc = 0.5 * (r_idx[0] + r_idx[-1]), 0.5 * (c_idx[0] + c_idx[-1])
    pix = max(box_h / (fill * h), box_w / (fill * w))  # mm per output pixel
    yy, xx = np.meshgrid((np.arange(h) - (h - 1) / 2 - shift[0] * h) * pix,
                         (np.arange(w) - (w - 1) / 2 - shift[1] * w) * pix, indexing="ij")
    if flip:
        xx = -xx
    cos, sin = math.cos(angle), math.sin(angle)
    ys, xs = cos * yy - sin * xx, sin * yy + cos * xx
    coords = np.stack([cr + ys / spacing[0], cc + xs / spacing[1]])
    sigma = [0.45 * math.sqrt(max(0.0, (pix / sp) ** 2 - 1.0)) for sp in spacing]
    out = np.empty((s_n, h, w), dtype=np.float32)
    for i in range(s_n):
        src = ndimage.gaussian_filter(slices[i], sigma) if max(sigma) > 0.05 else slices[i]
        out[i] = ndimage.map_coordinates(src, coords, order=1, mode="constant", cval=0.0)
    return np.clip(out, 0.0, None), float(pix)
