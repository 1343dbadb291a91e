"""Reading Cartesian ISMRMRD HDF5 files with h5py alone.

An ISMRMRD file holds a group (``dataset``) with the XML header ``xml`` and the compound
array ``data`` of acquisitions: ``head`` (the acquisition header with the encoding counters
``idx``), ``traj`` and ``data`` (interleaved real/imaginary float32 samples, coil-major).
Each readout line is placed by its counters ``kspace_encode_step_1`` (y),
``kspace_encode_step_2`` (z), ``slice`` (s) and ``contrast`` (echo); lines acquired several
times (``average``) are averaged. Lines are centred with the header's encoding limits as in
fastMRI (``offset = encoded_size // 2 - limits.center``).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from mrizoo.data.converters.headers import HeaderInfo, read_header_info
from mrizoo.data.converters.pipeline import LabeledVolume
from mrizoo.data.converters.source import SourceVolume, open_h5
from mrizoo.data.converters.spec import ConversionSpec
from mrizoo.errors import InputError

__all__ = ["ISMRMRD_AXES", "NON_IMAGE_FLAGS", "ismrmrd_echo_labels", "read_ismrmrd"]

ISMRMRD_AXES = "escxyz"  # contrast, slice, coil, readout, step 1, step 2
# Acquisition flags (bit numbers, 1-based) of lines that are not image data: noise,
# parallel-calibration-only, navigator, phase correction, HP/RT feedback, dummy scan and
# surface-coil correction scans.
NON_IMAGE_FLAGS = (19, 20, 23, 24, 26, 27, 28, 29)
_IS_REVERSE = 22
_CHUNK = 4096


def _flag_mask(bits: tuple[int, ...]) -> np.uint64:
    value = 0
    for bit in bits:
        value |= 1 << (bit - 1)
    return np.uint64(value)


def _group(f: h5py.File, name: str, path: Path) -> h5py.Group:
    grp = f.get(name)
    if not isinstance(grp, h5py.Group) or "data" not in grp:
        raise InputError("not an ISMRMRD file: no acquisition group", path=path, field=name,
                         expected=f"group '{name}' with dataset 'data'", got=f"keys {sorted(f.keys())}")
    data = grp["data"]
    names = data.dtype.names or ()
    if not isinstance(data, h5py.Dataset) or "head" not in names or "data" not in names:
        raise InputError("acquisitions lack 'head' or 'data' fields", path=path, field=f"{name}/data",
                         expected="compound dtype with fields head, traj, data", got=list(names))
    return grp


def _xml(grp: h5py.Group, path: Path) -> bytes | None:
    if "xml" not in grp:
        return None
    raw = grp["xml"][()]
    if isinstance(raw, np.ndarray):
        raw = raw.reshape(-1)[0] if raw.size else b""
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def _image_heads(grp: h5py.Group, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The acquisition headers and the boolean selection of image lines (first phase/repetition/set)."""
    head = grp["data"].fields("head")[()]
    names = head.dtype.names or ()
    for key in ("flags", "number_of_samples", "active_channels", "idx"):
        if key not in names:
            raise InputError("acquisition header lacks a field", path=path, field=f"head.{key}")
    idx = head["idx"]
    keep = (head["flags"].astype(np.uint64) & _flag_mask(NON_IMAGE_FLAGS)) == 0
    for counter in ("phase", "repetition", "set"):
        if counter in (idx.dtype.names or ()):
            keep &= idx[counter] == 0
    if not keep.any():
        raise InputError("no image acquisitions (all are noise, calibration or navigator lines)", path=path)
    return head, keep


def ismrmrd_echo_labels(path: str | os.PathLike[str], spec: ConversionSpec) -> tuple[int, ...] | None:
    """Echo labels (``contrast + 1``) of the image lines; None for a single contrast."""
    path = Path(path)
    with open_h5(path) as f:
        head, keep = _image_heads(_group(f, spec.key or "dataset", path), path)
    values = np.unique(head["idx"]["contrast"][keep])
    return tuple(int(v) + 1 for v in values) if len(values) > 1 else None


