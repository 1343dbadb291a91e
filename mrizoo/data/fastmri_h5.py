"""Reading fastMRI-convention HDF5 volumes, one slice at a time.

One file holds one volume: dataset ``kspace`` (complex, ``[slices, coils, H, W]`` or
``[slices, H, W]`` for single-coil data; ``W`` is the phase-encode axis), an optional
sampling ``mask`` (``[W]`` columns, or ``[H, W]`` for a 2D pattern), optional real targets
``[slices, h, w]`` (``reconstruction_rss``, ``reconstruction_esc``, ``reconstruction``), file
attributes (``max``, ``norm``, ``acquisition``, ``patient_id``; mrizoo adds ``sampling``,
``acceleration`` and ``center_shape``) and the ISMRMRD XML header ``ismrmrd_header``. :class:`FastMRIVolume` validates the layout when it opens a file and the
values of every slice it serves; it never reads more than the requested slice.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from mrizoo.errors import InputError
from mrizoo.masks.sampling import (
    SamplingInfo,
    analyse_mask,
    check_kspace_like,
    mask_from_any,
)

__all__ = [
    "FastMRIVolume",
    "HeaderSizes",
    "ISMRMRD_NAMESPACE",
    "parse_ismrmrd_header",
    "RESERVED_KEYS",
]

ISMRMRD_NAMESPACE = "http://www.ismrm.org/ISMRMRD"
RESERVED_KEYS = ("kspace", "mask", "ismrmrd_header")


@dataclass(frozen=True)
class HeaderSizes:
    """Matrix sizes ``(x, y, z)`` of the encoded and the reconstructed space."""

    encoded: tuple[int, int, int]
    recon: tuple[int, int, int]


def _find(root: ET.Element, names: list[str]) -> ET.Element | None:
    """First nested element along ``names``, with or without the ISMRMRD namespace."""
    for ns in (f"{{{ISMRMRD_NAMESPACE}}}", ""):
        node: ET.Element | None = root
        for name in names:
            node = node.find(f".//{ns}{name}") if node is not None else None
        if node is not None:
            return node
    return None


def parse_ismrmrd_header(
    xml: str | bytes, *, path: str | os.PathLike[str] | None = None
) -> HeaderSizes:
    """Encoded and recon matrix sizes from an ISMRMRD XML header."""
    field = "ismrmrd_header"
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise InputError(f"header is not well-formed XML ({err})", path=path, field=field) from None
    sizes = []
    for space in ("encodedSpace", "reconSpace"):
        values = []
        for axis in ("x", "y", "z"):
            where = f"encoding/{space}/matrixSize/{axis}"
            node = _find(root, ["encoding", space, "matrixSize", axis])
            if node is None:
                raise InputError(
                    "header lacks a matrix size", path=path, field=field,
                    expected=f"element {where}",
                )
            try:
                value = int((node.text or "").strip())
            except ValueError:
                raise InputError(
                    "matrix size is not an integer", path=path, field=f"{field}:{where}",
                    got=repr(node.text),
                ) from None
            if value < 1:
                raise InputError(
                    "matrix size must be positive", path=path, field=f"{field}:{where}", got=value
                )
            values.append(value)
        sizes.append(tuple(values))
    return HeaderSizes(encoded=sizes[0], recon=sizes[1])  # type: ignore[arg-type]


def _plain(value: Any) -> Any:
    """HDF5 attribute value -> plain Python (bytes decoded, numpy scalars unwrapped)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype.kind in "SO" else value
    return value


