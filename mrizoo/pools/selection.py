"""A pool applied to a slice index: the training rows and the rows of each named test set."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mrizoo.errors import InputError
from mrizoo.pools.dataset import PoolDataset
from mrizoo.pools.sampling import PoolSampler
from mrizoo.pools.spec import PoolSpec, Selection, load_pool, pool_from_dict
from mrizoo.pools.table import SliceIndex

__all__ = ["PoolSelection", "cap_rows", "select_pool", "volume_order_keys"]

_U64 = np.uint64


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, elementwise on uint64 (a fast, well-spread integer hash)."""
    x = np.asarray(x, dtype=_U64).copy()
    with np.errstate(over="ignore"):
        x += _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        x ^= x >> _U64(31)
    return x


def volume_order_keys(volume_hash: np.ndarray, seed: int) -> np.ndarray:
    """Sort keys giving a seeded random order of volumes that does not depend on which others exist."""
    salt = _mix(np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=_U64))[0]
    return _mix(np.asarray(volume_hash, dtype=_U64) ^ salt)


def cap_rows(index: SliceIndex, rows: np.ndarray, max_slices: int, seed: int = 0) -> np.ndarray:
    """Keep whole volumes of ``rows``, in a seeded random order, while their slices total <= ``max_slices``."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size <= max_slices:
        return rows
    vids = index.numbers("volume_id")[rows]
    uniq, first, inverse, counts = np.unique(vids, return_index=True, return_inverse=True, return_counts=True)
    keys = volume_order_keys(index.numbers("volume_hash")[rows][first], seed)
    order = np.argsort(keys, kind="stable")
    keep_volume = np.zeros(uniq.size, dtype=bool)
    keep_volume[order[np.cumsum(counts[order]) <= max_slices]] = True
    return rows[keep_volume[inverse]]


def _select(index: SliceIndex, selections: tuple[Selection, ...], seed: int) -> np.ndarray:
    mask = np.zeros(len(index), dtype=bool)
    for sel in selections:
        rows = np.flatnonzero(index.match(sel))
        if sel.max_slices is not None:
            rows = cap_rows(index, rows, sel.max_slices, seed)
        mask[rows] = True
    return np.flatnonzero(mask)


@dataclass
class PoolSelection:
    """Row numbers of a pool's training set and test sets in ``index``, with notes on the match."""

    index: SliceIndex
    spec: PoolSpec
    train: np.ndarray
    test: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)

    def sets(self) -> dict[str, np.ndarray]:
        """``{"train": rows, "test:<name>": rows, ...}``."""
        return {"train": self.train, **{f"test:{k}": v for k, v in self.test.items()}}

    def table(self) -> list[dict[str, Any]]:
        """One row per (set, dataset): volumes and slices."""
        out = []
        for name, rows in self.sets().items():
            for row in self.index.counts(rows):
                out.append({"set": name, **row})
            if not rows.size:
                out.append({"set": name, "dataset": "-", "volumes": 0, "slices": 0})
        return out

    def leaks(self) -> dict[str, int]:
        """Per test set, how many of its volumes share a subject name with a training volume."""
        codes, _ = self.index.codes("subject")
        vids = self.index.numbers("volume_id")
        train_subjects = np.unique(codes[self.train])
        out = {}
        for name, rows in self.test.items():
            shared = np.isin(codes[rows], train_subjects)
            out[name] = int(np.unique(vids[rows][shared]).size)
        return out

    def dataset(self, which: str = "train", **slice_kwargs: Any) -> Any:
        """A :class:`~mrizoo.pools.dataset.PoolDataset` of the training rows or of test set ``which``."""
        return PoolDataset(self.index, self.rows(which), **slice_kwargs)

    def rows(self, which: str = "train") -> np.ndarray:
        if which == "train":
            return self.train
        name = which.removeprefix("test:")
        if name not in self.test:
            raise InputError("no such set in the pool", field="which",
                             expected=f"'train' or one of {list(self.test)}", got=repr(which))
        return self.test[name]

    def sampler(self, dataset: Any, batch_size: int, **kwargs: Any) -> Any:
        """A :class:`~mrizoo.pools.sampling.PoolSampler` over ``dataset`` with the pool's weights."""
        kwargs.setdefault("weights", dict(self.spec.weights) or None)
        return PoolSampler(dataset, batch_size, **kwargs)


def select_pool(index: SliceIndex, pool: PoolSpec | str | Mapping[str, Any]) -> PoolSelection:
    """Apply a pool (spec, shipped name or file path) to an index.

    Training rows: the OR of the ``train`` selections, each capped by its ``max_slices``,
    then each dataset capped by ``caps``. Test sets: the same without ``caps``.
    """
    if isinstance(pool, Mapping):
        pool = pool_from_dict(pool)
    elif not isinstance(pool, PoolSpec):
        pool = load_pool(pool)
    train = _select(index, pool.train, pool.seed)
    if pool.caps and train.size:
        dcodes, names = index.codes("dataset")
        keep = np.ones(train.size, dtype=bool)
        for name, cap in pool.caps.items():
            hit = np.flatnonzero([str(n).lower() == name for n in names])
            in_ds = np.isin(dcodes[train], hit)
            kept = cap_rows(index, train[in_ds], cap, pool.seed)
            keep[in_ds] = np.isin(train[in_ds], kept)
        train = train[keep]
    test = {name: _select(index, sels, pool.seed) for name, sels in pool.test.items()}
    sel = PoolSelection(index=index, spec=pool, train=train, test=test)

    def absent(where: str, selections: tuple[Selection, ...]) -> None:
        found = index.unknown_values(selections)
        if found:
            listed = "; ".join(f"{col} {vals}" for col, vals in found.items())
            sel.notes.append(f"{where}: values not in the index: {listed}")

    absent("train", pool.train)
    for name, sels in pool.test.items():
        absent(f"test set '{name}'", sels)
        if not test[name].size:
            sel.notes.append(f"test set '{name}' selects no slices")
    if pool.train and not train.size:
        sel.notes.append("the training selection matches no slices")
    present = {r["dataset"] for r in index.counts(train)} if train.size else set()
    if pool.weights:
        absent = sorted(set(pool.weights) - present)
        if absent:
            sel.notes.append(f"weights name datasets not in the training rows: {absent}")
        unweighted = sorted(present - set(pool.weights))
        if unweighted:
            sel.notes.append(f"training datasets without a weight (sampling needs one each): {unweighted}")
    for name, count in sel.leaks().items():
        if count:
            sel.notes.append(f"test set '{name}': {count} volume(s) share a subject with training volumes")
    return sel
