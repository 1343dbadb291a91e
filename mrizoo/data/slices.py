"""A slice-level dataset over fastMRI-convention volumes, and a volume-grouping batch sampler.

The index is built from the ``kspace`` dataset shapes only; every slice is read, masked and
turned into a target when it is requested, so constructing a dataset over thousands of
volumes costs one metadata read per file.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.errors import InputError
from mrizoo.metrics.region import center_crop  # one crop for data and metrics
from mrizoo.physics.coils import rss, sense_combine
from mrizoo.physics.fft import ifft2c

__all__ = [
    "Sample",
    "SampleBatch",
    "SliceDataset",
    "VolumeBatchSampler",
    "VolumeInfo",
    "center_crop",
    "collate_samples",
]

SeedMode = Literal["random", "filename", "sample"]


@dataclass
class Sample:
    """One slice: undersampled k-space, its mask, the target image and bookkeeping.

    ``kspace``: complex64 ``[C, H, W]`` with unsampled entries zero. ``mask``: bool
    ``[H, W]``. ``target``: float32 ``[h, w]``. ``max_value``: the data range for metrics
    (the volume's ``max`` attribute for RSS targets when stored, else the slice maximum).
    ``maps``: ESPIRiT maps ``[C, H, W]`` when computed (MVUE targets or ``with_maps``).
    """

    kspace: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor
    fname: str
    slice_index: int
    max_value: float
    maps: torch.Tensor | None = None


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


def _sample_seed(fname: str, slice_index: int, seed: int) -> int:
    digest = hashlib.sha256(f"{seed}:{fname}:{slice_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class SliceDataset(torch.utils.data.Dataset):
    """Slices of fastMRI volumes with retrospective undersampling and a chosen target.

    ``target``: ``"rss"`` (RSS of the fully sampled slice), ``"mvue"`` (magnitude of the
    SENSE combination with ESPIRiT maps estimated from the fully sampled centre; settings
    in ``espirit``, e.g. ``{"calib_width": 24}``), or the name of a stored target dataset
    (e.g. ``"reconstruction_rss"``). ``with_maps`` returns the ESPIRiT maps for any target.
    ``crop``: centre crop ``(h, w)`` of the target (None keeps the full image). ``mask``: a
    mask name of :mod:`mrizoo.masks` with ``mask_params`` (``acceleration`` is a shortcut
    for that parameter); None keeps every sample. Files whose stored ``mask`` shows they
    are undersampled always use that mask (and only stored targets make sense for them).
    ``seed_mode``: ``"random"`` draws a fresh mask seed per sample from a generator seeded
    with ``seed`` (training); ``"filename"`` uses fastMRI's per-file seed, one mask per
    volume (validation); ``"sample"`` derives a fixed seed from ``seed``, file and slice.
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
    ) -> None:
        if not isinstance(target, str) or not target:
            raise InputError("target must be 'rss', 'mvue' or a stored dataset name", field="target",
                             got=target)
        if seed_mode not in ("random", "filename", "sample"):
            raise InputError("unknown seed mode", field="seed_mode",
                             expected="'random', 'filename' or 'sample'", got=seed_mode)
        if crop is not None:
            if len(tuple(crop)) != 2 or any(int(c) < 1 for c in crop):
                raise InputError("crop must be two positive integers (h, w)", field="crop", got=crop)
            crop = (int(crop[0]), int(crop[1]))
        self.target = target
        self.crop = crop
        self.mask_name = mask
        self.mask_params = dict(mask_params or {})
        if acceleration is not None:
            if "acceleration" in self.mask_params:
                raise InputError("acceleration given twice (argument and mask_params)", field="acceleration")
            self.mask_params["acceleration"] = acceleration
        if self.mask_params and mask is None:
            raise InputError("mask parameters without a mask name", field="mask",
                             expected="a mask name from mrizoo.masks.list_masks()")
        if mask is not None:
            from mrizoo.masks import list_masks

            if mask not in list_masks():
                raise InputError("unknown mask", field="mask", expected=f"one of {list_masks()}",
                                 got=repr(mask))
        self.seed_mode = seed_mode
        self.seed = seed
        self.espirit = dict(espirit or {})
        self.with_maps = with_maps
        if target == "mvue" or with_maps:  # check the ESPIRiT settings now, not at the first item
            from mrizoo.physics.espirit import EspiritConfig

            try:
                EspiritConfig(**self.espirit)
            except TypeError as err:
                raise InputError("unknown ESPIRiT setting", field="espirit", got=str(err)) from None
        self._generator: torch.Generator | None = None
        self._generator_owner: tuple[int, int | None] | None = None

        self.volumes: list[VolumeInfo] = []
        self.examples: list[tuple[int, int]] = []
        for path in _list_files(paths_or_folder):
            with FastMRIVolume(path) as vol:
                info = VolumeInfo(path, vol.kspace_shape)
            vid = len(self.volumes)
            self.volumes.append(info)
            self.examples.extend((vid, s) for s in range(info.num_slices))

    # ---------------------------------------------------------------- indexing
    def __len__(self) -> int:
        return len(self.examples)

    @property
    def volume_ids(self) -> list[int]:
        """Volume number of every example (used to batch slices of one volume)."""
        return [v for v, _ in self.examples]

    # ------------------------------------------------------------------ masks
    def _random_seed(self) -> int:
        info = torch.utils.data.get_worker_info()
        owner = (os.getpid(), None if info is None else info.id)
        if self._generator is None or self._generator_owner != owner:
            gen = torch.Generator()
            if info is not None:  # distinct, reproducible stream per worker
                gen.manual_seed(int(info.seed) & 0x7FFFFFFFFFFFFFFF)
            elif self.seed is None:
                gen.seed()
            else:
                gen.manual_seed(int(self.seed))
            self._generator, self._generator_owner = gen, owner
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self._generator))

    def _mask_seed(self, fname: str, slice_index: int) -> int | tuple[int, ...]:
        if self.seed_mode == "filename":
            from mrizoo.masks import seed_from_name

            return tuple(seed_from_name(fname))
        if self.seed_mode == "sample":
            return _sample_seed(fname, slice_index, int(self.seed or 0))
        return self._random_seed()

    def _make_mask(
        self, vol: FastMRIVolume, shape: tuple[int, int], fname: str, slice_index: int
    ) -> tuple[torch.Tensor, bool]:
        """Mask ``[H, W]`` and whether it came from the file (already undersampled data)."""
        stored = vol.mask()
        measured = None if stored is None else (stored.expand(shape) if stored.ndim == 1 else stored).clone()
        label = vol.attrs.get("sampling")  # written with every volume: a stored mask may only mark zero bands
        if measured is not None and not bool(measured.all()) and label != "fully_sampled":
            return measured, True
        if self.mask_name is None:
            return (torch.ones(shape, dtype=torch.bool) if measured is None else measured), False
        from mrizoo.masks import create_mask

        seed = self._mask_seed(fname, slice_index)
        made = create_mask(self.mask_name, shape, seed=seed, **self.mask_params)
        m = torch.as_tensor(made.mask if hasattr(made, "mask") else made).to(torch.bool)
        if m.ndim == 1:
            m = m.expand(shape)
        if tuple(m.shape) != tuple(shape):
            raise InputError("mask function returned the wrong shape", field="mask",
                             expected=shape, got=tuple(m.shape))
        return m.clone(), False

    # ---------------------------------------------------------------- targets
    def _maps(self, full: torch.Tensor) -> torch.Tensor:
        if full.shape[0] == 1:  # one coil: the map is the unit image
            return torch.ones_like(full)
        from mrizoo.physics.espirit import espirit_maps

        return espirit_maps(full, **self.espirit)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} slices")
        vid, s = self.examples[index]
        info = self.volumes[vid]
        fname = info.path.name
        with FastMRIVolume(info.path) as vol:
            full = vol.kspace(s)
            if full.ndim == 2:
                full = full.unsqueeze(0)
            shape = (int(full.shape[-2]), int(full.shape[-1]))
            mask, from_file = self._make_mask(vol, shape, fname, s)
            maps = None
            if self.target in ("rss", "mvue"):
                if from_file:
                    raise InputError(
                        f"a '{self.target}' target needs fully sampled k-space but the stored mask "
                        "shows undersampled data", path=info.path, field="target",
                        expected="a stored target name, e.g. 'reconstruction_rss'",
                    )
                if self.target == "mvue" or self.with_maps:
                    maps = self._maps(full)
                image = ifft2c(full)
                tgt = rss(image) if self.target == "rss" else sense_combine(image, maps).abs()
            else:
                tgt = vol.target(s, self.target)
                if self.with_maps:
                    maps = self._maps(full)
            attrs = vol.attrs
        if self.crop is not None:
            try:
                tgt = center_crop(tgt, self.crop)
            except InputError as err:
                raise InputError(err.problem, path=info.path, field="crop", expected=err.expected,
                                 got=err.got) from None
        tgt = tgt.to(torch.float32).contiguous()
        if self.target in ("rss", "reconstruction_rss") and isinstance(attrs.get("max"), (int, float)):
            max_value = float(attrs["max"])
        else:
            max_value = float(tgt.max())
        kspace = torch.where(mask, full, torch.zeros((), dtype=full.dtype))
        return Sample(kspace=kspace, mask=mask, target=tgt, fname=fname, slice_index=s,
                      max_value=max_value, maps=maps)


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