class FastMRIVolume:
    """A fastMRI HDF5 volume opened read-only; data are read per slice on request.

    Use as a context manager or call :meth:`close`. Layout errors (missing or non-complex
    ``kspace``, wrong rank, a mask that does not fit) are raised on opening; non-finite
    values are checked in each slice as it is read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError("file not found", path=self.path)
        if not self.path.is_file():
            raise InputError("not a file", path=self.path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise InputError(
                "not a readable HDF5 file (corrupt, truncated or another format)",
                path=self.path, got=str(err).split("(")[0].strip() or type(err).__name__,
            ) from None
        try:
            self._validate_layout()
        except BaseException:
            self._file.close()
            raise
        self._header: HeaderSizes | None = None
        self._header_read = False
        self._sampling: SamplingInfo | None = None

    # ------------------------------------------------------------------ layout
    def _validate_layout(self) -> None:
        f = self._file
        try:
            ks = f.get("kspace")
        except (OSError, RuntimeError, KeyError) as err:
            raise InputError("file structure cannot be read", path=self.path, got=str(err)) from None
        if ks is None:
            raise InputError(
                "no k-space dataset", path=self.path, field="kspace",
                expected="dataset 'kspace'", got=f"keys {sorted(f.keys())}",
            )
        if not isinstance(ks, h5py.Dataset):
            raise InputError("is not a dataset", path=self.path, field="kspace", got=type(ks).__name__)
        if ks.dtype.kind != "c":
            raise InputError(
                "k-space must be complex", path=self.path, field="kspace",
                expected="complex64 or complex128", got=str(ks.dtype),
            )
        if ks.ndim not in (3, 4):
            raise InputError(
                "k-space has the wrong rank", path=self.path, field="kspace",
                expected="[slices, coils, H, W] or [slices, H, W]", got=f"shape {ks.shape}",
            )
        if any(s < 1 for s in ks.shape):
            raise InputError("k-space is empty", path=self.path, field="kspace", got=f"shape {ks.shape}")
        self._kspace = ks
        h, w = ks.shape[-2:]
        mask = f.get("mask")
        if mask is not None:
            if not isinstance(mask, h5py.Dataset):
                raise InputError("is not a dataset", path=self.path, field="mask")
            if mask.shape not in ((w,), (h, w)):
                raise InputError(
                    "mask does not fit the k-space", path=self.path, field="mask",
                    expected=f"shape ({w},) (one entry per column W) or ({h}, {w})",
                    got=f"shape {mask.shape}",
                )
            if mask.dtype.kind not in "biuf":
                raise InputError(
                    "mask must be numeric 0/1", path=self.path, field="mask", got=str(mask.dtype)
                )

    # --------------------------------------------------------------- properties
    @property
    def num_slices(self) -> int:
        return int(self._kspace.shape[0])

    def __len__(self) -> int:
        return self.num_slices

    @property
    def kspace_shape(self) -> tuple[int, ...]:
        """Shape of the ``kspace`` dataset (read from metadata, no data)."""
        return tuple(int(s) for s in self._kspace.shape)

    @property
    def multicoil(self) -> bool:
        return self._kspace.ndim == 4

    @property
    def num_coils(self) -> int:
        return int(self._kspace.shape[1]) if self.multicoil else 1

    @property
    def keys(self) -> list[str]:
        """Names of the top-level datasets and groups."""
        return sorted(self._file.keys())

    @property
    def target_keys(self) -> list[str]:
        """Datasets other than the k-space, mask and header (the stored images)."""
        return [k for k in self.keys if k not in RESERVED_KEYS]

    @property
    def attrs(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self._file.attrs.items()}

    @property
    def header(self) -> HeaderSizes | None:
        """Matrix sizes from ``ismrmrd_header``; None when the file has no header."""
        if not self._header_read:
            ds = self._file.get("ismrmrd_header")
            if ds is None:
                self._header = None
            else:
                raw = ds[()] if isinstance(ds, h5py.Dataset) else None
                if isinstance(raw, np.ndarray) and raw.ndim == 0:
                    raw = raw.item()
                if isinstance(raw, np.void):
                    raw = raw.tobytes()
                if not isinstance(raw, (bytes, str)):
                    raise InputError(
                        "header must be a scalar string dataset", path=self.path,
                        field="ismrmrd_header", got=type(raw).__name__,
                    )
                self._header = parse_ismrmrd_header(raw, path=self.path)
            self._header_read = True
        return self._header

    # -------------------------------------------------------------------- data
    def _index(self, i: int, n: int, field: str) -> int:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise InputError("slice index must be an integer", path=self.path, field=field, got=repr(i))
        if not -n <= int(i) < n:
            raise InputError(
                "slice index out of range", path=self.path, field=field,
                expected=f"0 <= index < {n}", got=int(i),
            )
        return int(i) % n

    def kspace(self, i: int) -> torch.Tensor:
        """Slice ``i`` as complex64 ``[C, H, W]`` (``[H, W]`` for single-coil files)."""
        i = self._index(i, self.num_slices, "kspace")
        data = np.asarray(self._kspace[i])
        if not np.isfinite(data).all():
            bad = int(np.size(data) - np.isfinite(data).sum())
            raise InputError(
                f"slice {i} holds {bad} non-finite values (NaN or Inf)", path=self.path,
                field="kspace", expected="finite values",
            )
        return torch.from_numpy(np.ascontiguousarray(data, dtype=np.complex64))

    def mask(self) -> torch.Tensor | None:
        """Stored sampling mask as bool ``[W]`` (or ``[H, W]``), None when absent."""
        ds = self._file.get("mask")
        if ds is None:
            return None
        values = np.asarray(ds[()])
        if not np.isin(values, (0, 1)).all():
            odd = np.unique(values[~np.isin(values, (0, 1))])[:5]
            raise InputError(
                "mask values must be 0 or 1", path=self.path, field="mask",
                got=f"values {odd.tolist()}",
            )
        return torch.from_numpy(values.astype(bool))

    def sampling_info(self) -> SamplingInfo:
        """What the volume measured (computed once, then cached).

        Files that carry the ``sampling`` attribute (written by mrizoo) are described by their
        stored mask (all locations when there is none), which must agree with the attribute.
        Other files (fastMRI's own, foreign converters) are read whole once: a location exactly
        zero in every slice and coil was not measured. A stored mask that claims locations
        the data hold no sample at is refused.
        """
        if self._sampling is not None:
            return self._sampling
        h, w = self.kspace_shape[-2:]
        stored = self.mask()
        label = self.attrs.get("sampling")
        if label is not None:
            if label not in ("fully_sampled", "undersampled"):
                raise InputError("unknown sampling label", path=self.path, field="sampling",
                                 expected="'fully_sampled' or 'undersampled'", got=repr(label))
            measured = (torch.ones(h, w, dtype=torch.bool) if stored is None
                        else mask_from_any(stored, (h, w), path=self.path))
            info = analyse_mask(measured, path=self.path)
            if info.sampling != label:
                raise InputError(
                    "the 'sampling' attribute disagrees with the stored mask", path=self.path,
                    field="sampling", expected=info.sampling, got=label,
                )
        else:
            measured = torch.zeros(h, w, dtype=torch.bool)
            for i in range(self.num_slices):
                k = self.kspace(i)
                measured |= (k != 0).reshape(-1, h, w).any(dim=0)
            check_kspace_like(self.kspace(self.num_slices // 2), path=self.path)
            info = analyse_mask(measured, path=self.path, field="kspace")
            if stored is not None:
                claimed = mask_from_any(stored, (h, w), path=self.path)
                if bool((measured & ~claimed).any()):
                    raise InputError(
                        "k-space holds samples where the stored mask says none were taken",
                        path=self.path, field="mask",
                        expected="a mask covering every nonzero k-space location",
                        got=f"{int((measured & ~claimed).sum())} samples outside the mask",
                    )
        self._sampling = info
        return info

    def target(self, i: int, key: str = "reconstruction_rss") -> torch.Tensor:
        """Stored image ``key`` of slice ``i`` as float32 ``[h, w]``."""
        ds = self._file.get(key)
        if ds is None or key in RESERVED_KEYS:
            raise InputError(
                "no such target", path=self.path, field=key,
                expected=f"one of {self.target_keys}" if self.target_keys else "a stored target",
            )
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 3:
            raise InputError(
                "target has the wrong rank", path=self.path, field=key,
                expected="[slices, h, w]", got=f"shape {getattr(ds, 'shape', None)}",
            )
        if ds.dtype.kind not in "iuf":
            raise InputError(
                "target must be real", path=self.path, field=key, expected="float32",
                got=str(ds.dtype),
            )
        if ds.shape[0] != self.num_slices:
            raise InputError(
                "target and k-space have different slice counts", path=self.path, field=key,
                expected=self.num_slices, got=ds.shape[0],
            )
        i = self._index(i, self.num_slices, key)
        data = np.asarray(ds[i], dtype=np.float32)
        if not np.isfinite(data).all():
            raise InputError(
                f"slice {i} holds non-finite values (NaN or Inf)", path=self.path, field=key,
                expected="finite values",
            )
        return torch.from_numpy(data)

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> FastMRIVolume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._file.id.valid else "closed"
        return f"FastMRIVolume('{self.path}', kspace={self.kspace_shape}, {state})"
