"""Reconstructions as NIfTI-1 files, the format image viewers open (ITK-SNAP, FSLeyes, 3D Slicer).

A reconstruction ``[slices, H, W]`` becomes a NIfTI volume ``(W, H, slices)``: the first voxel
axis is the phase-encode direction (fastMRI's W), the second the readout (H), the third the
slice. The affine holds the voxel size read from the ISMRMRD header when the volume has one
(field of view / matrix size of the space whose matrix matches the image, else of the encoded
space), with the origin at the first voxel (the header holds no patient position); without a
header it is the identity. Posterior outputs carry their pixel-wise ``std`` and ``samples`` as
extra volumes along the fourth axis: volume 0 is the reconstruction (the sample mean), then the std, then the
samples; the header's ``descrip`` says so, and a JSON extension keeps the output's attributes
(model, weights source, mask, acceleration).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mrizoo._atomic import atomic_file
from mrizoo.errors import InputError

__all__ = ["NIFTI_SUFFIXES", "OUTPUT_FORMATS", "is_nifti_path", "affine_from_header", "write_nifti", "export_nifti",
           "check_output_format", "nifti_name",
           "volume_order"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_NS = "{http://www.ismrm.org/ISMRMRD}"


def is_nifti_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``)."""
    name = Path(path).name.lower()
    return name.endswith(NIFTI_SUFFIXES)


def _nibabel() -> Any:
    try:
        # imported on use: only NIfTI export needs it (a clear error for a broken install)
        import nibabel
    except ImportError:  # a dependency of mrizoo; only a broken install lacks it
        raise InputError("writing NIfTI needs nibabel", field="format",
                         expected="pip install nibabel", got="nibabel not installed") from None
    return nibabel


def _space(root: ET.Element, name: str) -> tuple[tuple[int, ...], tuple[float, ...]] | None:
    """(matrix size, field of view in mm) of ``encoding/<name>``, or None when incomplete."""
    out: list[tuple[float, ...]] = []
    for what in ("matrixSize", "fieldOfView_mm"):
        values = []
        for axis in ("x", "y", "z"):
            node = None
            for ns in (_NS, ""):
                node = root.find(f".//{ns}encoding/{ns}{name}/{ns}{what}/{ns}{axis}")
                if node is not None:
                    break
            try:
                values.append(float((node.text or "").strip()) if node is not None else float("nan"))
            except ValueError:
                values.append(float("nan"))
        if not all(np.isfinite(v) and v > 0 for v in values):
            return None
        out.append(tuple(values))
    return tuple(int(v) for v in out[0]), out[1]


def affine_from_header(xml: str | bytes | None, shape: tuple[int, int]) -> np.ndarray:
    """The 4 x 4 NIfTI affine of an image ``[H, W]`` per slice (module docstring); identity without a header.

    Voxel size: readout (H) = fov_x / matrix_x, phase encode (W) = fov_y / matrix_y, slice = fov_z
    (the slice thickness of 2D scans) / matrix_z. A header that cannot be read gives the identity.
    """
    affine = np.eye(4)
    if not xml:
        return affine
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return affine
    h, w = shape
    spaces = [s for s in (_space(root, "reconSpace"), _space(root, "encodedSpace")) if s is not None]
    if not spaces:
        return affine
    matching = [s for s in spaces if s[0][0] == h and s[0][1] == w]
    (mx, my, mz), (fx, fy, fz) = (matching or spaces[-1:])[0]
    spacing = np.array([fy / my, fx / mx, fz / mz])  # NIfTI axes: W (phase encode), H (readout), slice
    affine[:3, :3] = np.diag(spacing)
    return affine


def volume_order(images: Mapping[str, np.ndarray]) -> list[str]:
    """Names of the NIfTI volumes along the fourth axis: reconstruction, std, sample 0..P-1."""
    names = ["reconstruction"]
    if "std" in images:
        names.append("std")
    if "samples" in images:
        names += [f"sample {i}" for i in range(int(np.asarray(images["samples"]).shape[0]))]
    return names


def _stack(images: Mapping[str, np.ndarray], path: Path | None) -> np.ndarray:
    """``(W, H, slices[, volumes])`` float32 from ``reconstruction`` ``[S, H, W]`` and optional std/samples."""
    if "reconstruction" not in images:
        raise InputError("no reconstruction to write", path=path, field="reconstruction",
                         expected="a dataset 'reconstruction' [slices, H, W]")
    recon = np.asarray(images["reconstruction"], dtype=np.float32)
    if recon.ndim == 2:
        recon = recon[None]
    if recon.ndim != 3:
        raise InputError("reconstruction must be [slices, H, W]", path=path, field="reconstruction",
                         expected="3 axes", got=tuple(recon.shape))
    vols = [recon]
    if "std" in images:
        vols.append(np.asarray(images["std"], dtype=np.float32).reshape(recon.shape))
    if "samples" in images:
        samples = np.asarray(images["samples"], dtype=np.float32)
        if samples.ndim != 4 or samples.shape[1:] != recon.shape:
            raise InputError("samples must be [P, slices, H, W] matching the reconstruction", path=path,
                             field="samples", expected=f"[P, {', '.join(map(str, recon.shape))}]",
                             got=tuple(samples.shape))
        vols += list(samples)
    data = np.stack(vols, axis=-1)  # [S, H, W, V]
    data = np.transpose(data, (2, 1, 0, 3))  # (W, H, S, V)
    return data[..., 0] if data.shape[-1] == 1 else data


