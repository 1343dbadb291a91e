"""Writing fastMRI-convention HDF5 volumes, atomically.

Everything is validated before the first byte is written; the file is then written to a
temporary name in the destination folder and moved into place with :func:`os.replace`,
so a reader never sees a half-written volume and a failed write leaves nothing behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import h5py
import numpy as np

from mrizoo._atomic import default_mode, write_error
from mrizoo.data.fastmri_h5 import ISMRMRD_NAMESPACE, RESERVED_KEYS, parse_ismrmrd_header
from mrizoo.errors import InputError

__all__ = ["check_not_source", "check_output", "write_volume", "make_ismrmrd_header"]


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.expanduser().resolve() == b.expanduser().resolve()


def check_output(
    dest: str | os.PathLike[str], sources: Iterable[str | os.PathLike[str]] = (), *, overwrite: bool = False
) -> Path:
    """Checks on an output volume path made before any work: not an input, new unless ``overwrite``,
    a file (not a folder), in an existing folder."""
    path = Path(dest)
    check_not_source(path, sources)
    if path.exists() and not path.is_file():
        raise InputError("exists and is not a file", path=path, expected="a path for the output .h5 file")
    if path.exists() and not overwrite:
        raise InputError("file exists", path=path, expected="a new path, or overwrite (CLI: --overwrite)")
    if not path.parent.is_dir():
        raise InputError("folder does not exist", path=path.parent, expected="an existing folder for the output")
    return path


def check_not_source(
    dest: str | os.PathLike[str], sources: Iterable[str | os.PathLike[str]] = ()
) -> None:
    """Refuse an output path that is one of the input files (``--overwrite`` would destroy it)."""
    out = Path(dest)
    for src in sources:
        if _same_file(out, Path(src)):
            raise InputError(
                "the output would replace an input file", path=out,
                expected="an output path other than the input files", got=f"input {src}",
            )


def make_ismrmrd_header(
    encoded: tuple[int, int, int],
    recon: tuple[int, int, int],
    *,
    fov_mm: tuple[float, float, float] | None = None,
    recon_fov_mm: tuple[float, float, float] | None = None,
) -> str:
    """A minimal valid ISMRMRD XML header holding the encoded and recon matrix sizes.

    ``x`` is the readout (H), ``y`` the phase-encode (W) size. The encoding limits of
    ``kspace_encoding_step_1`` span all ``y`` lines with the centre at ``y // 2`` (what
    fastMRI's loader reads to find zero-padded columns). Fields of view default to 1 mm
    per matrix element.
    """
    sizes = []
    for name, value in (("encoded", encoded), ("recon", recon)):
        try:
            triple = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise InputError("matrix size must be three integers", field=name, got=value) from None
        if len(triple) != 3 or any(v < 1 for v in triple):
            raise InputError("matrix size must be three positive integers", field=name, got=value)
        sizes.append(triple)
    enc, rec = sizes
    fov_e = tuple(float(v) for v in (fov_mm or enc))
    fov_r = tuple(float(v) for v in (recon_fov_mm or rec))

    def space(tag: str, m: tuple[int, ...], fov: tuple[float, ...]) -> str:
        return (
            f"    <{tag}>\n"
            f"      <matrixSize><x>{m[0]}</x><y>{m[1]}</y><z>{m[2]}</z></matrixSize>\n"
            f"      <fieldOfView_mm><x>{fov[0]:g}</x><y>{fov[1]:g}</y><z>{fov[2]:g}</z></fieldOfView_mm>\n"
            f"    </{tag}>\n"
        )

    def limit(tag: str, n: int) -> str:
        return f"      <{tag}><minimum>0</minimum><maximum>{n - 1}</maximum><center>{n // 2}</center></{tag}>\n"

    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<ismrmrdHeader xmlns="{escape(ISMRMRD_NAMESPACE)}">\n'
        "  <experimentalConditions><H1resonanceFrequency_Hz>0</H1resonanceFrequency_Hz>"
        "</experimentalConditions>\n"
        "  <encoding>\n"
        + space("encodedSpace", enc, fov_e)
        + space("reconSpace", rec, fov_r)
        + "    <encodingLimits>\n"
        + limit("kspace_encoding_step_1", enc[1])
        + limit("kspace_encoding_step_2", enc[2])
        + "    </encodingLimits>\n"
        "    <trajectory>cartesian</trajectory>\n"
        "  </encoding>\n"
        "</ismrmrdHeader>\n"
    )


def _array(value: Any, field: str) -> np.ndarray:
    """numpy view of a numpy array or torch tensor (moved to CPU, detached)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception as err:  # noqa: BLE001 - anything that is not array-like
        raise InputError("not an array", field=field, got=f"{type(value).__name__} ({err})") from None
    if arr.dtype == object:
        raise InputError("not a numeric array", field=field, got=type(value).__name__)
    return arr


