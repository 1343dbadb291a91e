"""Source readers: fastMRI HDF5 volumes and plain arrays (``.npy``, ``.npz``, ``.mat``, HDF5).

Each reader returns a :class:`SourceVolume` (a labelled complex array plus the header,
attributes and stored target worth keeping); :func:`echo_labels` learns the echoes a file
will produce from metadata alone, so finished outputs can be skipped without reading data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrizoo.data.converters.headers import read_header_info
from mrizoo.data.converters.ismrmrd import ismrmrd_echo_labels, read_ismrmrd
from mrizoo.data.converters.pipeline import LabeledVolume
from mrizoo.data.converters.source import SourceVolume, open_h5
from mrizoo.data.converters.spec import ConversionSpec
from mrizoo.errors import InputError

__all__ = ["SourceVolume", "echo_labels", "load_array", "read_array_file", "read_fastmri_h5", "read_source"]

_FASTMRI_AXES = {3: "sxy", 4: "scxy", 5: "ascxy"}
# attributes recomputed for every output (sampling is read again from the converted data)
_SKIP_ATTRS = {"max", "norm", "mrizoo_conversion", "sampling", "acceleration", "center_shape", "partial_fourier",
               "zero_padding"}


def _as_complex(arr: np.ndarray, *, axis: int | None, path: Path, key: str) -> np.ndarray:
    """Complex64 view of a complex array, a (real, imag) record array, or interleaved pairs."""
    names = arr.dtype.names
    if names:
        pairs = [("real", "imag"), ("r", "i"), ("re", "im")]
        match = next((p for p in pairs if set(p) == set(names)), None)
        if match is None:
            raise InputError("record array is not a complex number layout", path=path, field=key,
                             expected="fields (real, imag) or (r, i)", got=list(names))
        out = np.empty(arr.shape, np.complex64)
        out.real, out.imag = arr[match[0]], arr[match[1]]
        arr = out
    if axis is not None:
        if arr.dtype.kind not in "iuf":
            raise InputError("interleaved real/imaginary pairs need a real array", path=path, field=key,
                             got=str(arr.dtype))
        if arr.shape[axis] % 2:
            raise InputError("interleaved real/imaginary axis has an odd length", path=path, field=key,
                             got=f"shape {arr.shape}")
        re = np.take(arr, np.arange(0, arr.shape[axis], 2), axis=axis)
        im = np.take(arr, np.arange(1, arr.shape[axis], 2), axis=axis)
        return (re + 1j * im).astype(np.complex64)
    if arr.dtype.kind != "c":
        raise InputError("k-space must be complex", path=path, field=key,
                         expected="a complex array, (real, imag) records, or interleaved_complex",
                         got=str(arr.dtype))
    return np.asarray(arr, dtype=np.complex64)


def _h5_dataset(f: h5py.File, key: str | None, path: Path) -> h5py.Dataset:
    if key is None:
        names = [k for k, v in f.items() if isinstance(v, h5py.Dataset) and not k.startswith("#")]
        if len(names) != 1:
            raise InputError("choose the array to read", path=path, field="key",
                             expected=f"one of {sorted(names)}", got="no key")
        key = names[0]
    ds = f.get(key)
    if not isinstance(ds, h5py.Dataset):
        raise InputError("no such array", path=path, field=key, expected=f"a dataset among {sorted(f.keys())}")
    return ds


def _is_mat73(path: Path) -> bool:
    return path.suffix.lower() == ".mat" and h5py.is_hdf5(path)


def _scipy_io(path: Path) -> Any:
    try:
        # optional: scipy reads only MAT files before v7.3
        import scipy.io
    except ImportError:
        raise InputError("MAT files before v7.3 are read with scipy, which is not installed", path=path,
                         expected="pip install scipy (v7.3 files are read with h5py)") from None
    return scipy.io


def load_array(path: str | os.PathLike[str], key: str | None = None) -> np.ndarray:
    """The raw array of an ``.npy``/``.npz``/``.mat``/HDF5 file (``.mat`` in MATLAB axis order)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("source file not found", path=path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.keys())
                if key is None and len(names) != 1:
                    raise InputError("choose the array to read", path=path, field="key",
                                     expected=f"one of {names}", got="no key")
                if (key or names[0]) not in names:
                    raise InputError("no such array", path=path, field=key, expected=f"one of {names}")
                return z[key or names[0]]
        if suffix == ".mat" and not _is_mat73(path):
            scipy_io = _scipy_io(path)
            names = [n for n, _, _ in scipy_io.whosmat(path)]
            if key is None and len(names) != 1:
                raise InputError("choose the MAT variable to read", path=path, field="key",
                                 expected=f"one of {names}", got="no key")
            if (key or names[0]) not in names:
                raise InputError("no such MAT variable", path=path, field=key, expected=f"one of {names}")
            return scipy_io.loadmat(path, variable_names=[key or names[0]])[key or names[0]]
        if suffix in (".mat", ".h5", ".hdf5", ".hdf"):
            with open_h5(path) as f:
                arr = _h5_dataset(f, key, path)[()]
            return arr.T if suffix == ".mat" else arr  # MATLAB writes column-major
    except InputError:
        raise
    except (OSError, ValueError, NotImplementedError) as err:
        raise InputError("array file cannot be read", path=path, got=str(err)) from None
    raise InputError("unknown array file type", path=path, expected=".npy, .npz, .mat, .h5 or .hdf5",
                     got=suffix or "no suffix")