def write_nifti(out_path: str | os.PathLike[str], images: Mapping[str, np.ndarray], *,
                header: str | bytes | None = None, attrs: Mapping[str, Any] | None = None,
                overwrite: bool = False) -> Path:
    """Write ``images`` (``reconstruction`` and optional ``std``/``samples``) as one NIfTI file, atomically."""
    nib = _nibabel()
    out = Path(out_path)
    if not is_nifti_path(out):
        raise InputError("a NIfTI output needs a .nii or .nii.gz name", path=out, field="output",
                         expected="OUT.nii.gz or OUT.nii", got=out.suffix or "no suffix")
    if out.exists() and not overwrite:
        raise InputError("output exists", path=out, expected="a new path, or --overwrite")
    data = _stack(images, None)
    affine = affine_from_header(header, tuple(data.shape[1::-1][:2]) if data.ndim >= 2 else (0, 0))
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    hdr = img.header
    hdr.set_xyzt_units("mm" if header else "unknown")
    hdr.set_qform(affine, code=1 if header else 0)
    hdr.set_sform(affine, code=1 if header else 0)
    order = volume_order(images)
    hdr["descrip"] = ("mrizoo: " + ("; ".join(order[:2]) + (f"; samples 0-{len(order) - 3}" if len(order) > 2 else "")
                      ))[:79].encode()
    meta = {str(k): _plain(v) for k, v in (attrs or {}).items() if k != "ismrmrd_header"}
    meta["volumes"] = order
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", json.dumps(meta, sort_keys=True).encode()))
    suffix = ".nii.gz" if out.name.lower().endswith(".gz") else ".nii"
    with atomic_file(out, suffix=suffix) as tmp:  # a full disk or read-only target: InputError
        nib.save(img, str(tmp))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def export_nifti(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str], *,
                 overwrite: bool = False) -> Path:
    """Write the reconstruction (and any ``std``/``samples``) of an output ``.h5`` as NIfTI.

    The affine comes from the file's ``ismrmrd_header`` (dataset or attribute) when it has one.
    Checked before anything is written: the input must be a readable HDF5 file with a
    ``reconstruction`` dataset, the output a new ``.nii``/``.nii.gz`` path that is not the input.
    """
    # imported on use: a heavy package that most calls of this module do not need
    import h5py

    src, out = Path(in_path), Path(out_path)
    if not src.is_file():
        raise InputError("input file not found", path=src, expected="an existing .h5 reconstruction")
    if not is_nifti_path(out):
        raise InputError("a NIfTI output needs a .nii or .nii.gz name", path=out, field="output",
                         expected="OUT.nii.gz or OUT.nii", got=out.suffix or "no suffix")
    if out.exists() and out.resolve() == src.resolve():
        raise InputError("the output would replace the input", path=out, field="output")
    if out.exists() and not overwrite:
        raise InputError("output exists", path=out, expected="a new path, or --overwrite")
    try:
        f = h5py.File(src, "r")
    except OSError:
        raise InputError("not an HDF5 file", path=src, expected="an .h5 file written by mrizoo reconstruct "
                         "(or any HDF5 file with 'reconstruction' [slices, H, W])") from None
    with f:
        key = "reconstruction" if "reconstruction" in f else None
        if key is None:
            found = sorted(f.keys())
            raise InputError("no reconstruction in the file", path=src, field="reconstruction",
                             expected="a dataset 'reconstruction' [slices, H, W]", got=found[:8])
        images = {k: f[k][()] for k in ("reconstruction", "std", "samples") if k in f}
        header = f["ismrmrd_header"][()] if "ismrmrd_header" in f else f.attrs.get("ismrmrd_header")
        attrs = {k: v for k, v in f.attrs.items() if k != "ismrmrd_header"}
    try:
        _stack(images, src)
    except InputError as err:
        raise InputError(err.problem, path=src, field=err.field, expected=err.expected, got=err.got) from None
    return write_nifti(out, images, header=header, attrs=attrs, overwrite=overwrite)


OUTPUT_FORMATS = ("h5", "nifti")


def check_output_format(fmt: str, out: Path | None, skip_existing: bool = False) -> None:
    """An output format and path that go together, checked before any work."""
    if fmt not in OUTPUT_FORMATS:
        raise InputError("unknown output format", field="format", expected=" or ".join(OUTPUT_FORMATS), got=repr(fmt))
    if out is None:
        return
    if fmt == "nifti" and not is_nifti_path(out):
        raise InputError("--format nifti writes a .nii or .nii.gz file", path=out, field="output",
                         expected="OUT.nii.gz or OUT.nii", got=out.suffix or "no suffix")
    if fmt == "h5" and is_nifti_path(out):
        raise InputError("a .nii/.nii.gz output needs --format nifti", path=out, field="format",
                         expected="--format nifti", got="h5")
    if fmt == "nifti" and skip_existing:
        raise InputError("--skip-existing checks .h5 outputs only", field="skip_existing",
                         expected="--format h5, or --overwrite", got="--format nifti")


def nifti_name(path: Path) -> Path:
    """``path`` with its suffix replaced by ``.nii.gz`` (the default NIfTI output name)."""
    return path.with_name(Path(path.stem).stem + ".nii.gz" if path.name.lower().endswith(".nii.gz")
                          else path.stem + ".nii.gz")
