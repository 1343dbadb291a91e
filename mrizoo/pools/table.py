"""The slice index itself: one row per 2D slice, an Arrow table with vectorised selections.

Stored with the Hugging Face ``datasets`` library and memory-mapped when loaded. Columns:
``file`` (path relative to the data root), ``volume`` (file stem), ``slice``, ``volume_id``,
the metadata columns of :mod:`mrizoo.pools.columns`, ``height``, ``width``, ``coils``,
``num_slices`` (of the file), ``multicoil`` and ``volume_hash``. Building one from a data
root (scanning, metadata, cache) is :func:`mrizoo.pools.index.build_slice_index`.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mrizoo.errors import InputError
from mrizoo.pools.columns import NUMERIC_COLUMNS, SELECTABLE_COLUMNS, STRING_COLUMNS
from mrizoo.pools.spec import Range, Selection, _as_selections

__all__ = ["INDEX_VERSION", "SliceIndex"]

INDEX_VERSION = 1


# ----------------------------------------------------------------------------- the index
def _str_array(values: Any) -> Any:
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
        # datasets takes ~2 s to import: only when an index is built
        import datasets

        # imported on use: a heavy package that most calls of this module do not need
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
        import datasets  # ~2 s to import: only when an index is read

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
    import datasets  # ~2 s to import: only when an index is written

    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()