def _placement(info: HeaderInfo, limit: str, axis: int, steps: np.ndarray) -> tuple[int, int]:
    """(size, offset) of an encoding axis: header size and centre when known, else the counters' range.

    A counter with a single value (e.g. ``step_2`` of a 2D scan) gives an axis of size 1.
    """
    if np.unique(steps).size == 1:
        return 1, -int(steps[0])
    size = info.encoded[axis] if info.encoded is not None else 1
    offset = 0
    if limit in info.limits and info.encoded is not None:
        offset = info.encoded[axis] // 2 - info.limits[limit][2]
    top = int(steps.max()) + offset + 1
    if offset < 0 or top > size:  # counters outside the header's matrix: fall back to the counters
        offset, size = 0, max(int(steps.max()) + 1, 1)
    return size, offset


def read_ismrmrd(path: str | os.PathLike[str], spec: ConversionSpec) -> SourceVolume:
    """Cartesian k-space of an ISMRMRD file, axes ``escxyz`` (slices ``s`` in image space)."""
    path = Path(path)
    with open_h5(path) as f:
        grp = _group(f, spec.key or "dataset", path)
        xml = _xml(grp, path)
        info = read_header_info(xml, path=path) if xml is not None else HeaderInfo()
        head, keep = _image_heads(grp, path)
        idx = head["idx"]
        samples = np.unique(head["number_of_samples"][keep])
        channels = np.unique(head["active_channels"][keep])
        if len(samples) != 1 or len(channels) != 1:
            raise InputError("image lines differ in length or coil count", path=path, field="head",
                             expected="one readout length and one coil count",
                             got=f"samples {samples.tolist()}, coils {channels.tolist()}")
        nx, nc = int(samples[0]), int(channels[0])
        ky, kz = idx["kspace_encode_step_1"].astype(np.int64), idx["kspace_encode_step_2"].astype(np.int64)
        sl, ct = idx["slice"].astype(np.int64), idx["contrast"].astype(np.int64)
        contrasts = np.unique(ct[keep])
        echo_of = {int(c): i for i, c in enumerate(contrasts)}
        ny, off_y = _placement(info, "kspace_encoding_step_1", 1, ky[keep])
        nz, off_z = _placement(info, "kspace_encoding_step_2", 2, kz[keep])
        ns = int(sl[keep].max()) + 1
        chop_y = 1 - int(info.user_long.get("ChopY", 1))
        chop_z = 1 - int(info.user_long.get("ChopZ", 1))
        reverse = (head["flags"].astype(np.uint64) & _flag_mask((_IS_REVERSE,))) != 0

        kspace = np.zeros((len(contrasts), ns, nc, nx, ny, nz), dtype=np.complex64)
        count = np.zeros((len(contrasts), ns, ny, nz), dtype=np.int32)
        raw = grp["data"]
        for start in range(0, len(head), _CHUNK):
            stop = min(start + _CHUNK, len(head))
            chosen = np.nonzero(keep[start:stop])[0]
            if not len(chosen):
                continue
            lines = raw.fields("data")[start:stop]
            for j in chosen:
                i = start + j
                values = np.asarray(lines[j], dtype=np.float32)
                if values.size != 2 * nc * nx:
                    raise InputError("acquisition data has the wrong length", path=path, field=f"data[{i}]",
                                     expected=2 * nc * nx, got=values.size)
                line = values.view(np.complex64).reshape(nc, nx)
                if reverse[i]:
                    line = line[:, ::-1]
                if (ky[i] * chop_y + kz[i] * chop_z) % 2:
                    line = -line
                e, y, z = echo_of[int(ct[i])], ky[i] + off_y, kz[i] + off_z
                kspace[e, sl[i], :, :, y, z] += line
                count[e, sl[i], y, z] += 1
    repeated = count > 1
    if repeated.any():  # averages (or repeated lines): mean of the acquisitions of each line
        scale = np.where(repeated, 1.0 / np.maximum(count, 1), 1.0).astype(np.float32)
        kspace *= scale[:, :, None, None, :, :]
    vol = LabeledVolume(kspace, ISMRMRD_AXES, frozenset({"s", *spec.image_axes}))
    labels = tuple(int(c) + 1 for c in contrasts) if len(contrasts) > 1 else None
    attrs = {"ismrmrd_skipped_acquisitions": int((~keep).sum())}
    return SourceVolume(vol, header=xml, attrs=attrs, echo_labels=labels)
