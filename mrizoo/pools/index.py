"""The slice index: one row per 2D slice of every fastMRI-convention volume under a data root.

Built once per data root from file *metadata* only (``kspace`` shape and dtype, file
attributes, the ISMRMRD XML header; never k-space values) and stored as an Arrow table with
the Hugging Face ``datasets`` library, memory-mapped when loaded. Columns: ``file`` (path
relative to the root), ``volume`` (file stem), ``slice``, ``volume_id``, the metadata columns
of :mod:`mrizoo.pools.columns`, ``height``, ``width``, ``coils``, ``num_slices`` (of the
file), ``multicoil`` and ``volume_hash``.

Per-volume metadata is merged from, in increasing priority: dataset-level defaults (a
catalog), a sidecar's ``defaults``, the ISMRMRD header (vendor, scanner, field strength,
protocol), file attributes named like columns (plus ``acquisition`` -> protocol and
``patient_id`` -> subject), a sidecar's per-volume entry, and the caller's per-volume
mapping. A sidecar is a ``mrizoo_metadata.yaml`` (or ``.json``) in the volume's folder or
any parent up to the root::

    dataset: stanford2d                 # dataset of every volume below this folder
    defaults: {anatomy: knee, vendor: GE}
    volumes:
      case_001: {contrast: PD, split: train}   # key: file stem or path from this folder

Missing contrast and view are read from fastMRI protocol names (``CORPDFS_FBK`` -> PDFS,
coronal); a missing view also from a dataset name ending in it (``cc359_sagittal``). The split is the given one, else a folder name (``multicoil_train`` -> train,
``val``/``validation`` -> val, ``test``), else a deterministic 85/15 train/val split of the
*subject* (``subject`` column, which defaults to the volume name): a subject goes to
``train`` when ``sha256(name)`` as a fraction of 2^64 is below the ratio. The hash uses the
name only, so the views of one 3D scan (``cc359_axial`` / ``cc359_sagittal`` files of the
same name or subject) always land in the same split.

The cache lives in ``cache_dir / sha256(root)[:16] / fingerprint`` where the fingerprint
covers every file's relative path, size and modification time, the sidecars and the
build settings; a changed file triggers a rebuild that rereads only the changed files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mrizoo.errors import InputError
from mrizoo.pools.columns import (
    METADATA_KEYS,
    NUMERIC_COLUMNS,
    SELECTABLE_COLUMNS,
    STRING_COLUMNS,
    contrast_from_protocol,
    dataset_defaults,
    header_metadata,
    normalize_metadata,
    view_from_protocol,
)
from mrizoo.pools.spec import Range, Selection, _as_selections

__all__ = [
    "INDEX_VERSION",
    "SIDECAR_NAMES",
    "SliceIndex",
    "build_slice_index",
    "default_cache_dir",
    "holdout_split",
    "split_from_path",
    "unit_hash",
]

INDEX_VERSION = 1
SIDECAR_NAMES = ("mrizoo_metadata.yaml", "mrizoo_metadata.yml", "mrizoo_metadata.json")
_SUFFIXES = (".h5", ".hdf5")
_ATTR_KEYS = (*METADATA_KEYS, "acquisition", "patient_id")
_SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                "validation": "val", "test": "test", "testing": "test"}

DatasetArg = str | Mapping[str, str] | Callable[[str], "str | None"] | None


# ----------------------------------------------------------------------------- hashing / splits
def unit_hash(key: str) -> float:
    """``sha256(key)`` as a number in [0, 1): the same on every machine and run."""
    digest = hashlib.sha256(f"mrizoo-split:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def holdout_split(keys: Sequence[str], ratio: float = 0.85, holdout: str = "val") -> list[str]:
    """``"train"`` for keys whose :func:`unit_hash` is below ``ratio``, else ``holdout``."""
    if not 0.0 < ratio < 1.0:
        raise InputError("train ratio must lie strictly between 0 and 1", field="train_ratio", got=ratio)
    return ["train" if unit_hash(k) < ratio else holdout for k in keys]


def split_from_path(relpath: str) -> str:
    """``train``/``val``/``test`` named by the deepest folder of ``relpath`` that names one, else ``""``."""
    found = ""
    for part in Path(relpath).parts[:-1]:
        words = re.split(r"[^a-z0-9]+", part.lower())
        for word in words:
            if word in _SPLIT_WORDS:
                found = _SPLIT_WORDS[word]
    return found


def default_cache_dir() -> Path:
    """``$MRIZOO_HOME/slice_index`` (default ``~/.cache/mrizoo/slice_index``)."""
    home = os.environ.get("MRIZOO_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "mrizoo"
    return base / "slice_index"


# ----------------------------------------------------------------------------- scanning
def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size != 1 else _plain(value.reshape(()).item())
    return value


def _read_facts(path: Path) -> dict[str, Any]:
    """Shape, selected attributes and header metadata of one file, without reading k-space values."""
    import h5py

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


def _walk(root: Path) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
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


@dataclass
class _Sidecar:
    folder: str  # relative posix folder ("" = root)
    dataset: str | None
    defaults: dict[str, Any]
    volumes: dict[str, dict[str, Any]]


def _read_sidecar(root: Path, rel: str) -> _Sidecar:
    from mrizoo._yaml import read_yaml

    path = root / rel
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read metadata sidecar ({err})".replace("\n", " "), path=path) from None
    else:
        data = read_yaml(path)
    data = data or {}
    if not isinstance(data, Mapping):
        raise InputError("a metadata sidecar holds a mapping", path=path, expected="keys dataset, defaults, volumes")
    extra = sorted(set(data) - {"dataset", "defaults", "volumes"})
    if extra:
        raise InputError(f"unknown key(s) {extra}", path=path, field=extra[0],
                         expected="keys among ['dataset', 'defaults', 'volumes']")
    dataset = None
    if data.get("dataset") is not None:
        dataset = normalize_metadata({"dataset": data["dataset"]}, source=str(path))["dataset"]
    defaults = normalize_metadata(data.get("defaults") or {}, source=f"{path}: defaults")
    vols = data.get("volumes") or {}
    if not isinstance(vols, Mapping):
        raise InputError("must map volume names to metadata", path=path, field="volumes")
    volumes = {str(k): normalize_metadata(v or {}, source=f"{path}: volumes.{k}") for k, v in vols.items()}
    folder = Path(rel).parent.as_posix()
    return _Sidecar("" if folder == "." else folder, dataset, defaults, volumes)


def _nearest_sidecars(rel: str, sidecars: Mapping[str, _Sidecar]) -> list[_Sidecar]:
    """Sidecars that apply to ``rel``, nearest folder first."""
    out = []
    parent = Path(rel).parent.as_posix()
    parts = [] if parent == "." else parent.split("/")
    for depth in range(len(parts), -1, -1):
        folder = "/".join(parts[:depth])
        if folder in sidecars:
            out.append(sidecars[folder])
    return out


def _resolve_dataset_arg(dataset: DatasetArg, rel: str) -> str | None:
    if dataset is None:
        return None
    if isinstance(dataset, str):
        return dataset
    if isinstance(dataset, Mapping):
        best = None
        for prefix, name in dataset.items():
            p = str(prefix).strip("/")
            if (p == "" or rel == p or rel.startswith(p + "/")) and (best is None or len(p) > len(best[0])):
                best = (p, name)
        return None if best is None else best[1]
    return dataset(rel)


def _lookup(mapping: Mapping[str, Any] | None, rel: str, stem: str) -> Any:
    if not mapping:
        return None
    for key in (rel, Path(rel).name, stem):
        if key in mapping:
            return mapping[key]
    return None


def _merge_volume(
    rel: str,
    facts: Mapping[str, Any],
    *,
    sidecars: list[_Sidecar],
    dataset: DatasetArg,
    defaults: Mapping[str, Any] | None,
    volume_metadata: Mapping[str, Mapping[str, Any]] | None,
    root: Path,
) -> dict[str, Any]:
    stem = Path(rel).stem
    caller_vol = _lookup(volume_metadata, rel, stem)
    caller_vol = normalize_metadata(caller_vol, source=f"volume_metadata[{rel!r}]") if caller_vol else {}
    side_vols: list[dict[str, Any]] = []
    for sc in sidecars:
        local = rel[len(sc.folder) + 1:] if sc.folder else rel
        entry = _lookup(sc.volumes, local, stem)
        if entry:
            side_vols.append(entry)
    attrs = normalize_metadata(facts["attrs"], source=str(root / rel), strict=False)

    name = caller_vol.get("dataset") or _resolve_dataset_arg(dataset, rel)
    if not name:
        name = next((v["dataset"] for v in side_vols if v.get("dataset")), None)
    if not name:
        name = next((sc.dataset for sc in sidecars if sc.dataset), None)
    if not name:
        name = attrs.get("dataset")
    if not name:
        raise InputError("no dataset name for this volume", path=root / rel, field="dataset",
                         expected="dataset=... from the caller, a sidecar 'dataset:' key "
                                  f"({SIDECAR_NAMES[0]}) or a 'dataset' file attribute")
    name = normalize_metadata({"dataset": name}, source=str(root / rel))["dataset"]

    meta: dict[str, Any] = {}
    if defaults and name in defaults:
        entry = defaults[name]
        meta.update(dataset_defaults(entry))
    for sc in reversed(sidecars):  # farthest first, nearest wins
        meta.update(sc.defaults)
    meta.update(facts["header"])
    acquisition = facts["attrs"].get("acquisition")
    if isinstance(acquisition, str) and acquisition.strip() and "protocol" not in facts["header"]:
        meta["protocol"] = acquisition.strip()
    patient = facts["attrs"].get("patient_id")
    if isinstance(patient, str) and patient.strip():
        meta["subject"] = patient.strip()
    meta.update(attrs)
    for entry in reversed(side_vols):
        meta.update(entry)
    meta.update(caller_vol)
    meta["dataset"] = name
    protocol = str(meta.get("protocol", ""))
    if not meta.get("contrast") and protocol:
        meta["contrast"] = contrast_from_protocol(protocol)
    if not meta.get("view") and protocol:
        meta["view"] = view_from_protocol(protocol)
    if not meta.get("view"):  # pool names of sliced 3D data end in their view (cc359_sagittal)
        meta["view"] = next((v for v in ("axial", "coronal", "sagittal") if name.endswith(f"_{v}")), "")
    if not meta.get("split"):
        meta["split"] = split_from_path(rel)
    if not meta.get("subject"):
        meta["subject"] = stem
    return meta


# ----------------------------------------------------------------------------- the index
def _str_array(values: Any) -> Any:
    import pyarrow as pa

    return pa.array([("" if v is None else str(v)) for v in values], type=pa.string())


class SliceIndex:
    """Slice rows with fast metadata selections (vectorised over the Arrow columns).

    ``data`` is a ``datasets.Dataset`` (memory-mapped when loaded from disk). Text columns
    are dictionary-encoded once per index object; a selection is then a lookup table over
    the few distinct values, gathered by the integer codes.
    """

    def __init__(self, data: Any, *, root: str | os.PathLike[str] | None = None,
                 info: Mapping[str, Any] | None = None, path: Path | None = None) -> None:
        needed = ("file", "volume", "slice", "volume_id", *SELECTABLE_COLUMNS, "num_slices", "multicoil", "volume_hash")
        missing = [c for c in needed if c not in data.column_names]
        if missing:
            raise InputError("not a slice index (columns missing)", path=path, got=missing)
        self.data = data
        self.root = None if root is None else Path(root)
        self.info: dict[str, Any] = dict(info or {})
        self.path = path
        self._codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._numbers: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the column caches (DataLoader workers rebuild what they use)."""
        state = self.__dict__.copy()
        state["_codes"], state["_numbers"] = {}, {}
        return state

    # --------------------------------------------------------------- basics
    def __len__(self) -> int:
        return int(self.data.num_rows)

    @property
    def column_names(self) -> list[str]:
        return list(self.data.column_names)

    def __repr__(self) -> str:
        where = f", path='{self.path}'" if self.path else ""
        return f"SliceIndex({len(self)} slices, {self.num_volumes} volumes, root='{self.root}'{where})"

    @property
    def num_volumes(self) -> int:
        ids = self.numbers("volume_id")
        return int(ids.max()) + 1 if ids.size else 0

    def _arrow(self, name: str) -> Any:
        if name not in self.data.column_names:
            raise InputError("no such column", field=name, expected=f"one of {self.column_names}")
        return self.data.data.column(name)

    def numbers(self, name: str) -> np.ndarray:
        """A numeric column as a numpy array (cached)."""
        if name not in self._numbers:
            col = self._arrow(name)
            arr = col.to_numpy() if col.num_chunks != 1 else col.chunk(0).to_numpy(zero_copy_only=False)
            self._numbers[name] = np.asarray(arr)
        return self._numbers[name]

    def codes(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A text column as ``(codes int32 [rows], values object [k])`` with ``values[codes]`` the column."""
        if name not in self._codes:
            import pyarrow.compute as pc

            col = self._arrow(name)
            values = pc.unique(col)
            codes = pc.index_in(col, value_set=values).to_numpy(zero_copy_only=False)
            self._codes[name] = (np.asarray(codes, dtype=np.int32), np.asarray(values.to_pylist(), dtype=object))
        return self._codes[name]

    def values(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Column values (text columns decoded) for all rows or the given row numbers."""
        if name in NUMERIC_COLUMNS or name not in (*STRING_COLUMNS, "volume", "file"):
            arr = self.numbers(name)
            return arr if rows is None else arr[rows]
        codes, cats = self.codes(name)
        return cats[codes if rows is None else codes[rows]]

    # ------------------------------------------------------------- filtering
    def _match_one(self, column: str, cond: tuple[Any, ...] | Range) -> np.ndarray:
        if column in NUMERIC_COLUMNS:
            col = self.numbers(column).astype(np.float64, copy=False)
            if isinstance(cond, Range):
                ok = np.ones(col.shape, dtype=bool)
                if cond.min is not None:
                    ok &= col >= cond.min
                if cond.max is not None:
                    ok &= col <= cond.max
                return ok
            ok = np.zeros(col.shape, dtype=bool)
            for v in cond:
                ok |= np.isnan(col) if v is None else np.abs(col - float(v)) < 1e-6
            return ok
        if isinstance(cond, Range):
            raise InputError("a range needs a numeric column", field=column)
        codes, cats = self.codes(column)
        lowered = np.array([str(c).lower() for c in cats], dtype=object)
        wanted = {str(v).lower() for v in cond if v is not None}
        lut = np.array([c in wanted for c in lowered], dtype=bool)
        if None in cond:
            lut |= lowered == ""
        return lut[codes] if lut.size else np.zeros(codes.shape, dtype=bool)

    def match(self, conditions: Mapping[str, Any] | Selection) -> np.ndarray:
        """Boolean mask of the rows meeting every condition (AND)."""
        if not isinstance(conditions, Selection):
            conditions = _as_selections([conditions])[0]
        mask = np.ones(len(self), dtype=bool)
        for column, cond in conditions.conditions.items():
            if column not in SELECTABLE_COLUMNS:
                raise InputError("unknown column", field=column, expected=f"one of {list(SELECTABLE_COLUMNS)}")
            mask &= self._match_one(column, cond)
        return mask

    def select(self, selections: Sequence[Mapping[str, Any]] | Sequence[Selection] | Any) -> np.ndarray:
        """Sorted row numbers matching any selection (OR of ANDs); ``max_slices`` is not applied here."""
        sels = _as_selections(selections)
        mask = np.zeros(len(self), dtype=bool)
        for sel in sels:
            mask |= self.match(sel)
        return np.flatnonzero(mask)

    def unknown_values(self, selections: Sequence[Selection]) -> dict[str, list[Any]]:
        """Per column, the condition values that occur nowhere in the index (typos, absent datasets)."""
        out: dict[str, list[Any]] = {}
        for sel in selections:
            for column, cond in sel.conditions.items():
                if isinstance(cond, Range):
                    continue
                if column in NUMERIC_COLUMNS:
                    col = self.numbers(column).astype(np.float64, copy=False)
                    absent = [v for v in cond if v is not None and not np.any(np.abs(col - float(v)) < 1e-6)]
                else:
                    _, cats = self.codes(column)
                    have = {str(c).lower() for c in cats}
                    absent = [v for v in cond if v is not None and str(v).lower() not in have]
                for v in absent:
                    if v not in out.setdefault(column, []):
                        out[column].append(v)
        return out

    # --------------------------------------------------------------- access
    def records(self, rows: Sequence[int] | np.ndarray) -> list[dict[str, Any]]:
        """Rows as dicts (for a few rows; use :meth:`values` for columns)."""
        import pyarrow as pa

        idx = pa.array(np.asarray(rows, dtype=np.int64))
        return self.data.data.table.take(idx).to_pylist()

    def file_path(self, rel: str) -> Path:
        return Path(rel) if self.root is None else self.root / rel

    def counts(self, rows: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Volumes and slices per dataset among ``rows`` (all rows when None)."""
        dcodes, names = self.codes("dataset")
        vids = self.numbers("volume_id")
        if rows is not None:
            dcodes, vids = dcodes[rows], vids[rows]
        out = []
        for code in np.unique(dcodes):
            sel = dcodes == code
            out.append({"dataset": str(names[code]), "volumes": int(np.unique(vids[sel]).size),
                        "slices": int(sel.sum())})
        return sorted(out, key=lambda r: r["dataset"])

    # ------------------------------------------------------------ build/save
    @classmethod
    def from_volumes(
        cls,
        volumes: Mapping[str, Any],
        *,
        root: str | os.PathLike[str] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> SliceIndex:
        """Expand a per-volume table into slice rows (vectorised).

        ``volumes`` maps column name -> one value per volume: ``file``, ``volume``, the text
        columns, ``field_strength``, ``coils``, ``height``, ``width``, ``num_slices``,
        ``multicoil``, ``first``/``stop`` (slice range kept) and ``volume_hash`` (uint64).
        """
        import datasets
        import pyarrow as pa
        from datasets.table import InMemoryTable

        required = ("file", "volume", *STRING_COLUMNS, *NUMERIC_COLUMNS, "num_slices", "multicoil", "first", "stop",
                    "volume_hash")
        missing = [k for k in required if k not in volumes]
        if missing:
            raise InputError("per-volume table lacks columns", field="volumes", expected=list(required), got=missing)
        n_vol = len(volumes["file"])
        lengths = {k: len(volumes[k]) for k in required if len(volumes[k]) != n_vol}
        if lengths:
            raise InputError("per-volume columns differ in length", field="volumes", expected=n_vol, got=lengths)
        first = np.asarray(volumes["first"], dtype=np.int64)
        stop = np.asarray(volumes["stop"], dtype=np.int64)
        counts = np.maximum(stop - first, 0)
        vol_of_row = np.repeat(np.arange(n_vol, dtype=np.int64), counts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if n_vol else np.zeros(0, np.int64)
        slice_no = first[vol_of_row] + (np.arange(vol_of_row.size, dtype=np.int64) - starts[vol_of_row])

        def text(name: str) -> Any:
            v = volumes[name]
            return v if isinstance(v, (pa.Array, pa.ChunkedArray)) else _str_array(v)

        vol_table = pa.table({
            "file": text("file"),
            "volume": text("volume"),
            **{c: text(c) for c in STRING_COLUMNS},
            "field_strength": pa.array(np.asarray(volumes["field_strength"], dtype=np.float32)),
            "coils": pa.array(np.asarray(volumes["coils"], dtype=np.int32)),
            "height": pa.array(np.asarray(volumes["height"], dtype=np.int32)),
            "width": pa.array(np.asarray(volumes["width"], dtype=np.int32)),
            "num_slices": pa.array(np.asarray(volumes["num_slices"], dtype=np.int32)),
            "multicoil": pa.array(np.asarray(volumes["multicoil"], dtype=bool)),
            "volume_hash": pa.array(np.asarray(volumes["volume_hash"], dtype=np.uint64)),
        })
        table = vol_table.take(pa.array(vol_of_row))
        table = table.add_column(2, "slice", pa.array(slice_no.astype(np.int32)))
        table = table.add_column(3, "volume_id", pa.array(vol_of_row.astype(np.int32)))
        # an explicit fingerprint spares datasets from hashing the whole table (time and a full copy)
        tag = str((info or {}).get("fingerprint") or uuid.uuid4().hex)[:32]
        data = datasets.Dataset(InMemoryTable(table), fingerprint=tag)
        return cls(data, root=root, info=info)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index (Arrow files + ``index.json``) to a new folder ``path``."""
        path = Path(path)
        with _quiet_datasets():
            self.data.save_to_disk(str(path / "slices"))
        info = dict(self.info)
        info["root"] = None if self.root is None else str(self.root)
        (path / "index.json").write_text(json.dumps(info, indent=1, default=str), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> SliceIndex:
        """Open a saved index memory-mapped; ``root`` overrides the stored data root."""
        import datasets

        path = Path(path)
        meta = path / "index.json"
        if not meta.is_file():
            raise InputError("not a saved slice index (index.json missing)", path=path)
        info = json.loads(meta.read_text(encoding="utf-8"))
        if info.get("version") not in (None, INDEX_VERSION):
            raise InputError("slice index written by another mrizoo version", path=meta,
                             expected=f"version {INDEX_VERSION}", got=info.get("version"))
        data = datasets.load_from_disk(str(path / "slices"))
        return cls(data, root=root if root is not None else info.get("root"), info=info, path=path)


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    import datasets

    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()


# ----------------------------------------------------------------------------- build with cache
def _settings_key(dataset: DatasetArg, defaults: Any, volume_metadata: Any, ratio: float, holdout: str) -> dict:
    if callable(dataset) and not isinstance(dataset, (str, Mapping)):
        ds_key: Any = f"callable:{getattr(dataset, '__module__', '')}.{getattr(dataset, '__qualname__', repr(dataset))}"
    else:
        ds_key = dataset if not isinstance(dataset, Mapping) else dict(sorted(dataset.items()))
    defaults_key = None
    if defaults:
        defaults_key = {k: dataset_defaults(v) for k, v in sorted(defaults.items())}
    return {"version": INDEX_VERSION, "dataset": ds_key, "defaults": defaults_key,
            "volume_metadata": volume_metadata, "train_ratio": ratio, "holdout": holdout}


def _fingerprint(root: Path, files: list[tuple[str, int, int]], sidecars: list[tuple[str, int, int]],
                 settings: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"root": str(root), "settings": settings}, sort_keys=True, default=str).encode())
    for rel, size, mtime in (*files, ("--sidecars--", 0, 0), *sidecars):
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def _load_facts(folder: Path) -> dict[tuple[str, int, int], dict[str, Any]]:
    path = folder / "facts.json"
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return {(r["file"], r["size"], r["mtime_ns"]): r for r in rows}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def build_slice_index(
    root: str | os.PathLike[str],
    *,
    dataset: DatasetArg = None,
    defaults: Mapping[str, Any] | None = None,
    volume_metadata: Mapping[str, Mapping[str, Any]] | None = None,
    train_ratio: float = 0.85,
    holdout: str = "val",
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
    rebuild: bool = False,
    on_error: Literal["raise", "skip"] = "raise",
) -> SliceIndex:
    """Index every ``.h5`` volume under ``root`` (recursively), reusing a cached index when unchanged.

    ``dataset``: the dataset name of every file (str), a mapping of folder (relative to
    ``root``) -> name (the longest matching folder wins), or a function of the relative
    path returning a name or None; otherwise names come from sidecars or a ``dataset`` file
    attribute. ``defaults``: dataset name -> dataset-level metadata (a mapping or a catalog
    entry, read with :func:`mrizoo.pools.columns.dataset_defaults`). ``volume_metadata``:
    file stem or relative path -> metadata of that volume (highest priority). Volumes
    without a split get the hash-based ``train``/``holdout`` split at ``train_ratio``.
    ``on_error="skip"`` leaves out unreadable files (listed in ``index.info['skipped']``).
    The result's ``info['reused']`` tells whether the cached index was used.
    """
    start = time.perf_counter()
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise InputError("data root is not a folder", path=root_path)
    root_path = root_path.resolve()
    if on_error not in ("raise", "skip"):
        raise InputError("must be 'raise' or 'skip'", field="on_error", got=repr(on_error))
    if not (isinstance(holdout, str) and re.fullmatch(r"[a-z0-9_]+", holdout) and holdout != "train"):
        raise InputError("invalid holdout split name", field="holdout", expected="e.g. 'val'", got=repr(holdout))
    if not (isinstance(train_ratio, (int, float)) and 0.0 < float(train_ratio) < 1.0):
        raise InputError("train ratio must lie strictly between 0 and 1", field="train_ratio", got=train_ratio)
    if volume_metadata is not None and not isinstance(volume_metadata, Mapping):
        raise InputError("must map file stems or paths to metadata", field="volume_metadata",
                         got=type(volume_metadata).__name__)
    if defaults is not None and not isinstance(defaults, Mapping):
        raise InputError("must map dataset names to metadata", field="defaults", got=type(defaults).__name__)
    files, sidecar_files = _walk(root_path)
    if not files:
        raise InputError("no .h5 volumes under the data root", path=root_path)
    settings = _settings_key(dataset, defaults, volume_metadata, float(train_ratio), holdout)
    fp = _fingerprint(root_path, files, sidecar_files, settings)
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root_key = hashlib.sha256(str(root_path).encode()).hexdigest()[:16]
    folder = base / root_key / fp[:24]
    stale = rebuild
    if cache and not rebuild and (folder / "index.json").is_file():
        try:
            index = SliceIndex.load(folder, root=root_path)
            if index.info.get("fingerprint") == fp:
                index.info["reused"] = True
                return index
        except (InputError, OSError, ValueError):
            pass
        stale = True  # unreadable or foreign copy: replace it below

    previous: dict[tuple[str, int, int], dict[str, Any]] = {}
    if cache and (base / root_key).is_dir():
        for old in (base / root_key).iterdir():
            if old.is_dir() and old.name != folder.name and not old.name.startswith("."):
                previous.update(_load_facts(old))

    sidecars = {sc.folder: sc for sc in (_read_sidecar(root_path, rel) for rel, _, _ in sidecar_files)}
    facts_rows: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    reread = 0
    for rel, size, mtime in files:
        fact = previous.get((rel, size, mtime))
        if fact is None:
            try:
                fact = {"file": rel, "size": size, "mtime_ns": mtime, **_read_facts(root_path / rel)}
            except InputError as err:
                if on_error == "raise":
                    raise
                skipped.append((rel, str(err)))
                continue
            reread += 1
        facts_rows.append(fact)
        meta = _merge_volume(rel, fact, sidecars=_nearest_sidecars(rel, sidecars), dataset=dataset,
                             defaults=defaults, volume_metadata=volume_metadata, root=root_path)
        shape = fact["shape"]
        n = int(shape[0])
        first = int(meta.get("skip_first", 0))
        stop = n - int(meta.get("skip_last", 0))
        if stop <= first:
            skipped.append((rel, f"no slices left after skip_first={first}, skip_last={meta.get('skip_last', 0)}"))
            continue
        records.append({
            **{c: meta.get(c, "") for c in STRING_COLUMNS},
            "file": rel, "volume": Path(rel).stem,
            "field_strength": meta.get("field_strength", math.nan),
            "coils": int(shape[1]) if len(shape) == 4 else 1,
            "height": int(shape[-2]), "width": int(shape[-1]), "num_slices": n,
            "multicoil": len(shape) == 4, "first": first, "stop": stop, "volume_hash": _hash64(rel),
        })
    if not records:
        raise InputError("no usable volumes under the data root", path=root_path,
                         got=f"{len(skipped)} skipped" if skipped else None)
    need = [i for i, r in enumerate(records) if not r["split"]]
    for i, split in zip(need, holdout_split([records[i]["subject"] for i in need], float(train_ratio), holdout)):
        records[i]["split"] = split

    columns = {c: [r[c] for r in records] for c in records[0]}
    info = {
        "version": INDEX_VERSION, "fingerprint": fp, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "num_files": len(files), "num_volumes": len(records), "reread_files": reread,
        "skipped": skipped, "settings": settings,
    }
    index = SliceIndex.from_volumes(columns, root=root_path, info=info)
    index.info["num_rows"] = len(index)
    index.info["build_seconds"] = round(time.perf_counter() - start, 3)
    if cache:
        tmp = base / root_key / f".tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            index.save(tmp)
            (tmp / "facts.json").write_text(json.dumps(facts_rows, default=str), encoding="utf-8")
            if folder.exists() and stale:
                shutil.rmtree(folder, ignore_errors=True)
            try:
                os.replace(tmp, folder)
            except OSError:  # another process wrote the same fingerprint meanwhile: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in (base / root_key).iterdir():
            if old.is_dir() and old.name != folder.name and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
        index = SliceIndex.load(folder, root=root_path)
    index.info["reused"] = False
    return index