def _check_finite(arr: np.ndarray, field: str) -> None:
    if not np.isfinite(arr).all():
        raise InputError("holds non-finite values (NaN or Inf)", field=field, expected="finite values")


def _prepare(
    kspace: Any,
    mask: Any,
    targets: Mapping[str, Any] | None,
    reconstruction: Any,
    header: str | bytes | None,
) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, np.ndarray], bytes | None]:
    ks = None
    if kspace is not None:
        ks = _array(kspace, "kspace")
        if ks.dtype.kind != "c":
            raise InputError(
                "k-space must be complex", field="kspace", expected="complex64", got=str(ks.dtype)
            )
        if ks.ndim not in (3, 4) or 0 in ks.shape:
            raise InputError(
                "k-space has the wrong shape", field="kspace",
                expected="[slices, coils, H, W] or [slices, H, W]", got=f"shape {ks.shape}",
            )
        ks = ks.astype(np.complex64, copy=False)
        _check_finite(ks, "kspace")

    m = None
    if mask is not None:
        if ks is None:
            raise InputError("a mask needs the k-space it samples", field="mask")
        m = _array(mask, "mask")
        h, w = ks.shape[-2:]
        if m.shape not in ((w,), (h, w)):
            raise InputError(
                "mask does not fit the k-space", field="mask",
                expected=f"shape ({w},) (one entry per column W) or ({h}, {w})", got=f"shape {m.shape}",
            )
        if m.dtype.kind not in "biuf" or not np.isin(m, (0, 1)).all():
            raise InputError("mask values must be 0 or 1", field="mask", got=str(m.dtype))
        m = m.astype(bool)

    images: dict[str, np.ndarray] = {}
    items = list((targets or {}).items())
    if reconstruction is not None:
        if targets and "reconstruction" in targets:
            raise InputError("given twice (argument and targets key)", field="reconstruction")
        items.append(("reconstruction", reconstruction))
    for key, value in items:
        if not isinstance(key, str) or not key or "/" in key or key in RESERVED_KEYS:
            raise InputError(
                "invalid target name", field="targets",
                expected=f"a non-empty name without '/' other than {RESERVED_KEYS}", got=repr(key),
            )
        arr = _array(value, key)
        if arr.dtype.kind not in "biuf":
            raise InputError("target must be real", field=key, expected="float32", got=str(arr.dtype))
        if arr.ndim != 3 or 0 in arr.shape:
            raise InputError("target has the wrong shape", field=key, expected="[slices, h, w]",
                             got=f"shape {arr.shape}")
        if ks is not None and arr.shape[0] != ks.shape[0]:
            raise InputError("target and k-space have different slice counts", field=key,
                             expected=ks.shape[0], got=arr.shape[0])
        arr = arr.astype(np.float32, copy=False)
        _check_finite(arr, key)
        images[key] = arr
    if ks is None and not images:
        raise InputError("nothing to write", expected="kspace, targets or reconstruction")
    if images:
        counts = {k: v.shape[0] for k, v in images.items()}
        if len(set(counts.values())) > 1:
            raise InputError("targets have different slice counts", field="targets", got=counts)

    xml = None
    if header is not None:
        if not isinstance(header, (str, bytes)):
            raise InputError("header must be XML text", field="ismrmrd_header", got=type(header).__name__)
        parse_ismrmrd_header(header)
        xml = header.encode("utf-8") if isinstance(header, str) else header
    elif ks is not None:
        h, w = ks.shape[-2:]
        rec = next(iter(images.values())).shape[-2:] if images else (h, w)
        xml = make_ismrmrd_header((h, w, 1), (rec[0], rec[1], 1)).encode("utf-8")
    return ks, m, images, xml


