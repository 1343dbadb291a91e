"""Batch sampling for training on a pool: one volume per batch, dataset weights, sharding.

A batch holds slices of ONE volume (slices of a volume share a size, so they stack), as in
Lin & Heckel's training: each volume's slices are shuffled and cut into batches of
``batch_size`` (the last one smaller unless ``drop_last``) and the batches are shuffled.

Weights (``{dataset: w}``) set the share of each dataset among the epoch's batches: dataset
``d`` gets ``round(num_batches * w_d / sum w)`` batches (largest-remainder rounding, so the
shares are exact per epoch), drawn from its own batches without replacement and reshuffled
when they run out (oversampling) or cut short (undersampling). ``caps`` (``{dataset:
slices}``) bound a dataset's slices per epoch. Every epoch is a pure function of
``(seed, epoch)``, drawn from a PCG64 bit stream whose output numpy keeps stable across
versions, so all processes compute the same global batch list.

Sharding (``num_replicas`` > 1): process ``rank`` takes batches ``rank, rank + R, ...`` of
the global list, so no two processes share a batch. To give every process the same number
of batches, ``even="pad"`` (default) repeats batches from the start of the list until the
count divides by ``R`` (at most ``R - 1`` repeats, the only batches seen twice), and
``even="drop"`` leaves out the last ``count mod R`` batches. ``num_replicas=None`` reads the
world size and rank from ``torch.distributed`` when it is initialised. With
``accelerate``, whose ``prepare`` shards batch samplers itself (also by taking every R-th
batch), pass ``num_replicas=1``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from mrizoo.errors import InputError

__all__ = ["PoolSampler", "apportion"]


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder, ties to the first)."""
    w = np.asarray(weights, dtype=np.float64)
    if total < 0 or w.size == 0 or (w < 0).any() or not w.sum() > 0:
        raise InputError("cannot apportion", field="weights", expected="non-negative weights, one > 0",
                         got=list(weights))
    quota = total * w / w.sum()
    base = np.floor(quota).astype(np.int64)
    rest = total - int(base.sum())
    order = np.lexsort((np.arange(w.size), -(quota - base)))
    base[order[:rest]] += 1
    return base.tolist()