def _array_shape(path: Path, key: str | None) -> tuple[int, ...]:
    """Shape of the array without reading its data (where the format allows)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
        if suffix == ".mat" and not _is_mat73(path):
            info = {n: s for n, s, _ in _scipy_io(path).whosmat(path)}
            name = key if key is not None else (next(iter(info)) if len(info) == 1 else None)
            if name in info:
                return tuple(info[name])
        elif suffix in (".mat", ".h5", ".hdf5", ".hdf"):
            with open_h5(path) as f:
                shape = tuple(_h5_dataset(f, key, path).shape)
            return shape[::-1] if suffix == ".mat" else shape
    except (OSError, ValueError):
        pass
    return tuple(load_array(path, key).shape)


# ----------------------------------------------------------------------------- readers
def read_array_file(path: str | os.PathLike[str], spec: ConversionSpec) -> SourceVolume:
    """An array file labelled with ``spec.axes``."""
    path = Path(path)
    if spec.axes is None:
        raise InputError("an array source needs its axis letters", path=path, field="axes")
    arr = load_array(path, spec.key)
    if arr.ndim != len(spec.axes):
        raise InputError("array rank does not match the axis letters", path=path, field="axes",
                         expected=f"{arr.ndim} letters for shape {arr.shape}", got=repr(spec.axes))
    axis = None if spec.interleaved_complex is None else spec.axes.index(spec.interleaved_complex)
    data = _as_complex(arr, axis=axis, path=path, key=spec.key or "array")
    vol = LabeledVolume(data, spec.axes, frozenset(spec.image_axes))
    return SourceVolume(vol, untouched=True)


def _pad_to_header(data: np.ndarray, axes: str, header: bytes | None, path: Path) -> np.ndarray:
    if header is None:
        raise InputError("padding to the header needs an ISMRMRD header", path=path, field="ismrmrd_header")
    info = read_header_info(header, path=path)
    if info.encoded is None or "kspace_encoding_step_1" not in info.limits:
        raise InputError("header lacks the encoded size or the phase-encode limits", path=path,
                         field="ismrmrd_header", expected="encodedSpace/matrixSize and "
                         "encodingLimits/kspace_encoding_step_1")
    ax = axes.index("y")
    width, enc_y = data.shape[ax], info.encoded[1]
    if width >= enc_y:
        return data
    left = enc_y // 2 - info.limits["kspace_encoding_step_1"][2]
    if left < 0 or left + width > enc_y:
        raise InputError("phase-encode lines do not fit the header's encoded size", path=path,
                         field="ismrmrd_header", expected=f"{width} lines inside {enc_y}", got=f"offset {left}")
    pad = [(0, 0)] * data.ndim
    pad[ax] = (left, enc_y - width - left)
    return np.pad(data, pad)


def read_fastmri_h5(path: str | os.PathLike[str], spec: ConversionSpec) -> SourceVolume:
    """A fastMRI-layout file: ``kspace`` ``[slices, coils, H, W]`` (or ``[averages, ...]``)."""
    path = Path(path)
    with open_h5(path) as f:
        ks = f.get("kspace")
        if not isinstance(ks, h5py.Dataset):
            raise InputError("no k-space dataset", path=path, field="kspace",
                             expected="dataset 'kspace'", got=f"keys {sorted(f.keys())}")
        axes = spec.axes or _FASTMRI_AXES.get(ks.ndim)
        if axes is None or len(axes) != ks.ndim:
            raise InputError("k-space has the wrong rank", path=path, field="kspace",
                             expected="[slices, H, W], [slices, coils, H, W] or [averages, slices, coils, H, W]"
                             if spec.axes is None else f"{len(spec.axes)} axes ({spec.axes})",
                             got=f"shape {ks.shape}")
        data = _as_complex(ks[()], axis=None, path=path, key="kspace")
        header = None
        if "ismrmrd_header" in f:
            raw = f["ismrmrd_header"][()]
            raw = raw.item() if isinstance(raw, np.ndarray) and raw.ndim == 0 else raw
            if isinstance(raw, np.ndarray) and raw.size == 1:
                raw = raw.reshape(()).item()
            header = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        target = None
        rss = f.get("reconstruction_rss")
        if isinstance(rss, h5py.Dataset) and rss.ndim == 3 and rss.dtype.kind == "f":
            target = np.asarray(rss[()], dtype=np.float32)
        attrs = {k: v for k, v in f.attrs.items() if k not in _SKIP_ATTRS}
    untouched = "a" not in axes
    if spec.pad_to_header:
        before = data.shape
        data = _pad_to_header(data, axes, header, path)
        untouched = untouched and data.shape == before
    if not np.isfinite(data.view(np.float32)).all():
        raise InputError("k-space holds non-finite values (NaN or Inf)", path=path, field="kspace")
    vol = LabeledVolume(data, axes, frozenset(spec.image_axes))
    return SourceVolume(vol, header=header, attrs=attrs, target=target, untouched=untouched)


def read_source(path: str | os.PathLike[str], spec: ConversionSpec) -> SourceVolume:
    """Read one source file according to ``spec.format``."""
    if spec.format == "fastmri_h5":
        return read_fastmri_h5(path, spec)
    if spec.format == "array":
        return read_array_file(path, spec)

    return read_ismrmrd(path, spec)


def echo_labels(path: str | os.PathLike[str], spec: ConversionSpec) -> tuple[int, ...] | None:
    """Echo labels the file will produce (None: a single volume), read from metadata only."""
    path = Path(path)
    if spec.format == "ismrmrd":
        return ismrmrd_echo_labels(path, spec)
    axes = spec.axes
    if spec.format == "fastmri_h5":
        with open_h5(path) as f:
            ks = f.get("kspace")
            if not isinstance(ks, h5py.Dataset):
                raise InputError("no k-space dataset", path=path, field="kspace",
                                 got=f"keys {sorted(f.keys())}")
            shape = tuple(ks.shape)
        axes = axes or _FASTMRI_AXES.get(len(shape), "")
    else:
        shape = _array_shape(path, spec.key)
    if not axes or "e" not in axes or len(shape) != len(axes):
        return None
    n = shape[axes.index("e")] // (2 if spec.interleaved_complex == "e" else 1)
    return tuple(range(1, n + 1)) if n > 1 else None
