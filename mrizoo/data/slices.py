"""A slice-level dataset over fastMRI-convention volumes, and a volume-grouping batch sampler.

The index is built from the ``kspace`` dataset shapes only; every slice is read when it is
requested and handed to the dataset's transform (:mod:`mrizoo.data.transforms`; by default
masked and turned into a target), so constructing a dataset over thousands of volumes costs
one metadata read per file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.data.transforms import COMPUTED_TARGETS, Sample, SampleTransform, SeedMode, SliceRecord, check_crop
from mrizoo.errors import InputError
from mrizoo.metrics.region import center_crop  # one crop for data and metrics

__all__ = [
    "Sample",
    "SampleBatch",
    "SliceDataset",
    "VolumeBatchSampler",
    "VolumeInfo",
    "center_crop",
    "collate_samples",
]


@dataclass
class SampleBatch:
    """Samples of one size stacked along a new first axis."""

    kspace: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor
    fname: list[str]
    slice_index: torch.Tensor
    max_value: torch.Tensor
    maps: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.kspace.shape[0])


@dataclass(frozen=True)
class VolumeInfo:
    """A volume in the index: its path and ``kspace`` dataset shape."""

    path: Path
    kspace_shape: tuple[int, ...]

    @property
    def num_slices(self) -> int:
        return self.kspace_shape[0]

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.kspace_shape[-2], self.kspace_shape[-1]


def _list_files(paths_or_folder: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths_or_folder, (str, os.PathLike)):
        root = Path(paths_or_folder)
        if root.is_dir():
            files = sorted(p for p in root.iterdir() if p.suffix in (".h5", ".hdf5") and p.is_file())
            if not files:
                raise InputError("folder holds no .h5 volumes", path=root)
            return files
        if not root.exists():
            raise InputError("no such file or folder", path=root)
        return [root]
    files = [Path(p) for p in paths_or_folder]
    if not files:
        raise InputError("no volumes given", field="paths_or_folder",
                         expected="a folder or a list of .h5 files")
    return files


class SliceDataset(torch.utils.data.Dataset):
    """Slices of fastMRI volumes, each read as a :class:`~mrizoo.data.transforms.SliceRecord` and transformed.

    ``transform``: a callable applied to each record; its result is the item (fastMRI's
    ``SliceDataset(transform=...)`` convention, with one record argument instead of six).
    None uses :class:`~mrizoo.data.transforms.SampleTransform` built from this dataset's
    settings: retrospective undersampling and a chosen target, yielding
    :class:`~mrizoo.data.transforms.Sample` items.

    ``target``: ``"rss"`` (RSS of the fully sampled slice), ``"mvue"`` (magnitude of the
    SENSE combination with ESPIRiT maps estimated from the fully sampled centre; settings
    in ``espirit``, e.g. ``{"calib_width": 24}``), or the name of a stored target dataset
    (e.g. ``"reconstruction_rss"``), which is read into each record's ``target`` (also for
    a custom transform). ``with_maps`` returns the ESPIRiT maps for any target.
    ``crop``: centre crop ``(h, w)`` of the target (None keeps the full image). ``mask``: a
    mask name of :mod:`mrizoo.masks` with ``mask_params`` (``acceleration`` is a shortcut
    for that parameter); None keeps every sample. Files whose stored ``mask`` shows they
    are undersampled always use that mask (and only stored targets make sense for them).
    ``seed_mode``: ``"random"`` draws a fresh mask seed per sample from a generator seeded
    with ``seed`` (training); ``"filename"`` uses fastMRI's per-file seed, one mask per
    volume (validation); ``"sample"`` derives a fixed seed from ``seed``, file and slice.
    ``crop``, ``mask``, ``mask_params``, ``acceleration``, ``seed_mode``, ``seed``,
    ``espirit`` and ``with_maps`` configure the default transform: giving them with a
    custom ``transform`` is an error (set them on that transform instead). A
    :class:`~mrizoo.data.transforms.SampleTransform` given as ``transform`` sets the target.
    """

    def __init__(
        self,
        paths_or_folder: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        target: str = "rss",
        crop: tuple[int, int] | None = None,
        mask: str | None = None,
        mask_params: dict[str, Any] | None = None,
        acceleration: float | None = None,
        seed_mode: SeedMode = "random",
        seed: int | None = 0,
        espirit: dict[str, Any] | None = None,
        with_maps: bool = False,
        transform: Callable[[SliceRecord], Any] | None = None,
    ) -> None:
        if transform is None:
            transform = SampleTransform(target=target, crop=crop, mask=mask, mask_params=mask_params,
                                        acceleration=acceleration, seed_mode=seed_mode, seed=seed,
                                        espirit=espirit, with_maps=with_maps)
        else:
            if not callable(transform):
                raise InputError("a transform must be callable", field="transform",
                                 expected="a callable taking a SliceRecord", got=type(transform).__name__)
            if not isinstance(target, str) or not target:
                raise InputError("target must be 'rss', 'mvue' or a stored dataset name", field="target",
                                 got=target)
            given = [name for name, value in (
                ("crop", crop), ("mask", mask), ("mask_params", mask_params), ("acceleration", acceleration),
                ("seed_mode", None if seed_mode == "random" else seed_mode), ("seed", None if seed == 0 else seed),
                ("espirit", espirit), ("with_maps", with_maps or None),
            ) if value is not None]
            if given:
                raise InputError("a setting of the default transform given with a custom transform",
                                 field=given[0], expected="the setting on the transform itself")
            if isinstance(transform, SampleTransform) and target != transform.target:  # it names the stored image
                if target != "rss":
                    raise InputError("target differs from the transform's", field="target",
                                     expected=repr(transform.target), got=repr(target))
                target = transform.target
        self.target = target
        self.transform = transform

        self.volumes: list[VolumeInfo] = []
        self.examples: list[tuple[int, int]] = []
        for path in _list_files(paths_or_folder):
            with FastMRIVolume(path) as vol:
                info = VolumeInfo(path, vol.kspace_shape)
            vid = len(self.volumes)
            self.volumes.append(info)
            self.examples.extend((vid, s) for s in range(info.num_slices))

    @property
    def crop(self) -> tuple[int, int] | None:
        """The default transform's target crop (None for a custom transform without one)."""
        return getattr(self.transform, "crop", None)

    @crop.setter
    def crop(self, value: tuple[int, int] | None) -> None:
        if not isinstance(self.transform, SampleTransform):
            raise InputError("crop is a setting of the default transform", field="crop",
                             expected="a dataset using SampleTransform", got=type(self.transform).__name__)
        self.transform.crop = check_crop(value)

    # ---------------------------------------------------------------- indexing
    def __len__(self) -> int:
        return len(self.examples)

    @property
    def volume_ids(self) -> list[int]:
        """Volume number of every example (used to batch slices of one volume)."""
        return [v for v, _ in self.examples]

    # ----------------------------------------------------------------- items
    def record(self, index: int) -> SliceRecord:
        """The raw record of item ``index``: what the transform receives."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} slices")
        vid, s = self.examples[index]
        info = self.volumes[vid]
        with FastMRIVolume(info.path) as vol:
            full = vol.kspace(s)
            if full.ndim == 2:
                full = full.unsqueeze(0)
            stored = vol.mask()
            shape = (int(full.shape[-2]), int(full.shape[-1]))
            mask = None if stored is None else (stored.expand(shape) if stored.ndim == 1 else stored)
            target = None if self.target in COMPUTED_TARGETS else vol.target(s, self.target)
            attrs = vol.attrs
        return SliceRecord(kspace=full, mask=mask, target=target, attrs=attrs, fname=info.path.name,
                           slice_index=s, path=info.path)

    def __getitem__(self, index: int) -> Any:
        return self.transform(self.record(index))


def collate_samples(samples: Sequence[Sample]) -> SampleBatch:
    """Stack samples of equal size (e.g. the slices of one volume) into a batch."""
    if not samples:
        raise InputError("cannot collate an empty list of samples")
    shapes = {(tuple(x.kspace.shape), tuple(x.target.shape)) for x in samples}
    if len(shapes) > 1:
        raise InputError(
            "samples of different sizes cannot be stacked", field="samples",
            expected="one size per batch (use VolumeBatchSampler)", got=sorted(shapes),
        )
    has_maps = [x.maps is not None for x in samples]
    if any(has_maps) and not all(has_maps):
        raise InputError("some samples have maps and others not", field="maps")
    return SampleBatch(
        kspace=torch.stack([x.kspace for x in samples]),
        mask=torch.stack([x.mask for x in samples]),
        target=torch.stack([x.target for x in samples]),
        fname=[x.fname for x in samples],
        slice_index=torch.tensor([x.slice_index for x in samples]),
        max_value=torch.tensor([x.max_value for x in samples], dtype=torch.float32),
        maps=torch.stack([x.maps for x in samples]) if all(has_maps) else None,  # type: ignore[misc]
    )


class VolumeBatchSampler(torch.utils.data.Sampler):
    """Batches of dataset indices whose slices all come from one volume.

    Each volume's slices are (optionally shuffled and) cut into batches of ``batch_size``;
    the last, smaller batch of a volume is kept unless ``drop_last``. The batch order is
    shuffled across volumes. Every pass uses a generator seeded with ``seed + epoch``;
    the epoch advances after each pass (or is set with :meth:`set_epoch`).
    ``dataset`` needs ``volume_ids`` (one volume id per index), like :class:`SliceDataset`.
    """

    def __init__(
        self, dataset: Any, batch_size: int, shuffle: bool = True, seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError("batch size must be a positive integer", field="batch_size", got=batch_size)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        groups: dict[int, list[int]] = {}
        for index, vid in enumerate(dataset.volume_ids):
            groups.setdefault(int(vid), []).append(index)
        self._groups = list(groups.values())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batches(self, gen: torch.Generator | None) -> list[list[int]]:
        batches = []
        for group in self._groups:
            order = group
            if gen is not None:
                order = [group[i] for i in torch.randperm(len(group), generator=gen).tolist()]
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                if len(chunk) == self.batch_size or not self.drop_last:
                    batches.append(chunk)
        if gen is not None:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        gen = None
        if self.shuffle:
            gen = torch.Generator()
            gen.manual_seed(int(self.seed) + self.epoch)
        batches = self._batches(gen)
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        rounding = math.floor if self.drop_last else math.ceil
        return sum(rounding(len(g) / self.batch_size) for g in self._groups)