class PoolSampler(torch.utils.data.Sampler):
    """Batches of item indices, each from one volume, optionally weighted by dataset and sharded.

    ``source``: an object with ``volume_ids`` (one volume id per item, e.g. a
    :class:`~mrizoo.pools.dataset.PoolDataset`, whose ``dataset_names`` give the labels)
    or the volume ids themselves. ``labels``: the dataset of every item (needed for
    ``weights`` and ``caps``). ``num_batches``: the global batches per epoch with weights
    (default: as many as an unweighted epoch). The epoch advances after each pass; use
    :meth:`set_epoch` to set it.
    """

    def __init__(
        self,
        source: Any,
        batch_size: int,
        *,
        labels: Sequence[Any] | np.ndarray | None = None,
        weights: Mapping[str, float] | None = None,
        caps: Mapping[str, int] | None = None,
        num_batches: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
        even: Literal["pad", "drop"] = "pad",
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError("batch size must be a positive integer", field="batch_size", got=batch_size)
        vids = getattr(source, "volume_ids", source)
        self._vids = np.asarray(vids, dtype=np.int64).reshape(-1)
        if labels is None:
            labels = getattr(source, "dataset_names", None)
        if labels is not None:
            labels = np.asarray(labels).reshape(-1)
            if labels.size != self._vids.size:
                raise InputError("one label per item needed", field="labels", expected=self._vids.size,
                                 got=labels.size)
            self._names, self._labels = np.unique(labels.astype(str), return_inverse=True)
        else:
            self._names, self._labels = np.array(["all"]), np.zeros(self._vids.size, dtype=np.int64)
        if (weights or caps) and labels is None:
            raise InputError("weights and caps need the dataset of every item", field="labels",
                             expected="labels=... or a source with dataset_names")
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        if even not in ("pad", "drop"):
            raise InputError("must be 'pad' or 'drop'", field="even", got=repr(even))
        self.even = even
        if num_replicas is None:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                num_replicas = torch.distributed.get_world_size()
                rank = torch.distributed.get_rank() if rank is None else rank
            else:
                num_replicas = 1
        rank = 0 if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
            raise InputError("must be a positive integer", field="num_replicas", got=num_replicas)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise InputError("rank out of range", field="rank", expected=f"0 <= rank < {num_replicas}", got=rank)
        self.num_replicas, self.rank = num_replicas, rank
        self.weights = self._check_weights(weights)
        self.caps = self._check_caps(caps)
        if num_batches is not None and (isinstance(num_batches, bool) or not isinstance(num_batches, int)
                                        or num_batches < 1):
            raise InputError("must be a positive integer", field="num_batches", got=num_batches)
        if num_batches is not None and self.weights is None:
            raise InputError("num_batches sets the epoch length of weighted sampling", field="num_batches",
                             expected="weights=... as well")
        self.num_batches = num_batches
        self.epoch = 0
        self._cache: tuple[int, list[np.ndarray]] | None = None

    # ------------------------------------------------------------- settings
    def _check_weights(self, weights: Mapping[str, float] | None) -> np.ndarray | None:
        if not weights:
            return None
        present = [str(n) for n in self._names]
        missing = [n for n in present if n not in weights]
        if missing:
            raise InputError("every dataset of the pool needs a weight", field="weights",
                             expected=f"weights for {present}", got=f"none for {missing}")
        w = []
        for n in present:
            v = weights[n]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0):
                raise InputError("must be a number >= 0", field=f"weights.{n}", got=repr(v))
            w.append(float(v))
        if not any(v > 0 for v in w):
            raise InputError("all weights of the pool's datasets are zero", field="weights")
        return np.asarray(w)

    def _check_caps(self, caps: Mapping[str, int] | None) -> np.ndarray | None:
        if not caps:
            return None
        out = np.full(len(self._names), np.iinfo(np.int64).max, dtype=np.int64)
        for i, n in enumerate(self._names):
            if str(n) in caps:
                v = caps[str(n)]
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise InputError("must be a positive number of slices", field=f"caps.{n}", got=repr(v))
                out[i] = v
        return out

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    # ------------------------------------------------------------- batches
    def _volume_batches(self, items: np.ndarray, stream: np.random.PCG64 | None) -> list[np.ndarray]:
        """``items`` cut into batches, each from one volume (random order inside volumes if ``stream``)."""
        if items.size == 0:
            return []
        vids = self._vids[items]
        tie = stream.random_raw(items.size) if stream is not None else items
        order = np.lexsort((tie, vids))
        items, vids = items[order], vids[order]
        new_volume = np.concatenate([[True], vids[1:] != vids[:-1]])
        starts = np.flatnonzero(new_volume)
        lengths = np.diff(np.append(starts, items.size))
        position = np.arange(items.size) - np.repeat(starts, lengths)
        chunk = position // self.batch_size
        cut = np.flatnonzero(new_volume[1:] | (chunk[1:] != chunk[:-1])) + 1
        batches = np.split(items, cut)
        if self.drop_last:
            batches = [b for b in batches if b.size == self.batch_size]
        return batches

    def _shuffled(self, batches: list[np.ndarray], stream: np.random.PCG64 | None) -> list[np.ndarray]:
        if stream is None or len(batches) < 2:
            return batches
        return [batches[i] for i in np.argsort(stream.random_raw(len(batches)), kind="stable")]

    def _unweighted_count(self) -> int:
        _, counts = np.unique(self._vids, return_counts=True)
        if self.drop_last:
            return int((counts // self.batch_size).sum())
        return int((-(-counts // self.batch_size)).sum())

    def global_batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """All processes' batches of an epoch, in order, before sharding."""
        epoch = self.epoch if epoch is None else int(epoch)
        stream = np.random.PCG64(np.random.SeedSequence([self.seed & 0xFFFFFFFF, epoch & 0xFFFFFFFF])) \
            if self.shuffle else None
        per_label = [np.flatnonzero(self._labels == k) for k in range(len(self._names))]
        groups: list[list[np.ndarray]] = []
        if self.weights is None:
            groups = [self._shuffled(self._volume_batches(items, stream), stream) for items in per_label]
        else:
            total = self.num_batches or self._unweighted_count()
            for items, n in zip(per_label, apportion(total, self.weights)):
                picked: list[np.ndarray] = []
                while len(picked) < n:
                    cycle = self._shuffled(self._volume_batches(items, stream), stream)
                    if not cycle:
                        break
                    picked.extend(cycle[: n - len(picked)])
                groups.append(picked)
        if self.caps is not None:
            for k, batches in enumerate(groups):
                sizes = np.cumsum([b.size for b in batches])
                groups[k] = batches[: int(np.searchsorted(sizes, self.caps[k], side="right"))]
        flat = [b for g in groups for b in g]
        return self._shuffled(flat, stream)

    def _mine(self) -> list[np.ndarray]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        batches = self.global_batches()
        r = self.num_replicas
        if r > 1 and batches:
            if self.even == "pad":
                extra = (-len(batches)) % r
                batches = batches + [batches[i % len(batches)] for i in range(extra)]
            else:
                batches = batches[: len(batches) - len(batches) % r]
        mine = batches[self.rank :: r]
        self._cache = (self.epoch, mine)
        return mine

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._mine()
        self.epoch += 1
        return iter([b.tolist() for b in mine])

    def __len__(self) -> int:
        return len(self._mine())
