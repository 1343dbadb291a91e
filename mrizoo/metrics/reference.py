"""The reference a reconstruction is scored against, and when a volume has none.

A reference must come from fully sampled data. :func:`reference_problem` says why a volume has
none (its k-space is undersampled and it cannot vouch for a stored image), and
:func:`slice_reference` gives one slice's reference with fastMRI's data range (the maximum over
the volume). Both take a :class:`~mrizoo.data.FastMRIVolume` (or anything with its methods), so
``demo``, ``evaluate`` and ``reconstruct`` decide the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mrizoo.physics.coils import rss
from mrizoo.physics.fft import ifft2c

__all__ = ["Reference", "reference_problem", "slice_reference"]


@dataclass(frozen=True)
class Reference:
    """The fully sampled reference of one slice: ``image`` float32 ``[h, w]``, ``maxval`` (the
    data range: the reference's maximum over the whole volume, as fastMRI) and ``source``."""

    image: torch.Tensor
    maxval: float
    source: str


def _declares_undersampling(vol: Any) -> bool:
    """The file itself states that its k-space was undersampled (a partial stored mask or the attr)."""
    stored = vol.mask()
    return (stored is not None and not bool(stored.all())) or vol.attrs.get("sampling") == "undersampled"


def reference_problem(vol: Any, sampling: Any = None, target: str = "reconstruction_rss") -> str:
    """Why ``vol`` has no reference of fully sampled data for ``target`` ("" when it has one).

    Fully sampled volumes have one (``rss``/``mvue`` from the k-space, or a stored image). An
    undersampled volume has one only for a stored image and only when the file declares its
    undersampling (a partial stored ``mask``, as fastMRI's validation files and the demo scan):
    otherwise its stored image can only be the aliased zero-filled one.
    """
    info = vol.sampling_info() if sampling is None else sampling
    if info.fully_sampled:
        return ""
    head = f"the k-space is undersampled ({info.describe()}) and has no fully sampled reference"
    if target in ("rss", "mvue"):
        return f"{head}: an '{target}' target computed from it would be the aliased image"
    if target not in vol.target_keys:
        return f"{head}: it stores no '{target}'"
    if not _declares_undersampling(vol):
        return (f"{head}: the file does not declare the undersampling, so its stored '{target}' is not from "
                "fully sampled data")
    return ""


def slice_reference(vol: Any, index: int, sampling: Any = None) -> tuple[Reference | None, str]:
    """``(reference, "")`` of slice ``index`` of a :class:`~mrizoo.data.FastMRIVolume`, or ``(None, why)``.

    A reference must come from fully sampled data: the stored ``reconstruction_rss`` when the
    volume is fully sampled (else the RSS of its k-space), or when the file declares that it was
    undersampled from fully sampled data (a partial stored ``mask``, as fastMRI's validation files
    and the demo scan). A file that declares nothing but whose k-space is undersampled has no
    reference: its stored image is the aliased zero-filled one. ``sampling``: the volume's
    :class:`~mrizoo.masks.SamplingInfo` (default ``vol.sampling_info()``).
    """
    info = vol.sampling_info() if sampling is None else sampling
    why = reference_problem(vol, info)
    if why:
        return None, f"{vol.path}: {why}: no metrics"
    stored = "reconstruction_rss" in vol.target_keys
    n = vol.num_slices
    if stored:
        images = [vol.target(i) for i in range(n)]
        source = "stored reconstruction_rss"
    else:
        def image(i: int) -> torch.Tensor:
            k = vol.kspace(i)
            return rss(ifft2c(k if k.ndim == 3 else k[None])).float()

        images = [image(i) for i in range(n)]  # the data range is the maximum over the volume
        source = "RSS of the fully sampled k-space"
    return Reference(images[index], max(float(im.max()) for im in images), source), ""
