"""Training data from a recipe's :class:`~mrizoo.train.recipe.DataSpec`.

- Sources: ``folders`` (fastMRI-convention ``.h5`` volumes), ``synthetic`` (volumes generated
  once into a cache folder with :func:`mrizoo.data.synthetic.make_test_volume`) or ``pool``
  (``<pool>`` or ``<pool>:<test set>``, applied by :mod:`mrizoo.pools` to the slice index of
  a data root; a pool's dataset weights and caps shape the training epochs). ``max_slices``
  keeps the first slices of every volume (e.g. rcGAN's first 8).
- Training sets hold fully sampled k-space; the trainer draws the undersampling masks itself
  (:func:`draw_masks`, a seed per batch), so the data order and the masks depend only on the
  recipe seed and the batch counter, which makes an interrupted run resume exactly.
- Validation sets are undersampled in the dataset with fastMRI's per-file mask seed, the same
  masks at every validation.
- Targets: ``crop`` centre-crops every target; with ``crop: null`` a volume that stores
  ``reconstruction_rss`` has its target cropped to that size (fastMRI's 320 x 320 for knee and
  brain), others keep the full image.
- Sharding: :class:`ShardedVolumeBatches` gives every process a disjoint share of the shuffled
  volume batches (each batch = slices of one volume); all processes get the same number of
  batches, padded by repeating the first batches of the epoch, so collective operations never
  wait on a process that ran out of data.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from mrizoo._atomic import atomic_file
from mrizoo.data.slices import Sample, SliceDataset, VolumeBatchSampler, center_crop, collate_samples
from mrizoo.data.synthetic import make_test_volume
from mrizoo.errors import InputError
from mrizoo.masks import create_mask
from mrizoo.pools import build_slice_index, select_pool
from mrizoo.train.recipe import DataSource, DataSpec, MaskSpec, SyntheticData

__all__ = [
    "TrainData",
    "TargetCrop",
    "ShardedVolumeBatches",
    "build_datasets",
    "source_files",
    "pool_dataset",
    "synthetic_volumes",
    "mask_params",
    "draw_masks",
    "derive_seed",
    "validation_batches",
    "make_loader",
]


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any printable parts (stable across processes, runs and platforms)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFFFFFFFFFFFFFF


# ----------------------------------------------------------------------------- sources


def _synthetic_key(spec: SyntheticData) -> str:
    text = repr((spec.volumes, spec.slices, tuple(spec.shape), spec.coils, spec.seed, spec.snr_db))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def synthetic_volumes(spec: SyntheticData, cache_dir: str | os.PathLike[str]) -> list[Path]:
    """The volumes of a synthetic source, generated once into ``cache_dir/synthetic-<key>/``.

    Volume ``i`` is the phantom with seed ``spec.seed * 1000 + i``; files are written under a
    temporary name and renamed, so an interrupted generation never leaves a broken volume.
    """
    folder = Path(cache_dir) / f"synthetic-{_synthetic_key(spec)}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(spec.volumes):
        path = folder / f"synthetic_{spec.seed:04d}_{i:04d}.h5"
        if not path.is_file():
            with atomic_file(path, suffix=".h5") as tmp:
                make_test_volume(tmp, num_slices=spec.slices, shape=tuple(spec.shape), num_coils=spec.coils,
                                 seed=spec.seed * 1000 + i, snr_db=spec.snr_db, overwrite=True)
        paths.append(path)
    return paths


POOL_ROOT_ENV = "MRIZOO_POOL_ROOT"


def pool_dataset(name: str, *, field: str, root: str | os.PathLike[str] | None,
                 indexes: dict[str, Any] | None = None, **slice_kwargs: Any) -> tuple[Any, Any]:
    """The slices of a pool set and the pool selection (for its sampling weights), via ``mrizoo.pools``.

    ``name`` is ``<pool>`` (its training set) or ``<pool>:<test set>``; ``<pool>`` is a shipped pool
    name or a pool YAML file. The pool is applied to the slice index of ``root`` (the folder
    holding the pool's datasets; default ``$MRIZOO_POOL_ROOT``), built once and cached by
    ``mrizoo.pools``. ``indexes`` memoises the index per root within one run.
    """
    root = root if root is not None else os.environ.get(POOL_ROOT_ENV)
    if not root:
        raise InputError("a pool data source needs the data root that holds the pool's datasets", field=field,
                         expected=f"--data-root DIR (or ${POOL_ROOT_ENV})", got=repr(name))
    pool, _, which = name.partition(":")
    key = str(Path(root).expanduser())
    cache = indexes if indexes is not None else {}
    if key not in cache:
        cache[key] = build_slice_index(key)
    selection = select_pool(cache[key], pool)
    try:
        return selection.dataset(which or "train", **slice_kwargs), selection
    except InputError as err:
        raise InputError(err.problem, path=err.path, field=field, expected=err.expected, got=err.got) from None


def source_files(source: DataSource, *, field: str, cache_dir: str | os.PathLike[str]) -> list[Path]:
    """The ``.h5`` volumes of one data source (``field`` names it in errors, e.g. ``data.val``)."""
    if source.synthetic is not None:
        return synthetic_volumes(source.synthetic, cache_dir)
    if source.pool is not None:
        raise InputError("a pool source names a pool set, not files", field=f"{field}.pool",
                         expected="pool_dataset()", got=repr(source.pool))
    files: list[Path] = []
    for entry in source.folders:
        p = Path(entry).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix in (".h5", ".hdf5") and q.is_file())
            if not found:
                raise InputError("folder holds no .h5 volumes", path=p, field=f"{field}.folders")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError("no such file or folder", path=p, field=f"{field}.folders")
    if not files:
        raise InputError("the data source names no volumes", field=field,
                         expected="one of pool, folders, synthetic")
    return files


# ------------------------------------------------------------------------------- masks


def _accepted_params(mask_type: str) -> tuple[str, ...] | None:
    from mrizoo.masks._registry import _entry  # the registry's parameter list of a mask family

    return _entry(mask_type).params


def mask_params(masks: MaskSpec, choice: int | None) -> dict[str, Any]:
    """Keyword arguments of :func:`mrizoo.masks.create_mask` for the recipe's masks.

    ``choice``: index into ``accelerations`` (paired with ``center_fractions``). ``None`` passes
    every pair to families that draw one per mask themselves (fastMRI's ``accelerations`` /
    ``center_fractions``), else the first pair.
    """
    accepted = _accepted_params(masks.type)
    takes = (lambda name: True) if accepted is None else (lambda name: name in accepted)
    fractions = list(masks.center_fractions)
    if len(fractions) == 1:
        fractions = fractions * len(masks.accelerations)
    params = dict(masks.params)
    if choice is None and len(masks.accelerations) > 1 and takes("accelerations"):
        params["accelerations"] = [float(a) for a in masks.accelerations]
        if fractions and takes("center_fractions"):
            params["center_fractions"] = [float(f) for f in fractions]
        return params
    i = 0 if choice is None else choice
    params["acceleration"] = float(masks.accelerations[i])
    if fractions and takes("center_fraction"):
        params["center_fraction"] = float(fractions[i])
    return params


def draw_masks(masks: MaskSpec, shape: tuple[int, int], count: int, seed: int,
               fnames: Sequence[str] | None = None, slices: Sequence[int] | None = None) -> torch.Tensor:
    """``count`` masks ``[count, H, W]`` (bool) for one training batch.

    With ``fresh_per_batch`` every slice gets a new mask drawn from ``seed`` (which the trainer
    derives from the recipe seed and the batch number), its family drawn by weight among the main
    one and ``masks.mix`` and its acceleration among that family's; otherwise each slice keeps one fixed mask per file and slice.
    """
    gen = torch.Generator().manual_seed(int(seed))
    families = (masks, *masks.mix)
    weights = torch.tensor([float(f.weight) for f in families], dtype=torch.float64)
    out = []
    for j in range(count):
        family = masks
        if masks.fresh_per_batch:
            if masks.mix:  # drawn only with a mix, so single-family recipes keep their masks
                family = families[int(torch.multinomial(weights, 1, generator=gen))]
            choice = int(torch.randint(len(family.accelerations), (1,), generator=gen))
            mask_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        else:
            key = (fnames[j] if fnames else "", slices[j] if slices is not None else j)
            mask_seed = derive_seed("mask", *key) & 0x7FFFFFFF
            choice = mask_seed % len(masks.accelerations)
        made = create_mask(family.type, shape, seed=mask_seed, **mask_params(family, choice))
        m = torch.as_tensor(made.mask).to(torch.bool)
        out.append(m.expand(shape) if m.ndim == 1 else m)
    return torch.stack(out)


# ----------------------------------------------------------------------------- datasets


class TargetCrop(torch.utils.data.Dataset):
    """A :class:`SliceDataset` whose targets are centre-cropped per volume.

    ``crop`` fixes one size for all volumes; ``None`` crops each volume to the size of its stored
    ``reconstruction_rss`` when it has one. The data range of a cropped target is the file's
    ``max`` attribute when present, else the cropped slice's maximum.
    """

    def __init__(self, dataset: SliceDataset, crop: tuple[int, int] | None) -> None:
        self.dataset = dataset
        n = len(dataset.volumes)
        self.crops: list[tuple[int, int] | None] = [None] * n
        self.has_max: list[bool] = [True] * n
        if crop is not None:  # one size: the dataset crops (and sets the data range) itself
            dataset.crop = (int(crop[0]), int(crop[1]))
            return
        for vid, info in enumerate(dataset.volumes):
            with h5py.File(info.path, "r") as f:  # metadata only
                stored = f.get("reconstruction_rss")
                if isinstance(stored, h5py.Dataset) and stored.ndim >= 2:
                    self.crops[vid] = (int(stored.shape[-2]), int(stored.shape[-1]))
                self.has_max[vid] = (dataset.target in ("rss", "reconstruction_rss")
                                     and np.ndim(f.attrs.get("max", [])) == 0)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def volume_ids(self) -> list[int]:
        return [int(v) for v, _ in self.dataset.examples]

    @property
    def volumes(self) -> list[Any]:
        return self.dataset.volumes

    @property
    def examples(self) -> list[tuple[int, int]]:
        return self.dataset.examples

    def __getitem__(self, index: int) -> Sample:
        sample = self.dataset[index]
        vid = self.dataset.examples[index][0]
        size = self.crops[vid]
        if size is not None and tuple(sample.target.shape[-2:]) != size:
            h, w = sample.target.shape[-2:]
            size = (min(size[0], h), min(size[1], w))
            sample.target = center_crop(sample.target, size).contiguous()
            if not self.has_max[vid]:
                sample.max_value = float(sample.target.max())
        return sample


@dataclass
class TrainData:
    """The datasets of one run: training (fully sampled), validation and named OOD sets.

    ``train_batches``: for pool training sets, ``(batch_size, seed) -> sampler`` of the pool's
    (weighted) global batch list; None for the plain one-volume batches.
    """

    train: TargetCrop
    val: TargetCrop
    ood: dict[str, TargetCrop]
    train_batches: Callable[[int, int], Any] | None = None


def _limit_slices(ds: SliceDataset, max_slices: int | None) -> None:
    if max_slices is not None:
        ds.examples = [(v, s) for v, s in ds.examples if s < max_slices]


def build_datasets(
    data: DataSpec, masks: MaskSpec, *, cache_dir: str | os.PathLike[str], with_maps: bool = False,
    undersample_val: bool = True, espirit: dict[str, Any] | None = None,
    data_root: str | os.PathLike[str] | None = None,
) -> TrainData:
    """Datasets for a recipe's data and masks; synthetic volumes go to ``cache_dir``.

    ``with_maps`` adds ESPIRiT maps to every sample (models that need coil sensitivities);
    ``undersample_val=False`` keeps the validation k-space fully sampled (score models);
    ``data_root`` is the folder of the datasets that pool sources select from.
    """
    indexes: dict[str, Any] = {}
    selections: dict[str, Any] = {}

    def dataset(source: DataSource, field: str, undersample: bool) -> TargetCrop:
        kwargs: dict[str, Any] = {"target": data.target, "crop": None, "with_maps": with_maps, "espirit": espirit}
        if undersample:
            kwargs.update(mask=masks.type, mask_params=mask_params(masks, None), seed_mode="filename")
        if source.pool is not None:
            ds, selections[field] = pool_dataset(source.pool, field=f"{field}.pool", root=data_root,
                                                 indexes=indexes, **kwargs)
            if source.max_slices is not None:
                raise InputError("max_slices does not apply to pools (a pool file caps its slices itself)",
                                 field=f"{field}.max_slices", got=source.max_slices)
        else:
            ds = SliceDataset(source_files(source, field=field, cache_dir=cache_dir), **kwargs)
            _limit_slices(ds, source.max_slices)
        if len(ds) == 0:
            raise InputError("the data source holds no slices", field=field)
        return TargetCrop(ds, data.crop)

    train = dataset(data.train, "data.train", False)
    train_batches: Callable[[int, int], Any] | None = None
    if "data.train" in selections:
        sel, inner = selections["data.train"], train.dataset

        def pool_batches(batch_size: int, seed: int) -> Any:
            return sel.sampler(inner, batch_size, seed=seed, num_replicas=1, rank=0)

        train_batches = pool_batches

    return TrainData(
        train=train,
        val=dataset(data.val, "data.val", undersample_val),
        ood={name: dataset(src, f"data.ood.{name}", undersample_val) for name, src in data.ood.items()},
        train_batches=train_batches,
    )


# ------------------------------------------------------------------------------ batching


class ShardedVolumeBatches(torch.utils.data.Sampler):
    """This process's share of the shuffled one-volume batches of an epoch.

    Every process builds the same epoch order (a :class:`VolumeBatchSampler` seeded with
    ``seed + epoch``), pads it by repeating its first batches to a multiple of
    ``num_replicas * multiple`` and takes every ``num_replicas``-th batch from ``rank``: the
    shares are disjoint except for the padding, and every process gets a multiple of
    ``multiple`` batches (the gradient-accumulation count, so an epoch ends on an optimizer
    step). :meth:`set_position` starts an epoch after its first ``start`` batches (resuming
    mid-epoch).
    """

    def __init__(self, dataset: Any, batch_size: int, *, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0, shuffle: bool = True, multiple: int = 1, base: Any = None) -> None:
        if not 0 <= rank < num_replicas:
            raise InputError("rank outside the process group", field="rank",
                             expected=f"0..{num_replicas - 1}", got=rank)
        # the global batch list of an epoch: any sampler with set_epoch (e.g. a pool's weighted one)
        self.sampler = base if base is not None else VolumeBatchSampler(dataset, batch_size, shuffle=shuffle,
                                                                          seed=seed)
        self.num_replicas = num_replicas
        self.rank = rank
        self.multiple = max(1, int(multiple))
        self.epoch = 0
        self.start = 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of ``epoch`` (all of them, ignoring the start position)."""
        self.sampler.set_epoch(epoch)
        batches = [[int(i) for i in b] for b in iter(self.sampler)]
        if not batches:
            return []
        total = len(self) * self.num_replicas
        padded = batches + [batches[i % len(batches)] for i in range(total - len(batches))]
        return padded[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.epoch_batches(self.epoch)[self.start:])

    def __len__(self) -> int:
        """Batches per process and epoch."""
        group = self.num_replicas * self.multiple
        return math.ceil(len(self.sampler) / group) * self.multiple


def validation_batches(dataset: Any, batch_size: int, *, num_replicas: int = 1,
                       rank: int = 0) -> list[list[int]]:
    """Batches of consecutive slices of the volumes this process validates (volume ``v % num_replicas == rank``)."""
    groups: dict[int, list[int]] = {}
    for index, (vid, s) in enumerate(dataset.examples):
        groups.setdefault(int(vid), []).append(index)
    out = []
    for vid in sorted(groups):
        if vid % num_replicas != rank:
            continue
        idx = sorted(groups[vid], key=lambda i: dataset.examples[i][1])
        out.extend(idx[i:i + batch_size] for i in range(0, len(idx), batch_size))
    return out


def make_loader(dataset: Any, batch_sampler: Any, num_workers: int = 0, seed: int = 0) -> torch.utils.data.DataLoader:
    """A loader of :class:`~mrizoo.data.slices.SampleBatch` over a batch sampler (or a list of batches).

    The loader draws its worker seeds from its own generator (``seed``), never from the global
    one, so creating a loader does not change the random stream of training.
    """
    return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate_samples,
                                       num_workers=num_workers, persistent_workers=False,
                                       generator=torch.Generator().manual_seed(int(seed) & 0x7FFFFFFF))