def write_volume(
    path: str | os.PathLike[str],
    *,
    kspace: Any = None,
    mask: Any = None,
    targets: Mapping[str, Any] | None = None,
    reconstruction: Any = None,
    attrs: Mapping[str, Any] | None = None,
    header: str | bytes | None = None,
    overwrite: bool = False,
    compression: str | None = None,
    sources: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write one fastMRI-convention volume and return its path.

    ``kspace``: complex ``[slices, coils, H, W]`` or ``[slices, H, W]`` (stored complex64).
    ``mask``: 0/1 ``[W]`` (or ``[H, W]``). ``targets``: name -> real ``[slices, h, w]``
    (e.g. ``reconstruction_rss``), stored float32. ``reconstruction``: a submission's
    ``[slices, h, w]`` output, stored as ``reconstruction``. ``attrs``: file attributes
    (``max``, ``norm``, ``acquisition``, ``patient_id``, ...). ``header``: ISMRMRD XML; when
    None and k-space is given, a minimal header with the k-space and target sizes is made.
    ``compression`` (e.g. ``"gzip"``) stores datasets in per-slice chunks.
    Arrays may be numpy arrays or torch tensors. An existing file is only replaced when
    ``overwrite`` is true, and never when it is one of ``sources`` (the files the volume was
    made from). The file gets the permissions of a plain ``open()`` under the user's umask.
    """
    path = Path(path)
    check_not_source(path, sources)
    if path.exists() and not overwrite:
        raise InputError("file exists", path=path, expected="a new path, or overwrite=True")
    if path.exists() and not path.is_file():
        raise InputError("exists and is not a file", path=path)
    if compression not in (None, "gzip", "lzf"):
        raise InputError("unknown compression", path=path, field="compression",
                         expected="None, 'gzip' or 'lzf'", got=repr(compression))
    if not path.parent.is_dir():
        raise InputError("folder does not exist", path=path.parent)
    if attrs is not None and not all(isinstance(k, str) and k for k in attrs):
        raise InputError("attribute names must be non-empty strings", path=path, field="attrs",
                         got=[k for k in attrs if not (isinstance(k, str) and k)])
    try:
        ks, m, images, xml = _prepare(kspace, mask, targets, reconstruction, header)
    except InputError as err:  # name the destination in every message
        raise InputError(err.problem, path=path, field=err.field, expected=err.expected,
                         got=err.got) from None

    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with h5py.File(tmp, "x") as f:
            def put(name: str, data: np.ndarray) -> None:  # data: [slices, ...]
                if compression is None:
                    f.create_dataset(name, data=data)
                else:
                    f.create_dataset(name, data=data, compression=compression,
                                     chunks=(1, *data.shape[1:]))

            if ks is not None:
                put("kspace", ks)
            if m is not None:
                f.create_dataset("mask", data=m)
            for key, arr in images.items():
                put(key, arr)
            if xml is not None:
                f.create_dataset("ismrmrd_header", data=np.bytes_(xml))
            for key, value in (attrs or {}).items():
                try:
                    f.attrs[key] = value
                except (TypeError, ValueError) as err:
                    raise InputError(
                        "attribute cannot be stored in HDF5", path=path, field=f"attrs[{key!r}]",
                        expected="a string, number, or numeric array", got=f"{type(value).__name__} ({err})",
                    ) from None
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        clear = write_error(err, path)
        if clear is None:
            raise
        raise clear from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
