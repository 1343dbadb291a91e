"""Scanning a data root: which volumes and sidecars lie under it, and each file's facts.

A volume's facts are read from its metadata only (``kspace`` shape and dtype, selected file
attributes, the ISMRMRD XML header), never from k-space values, so scanning thousands of
files costs one small read each.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrizoo.errors import InputError
from mrizoo.pools.columns import METADATA_KEYS, header_metadata

__all__ = ["SIDECAR_NAMES", "read_facts", "walk_root"]

SIDECAR_NAMES = ("mrizoo_metadata.yaml", "mrizoo_metadata.yml", "mrizoo_metadata.json")
_SUFFIXES = (".h5", ".hdf5")
_ATTR_KEYS = (*METADATA_KEYS, "acquisition", "patient_id")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size != 1 else _plain(value.reshape(()).item())
    return value


def read_facts(path: Path) -> dict[str, Any]:
    """Shape, selected attributes and header metadata of one file, without reading k-space values."""
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise InputError("not a readable HDF5 file (corrupt, truncated or another format)", path=path,
                         got=str(err).split("(")[0].strip() or type(err).__name__) from None
    with handle as f:
        ks = f.get("kspace")
        if not isinstance(ks, h5py.Dataset):
            raise InputError("no k-space dataset", path=path, field="kspace", expected="dataset 'kspace'",
                             got=f"keys {sorted(f.keys())}")
        if ks.dtype.kind != "c" or ks.ndim not in (3, 4) or 0 in ks.shape:
            raise InputError("k-space must be complex [slices, coils, H, W] or [slices, H, W]", path=path,
                             field="kspace", got=f"{ks.dtype} shape {ks.shape}")
        attrs = {k: _plain(f.attrs[k]) for k in f.attrs if k in _ATTR_KEYS}
        header: dict[str, Any] = {}
        node = f.get("ismrmrd_header")
        if isinstance(node, h5py.Dataset) and node.shape == ():
            raw = node[()]
            if isinstance(raw, np.ndarray):
                raw = raw.item()
            if isinstance(raw, (bytes, str)):
                header = header_metadata(raw)
        return {"shape": [int(s) for s in ks.shape], "attrs": attrs, "header": header}


def walk_root(root: Path) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """Volumes and sidecars under ``root`` as (relative posix path, size, mtime_ns), sorted."""
    volumes, sidecars = [], []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            is_volume = name.lower().endswith(_SUFFIXES)
            if not is_volume and name not in SIDECAR_NAMES:
                continue
            full = Path(folder) / name
            try:
                st = full.stat()
            except OSError:
                continue
            rel = full.relative_to(root).as_posix()
            (volumes if is_volume else sidecars).append((rel, int(st.st_size), int(st.st_mtime_ns)))
    return sorted(volumes), sorted(sidecars)

