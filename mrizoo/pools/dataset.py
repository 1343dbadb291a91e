"""A torch Dataset serving the rows of a slice index through :class:`~mrizoo.data.SliceDataset`.

Shapes come from the index, so creating a dataset over a whole pool opens one file (to let
:class:`SliceDataset` check the settings), not every volume; each slice is read lazily when
it is requested, with SliceDataset's masks, targets and random-mask seeding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mrizoo.data.slices import SliceDataset, VolumeInfo
from mrizoo.errors import InputError
from mrizoo.pools.table import SliceIndex

__all__ = ["PoolDataset"]


class _Examples(Sequence):
    """``(volume number, slice index)`` per item, backed by two numpy arrays."""

    def __init__(self, volumes: np.ndarray, slices: np.ndarray) -> None:
        self._v, self._s = volumes, slices

    def __len__(self) -> int:
        return int(self._v.size)

    def __getitem__(self, i: Any) -> tuple[int, int]:
        if isinstance(i, slice):
            return [(int(v), int(s)) for v, s in zip(self._v[i], self._s[i])]  # type: ignore[return-value]
        return int(self._v[i]), int(self._s[i])


class PoolDataset(SliceDataset):
    """Slices ``rows`` of ``index`` (all rows when None) as :class:`~mrizoo.data.Sample` items.

    Keyword arguments are those of :class:`SliceDataset` (``target``, ``crop``, ``mask``,
    ``acceleration``, ``seed_mode``, ...). ``volume_ids`` (one number per item, for
    batching by volume) and ``dataset_names`` (per item, for dataset weights) feed
    :class:`~mrizoo.pools.sampling.PoolSampler`; :meth:`metadata` gives an item's index row.
    """

    def __init__(self, index: SliceIndex, rows: Sequence[int] | np.ndarray | None = None, **kwargs: Any) -> None:
        if index.root is None:
            raise InputError("the index has no data root; load it with root=...", field="root")
        rows = np.arange(len(index), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size == 0:
            raise InputError("the selection holds no slices", field="rows", expected="at least one row")
        if rows.min() < 0 or rows.max() >= len(index):
            raise InputError("row numbers out of range", field="rows", expected=f"0..{len(index) - 1}")
        file_codes, files = index.codes("file")
        vol_ids = index.numbers("volume_id")[rows]
        uniq, first, inverse = np.unique(vol_ids, return_index=True, return_inverse=True)
        first_rows = rows[first]
        paths = [index.file_path(str(f)) for f in files[file_codes[first_rows]]]
        # SliceDataset validates its settings and reads one file's shape; the rest comes from the index.
        super().__init__([paths[0]], **kwargs)
        n, c = index.numbers("num_slices")[first_rows], index.numbers("coils")[first_rows]
        h, w = index.numbers("height")[first_rows], index.numbers("width")[first_rows]
        multi = index.numbers("multicoil")[first_rows]
        shapes = [(int(n[i]), int(c[i]), int(h[i]), int(w[i])) if multi[i] else (int(n[i]), int(h[i]), int(w[i]))
                  for i in range(len(paths))]
        self.volumes = [VolumeInfo(p, shape) for p, shape in zip(paths, shapes)]
        self.examples = _Examples(inverse.astype(np.int64), index.numbers("slice")[rows].astype(np.int64))
        self.index = index
        self.rows = rows
        self._dataset_names = index.values("dataset", rows).astype(str)

    @property
    def volume_ids(self) -> np.ndarray:  # type: ignore[override]
        """Volume number (0..num volumes-1) of every item."""
        return self.examples._v  # type: ignore[attr-defined]

    @property
    def dataset_names(self) -> np.ndarray:
        """Dataset name of every item."""
        return self._dataset_names

    def metadata(self, i: int) -> dict[str, Any]:
        """The index row of item ``i`` (file, volume, slice, dataset, contrast, ...)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} slices")
        return self.index.records([int(self.rows[i])])[0]
