"""Slice transforms: what :class:`~mrizoo.data.slices.SliceDataset` makes of each slice it reads.

A dataset reads one :class:`SliceRecord` per item (the slice's k-space as stored, the stored
mask, the stored target, the file attributes, the file name and the slice index) and returns
``transform(record)``, as fastMRI's ``SliceDataset(transform=...)`` does. Any callable taking
a record works. The default, :class:`SampleTransform`, undersamples the k-space with a mask
(the file's own when the data are already undersampled), computes the target (RSS, MVUE or a
stored image) and returns a :class:`Sample`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from mrizoo.errors import InputError
from mrizoo.masks import create_mask, list_masks, seed_from_name
from mrizoo.metrics.region import center_crop  # one crop for data and metrics
from mrizoo.physics.coils import rss, sense_combine
from mrizoo.physics.espirit import EspiritConfig, espirit_maps
from mrizoo.physics.fft import ifft2c

__all__ = ["COMPUTED_TARGETS", "Sample", "SampleTransform", "SeedMode", "SliceRecord"]

SeedMode = Literal["random", "filename", "sample"]
COMPUTED_TARGETS = ("rss", "mvue")  # targets computed from fully sampled k-space; others are stored


@dataclass
class SliceRecord:
    """One slice as read from its file, before any transform.

    ``kspace``: complex64 ``[C, H, W]`` as stored (``C = 1`` for single-coil files), fully
    sampled unless the file holds undersampled data. ``mask``: the file's stored ``mask`` as
    bool ``[H, W]`` (a 1D mask repeated over rows), None when the file has none. ``target``:
    the slice of the stored image named by the dataset's ``target`` (float32 ``[h, w]``), None
    for the computed targets ``"rss"`` and ``"mvue"``. ``attrs``: the file attributes.
    ``fname``: the file name; ``slice_index``: the slice number; ``path``: the file.
    """

    kspace: torch.Tensor
    mask: torch.Tensor | None
    target: torch.Tensor | None
    attrs: dict[str, Any]
    fname: str
    slice_index: int
    path: Path


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


def _sample_seed(fname: str, slice_index: int, seed: int) -> int:
    digest = hashlib.sha256(f"{seed}:{fname}:{slice_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def check_crop(crop: Any) -> tuple[int, int] | None:
    """``crop`` as ``(h, w)`` positive integers (None passes), else InputError on field ``crop``."""
    if crop is None:
        return None
    if len(tuple(crop)) != 2 or any(int(c) < 1 for c in crop):
        raise InputError("crop must be two positive integers (h, w)", field="crop", got=crop)
    return int(crop[0]), int(crop[1])


class SampleTransform:
    """The default slice transform: retrospective undersampling and a chosen target -> :class:`Sample`.

    ``target``: ``"rss"`` (RSS of the fully sampled slice), ``"mvue"`` (magnitude of the
    SENSE combination with ESPIRiT maps estimated from the fully sampled centre; settings
    in ``espirit``, e.g. ``{"calib_width": 24}``), or the name of a stored target dataset
    (e.g. ``"reconstruction_rss"``, read by the dataset into the record). ``with_maps`` adds
    the ESPIRiT maps for any target. ``crop``: centre crop ``(h, w)`` of the target (None
    keeps the full image). ``mask``: a mask name of :mod:`mrizoo.masks` with ``mask_params``
    (``acceleration`` is a shortcut for that parameter); None keeps every sample. A record
    whose stored mask shows undersampled data always uses that mask (and only stored
    targets make sense for it). ``seed_mode``: ``"random"`` draws a fresh mask seed per
    sample from a generator seeded with ``seed`` (training; one stream per DataLoader
    worker); ``"filename"`` uses fastMRI's per-file seed, one mask per volume (validation);
    ``"sample"`` derives a fixed seed from ``seed``, file and slice.
    """

    def __init__(
        self,
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
        self.target = target
        self.crop = check_crop(crop)
        self.mask_name = mask
        self.mask_params = dict(mask_params or {})
        if acceleration is not None:
            if "acceleration" in self.mask_params:
                raise InputError("acceleration given twice (argument and mask_params)", field="acceleration")
            self.mask_params["acceleration"] = acceleration
        if self.mask_params and mask is None:
            raise InputError("mask parameters without a mask name", field="mask",
                             expected="a mask name from mrizoo.masks.list_masks()")
        if mask is not None and mask not in list_masks():
            raise InputError("unknown mask", field="mask", expected=f"one of {list_masks()}", got=repr(mask))
        self.seed_mode = seed_mode
        self.seed = seed
        self.espirit = dict(espirit or {})
        self.with_maps = with_maps
        if target == "mvue" or with_maps:  # check the ESPIRiT settings now, not at the first item
            try:
                EspiritConfig(**self.espirit)
            except TypeError as err:
                raise InputError("unknown ESPIRiT setting", field="espirit", got=str(err)) from None
        self._generator: torch.Generator | None = None
        self._generator_owner: tuple[int, int | None] | None = None

    def __repr__(self) -> str:
        return (f"SampleTransform(target={self.target!r}, crop={self.crop}, mask={self.mask_name!r}, "
                f"mask_params={self.mask_params}, seed_mode={self.seed_mode!r}, seed={self.seed})")

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
            return tuple(seed_from_name(fname))
        if self.seed_mode == "sample":
            return _sample_seed(fname, slice_index, int(self.seed or 0))
        return self._random_seed()

    def make_mask(self, record: SliceRecord) -> tuple[torch.Tensor, bool]:
        """Mask ``[H, W]`` for ``record`` and whether it came from the file (already undersampled data)."""
        shape = (int(record.kspace.shape[-2]), int(record.kspace.shape[-1]))
        measured = None if record.mask is None else record.mask.clone()
        label = record.attrs.get("sampling")  # written with every volume: a stored mask may only mark zero bands
        if measured is not None and not bool(measured.all()) and label != "fully_sampled":
            return measured, True
        if self.mask_name is None:
            return (torch.ones(shape, dtype=torch.bool) if measured is None else measured), False
        seed = self._mask_seed(record.fname, record.slice_index)
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
        return espirit_maps(full, **self.espirit)

    def __call__(self, record: SliceRecord) -> Sample:
        full = record.kspace
        mask, from_file = self.make_mask(record)
        maps = None
        if self.target in COMPUTED_TARGETS:
            if from_file:
                raise InputError(
                    f"a '{self.target}' target needs fully sampled k-space but the stored mask "
                    "shows undersampled data", path=record.path, field="target",
                    expected="a stored target name, e.g. 'reconstruction_rss'",
                )
            if self.target == "mvue" or self.with_maps:
                maps = self._maps(full)
            image = ifft2c(full)
            tgt = rss(image) if self.target == "rss" else sense_combine(image, maps).abs()
        else:
            if record.target is None:
                raise InputError("the record holds no stored target", path=record.path, field="target",
                                 expected=f"the slice of the stored image '{self.target}'")
            tgt = record.target
            if self.with_maps:
                maps = self._maps(full)
        if self.crop is not None:
            try:
                tgt = center_crop(tgt, self.crop)
            except InputError as err:
                raise InputError(err.problem, path=record.path, field="crop", expected=err.expected,
                                 got=err.got) from None
        tgt = tgt.to(torch.float32).contiguous()
        if self.target in ("rss", "reconstruction_rss") and isinstance(record.attrs.get("max"), (int, float)):
            max_value = float(record.attrs["max"])
        else:
            max_value = float(tgt.max())
        kspace = torch.where(mask, full, torch.zeros((), dtype=full.dtype))
        return Sample(kspace=kspace, mask=mask, target=tgt, fname=record.fname, slice_index=record.slice_index,
                      max_value=max_value, maps=maps)
