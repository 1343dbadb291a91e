"""The one interface every zoo model implements.

Tensor layouts (used everywhere in mrizoo):

- ``kspace``: complex64 ``[B, C, H, W]`` -- undersampled multi-coil k-space, zeros where not
  sampled, centred (DC in the middle), W = phase-encode axis.
- ``mask``: bool ``[B, H, W]`` or ``[H, W]`` (broadcast over the batch) -- True where sampled.
- ``maps``: complex64 ``[B, C, H, W]`` -- coil sensitivities (ESPIRiT); estimated from the
  calibration region when a model needs them and none are given.
- output of ``reconstruct``: float32 ``[B, H, W]`` magnitude image at the input's size.
- output of ``sample``: :class:`PosteriorSamples` with ``samples`` ``[n, B, H, W]`` and their
  pixel-wise ``mean`` and ``std`` ``[B, H, W]``.

``forward`` stays each architecture's native call (state-dict and output parity with the
reference implementations); ``reconstruct`` / ``sample`` adapt the common inputs to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mrizoo.errors import InputError

__all__ = ["ReconModel", "PosteriorSamples", "check_inputs"]


@dataclass
class PosteriorSamples:
    """Posterior samples (magnitude) and their pixel-wise mean and standard deviation."""

    samples: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def from_samples(cls, samples: torch.Tensor) -> "PosteriorSamples":
        return cls(samples=samples, mean=samples.mean(0), std=samples.std(0, unbiased=False))


def check_inputs(
    kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate the common inputs and return ``(kspace, mask [B, H, W] bool, maps)``."""
    if not isinstance(kspace, torch.Tensor) or not kspace.is_complex() or kspace.ndim != 4:
        got = f"{getattr(kspace, 'dtype', type(kspace).__name__)} {tuple(getattr(kspace, 'shape', ()))}"
        raise InputError("k-space must be a complex tensor [B, C, H, W]", field="kspace",
                         expected="complex [B, C, H, W]", got=got)
    b, _, h, w = kspace.shape
    if not isinstance(mask, torch.Tensor):
        raise InputError("mask must be a tensor", field="mask", expected=f"bool [{b}, {h}, {w}] or [{h}, {w}]",
                         got=type(mask).__name__)
    if mask.ndim == 2 and tuple(mask.shape) == (h, w):
        mask = mask.unsqueeze(0).expand(b, h, w)
    if tuple(mask.shape) != (b, h, w):
        raise InputError("mask does not fit the k-space", field="mask",
                         expected=f"[{b}, {h}, {w}] or [{h}, {w}]", got=tuple(mask.shape))
    mask = mask.to(device=kspace.device, dtype=torch.bool)
    if maps is not None and maps.shape != kspace.shape:
        raise InputError("maps do not fit the k-space", field="maps",
                         expected=tuple(kspace.shape), got=tuple(maps.shape))
    return kspace, mask, maps


class ReconModel(nn.Module):
    """Base class of zoo models: ``reconstruct`` for all, ``sample`` for posterior models."""

    needs_maps: bool = False
    is_posterior: bool = False

    def reconstruct(
        self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def sample(
        self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None, n: int = 32
    ) -> PosteriorSamples:
        raise TypeError(f"{type(self).__name__} is not a posterior model; use reconstruct()")

    def save_pretrained(self, directory: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Write this zoo model as a checkpoint folder (see :func:`mrizoo.hub.format.save_pretrained`)."""
        from mrizoo.hub.format import save_pretrained

        return save_pretrained(self, directory, **kwargs)

    @classmethod
    def from_pretrained(
        cls, repo_or_dir: str | os.PathLike[str], revision: str | None = None, *,
        map_location: str | torch.device = "cpu",
    ) -> "ReconModel":
        """A model from a checkpoint folder, a Hub repo (``org/repo`` or ``hf-hub:org/repo``) or a zoo name.

        Pin ``revision`` (a commit sha) for Hub repos; it defaults to ``main``.
        """
        from mrizoo.hub.download import HF_HUB_PREFIX
        from mrizoo.zoo.factory import load

        spec = os.fspath(repo_or_dir)
        if (isinstance(spec, str) and spec.count("/") == 1 and not spec.startswith((".", "/", "~"))
                and not Path(spec).expanduser().is_dir()):
            spec = HF_HUB_PREFIX + spec
        model = load(spec, revision=revision, map_location=map_location)
        if not isinstance(model, cls):
            raise InputError("the checkpoint holds another kind of model", field="repo_or_dir",
                             expected=cls.__name__, got=type(model).__name__)
        return model

    def _maps(self, kspace: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
        if maps is not None:
            return maps
        from mrizoo.physics.espirit import espirit_maps

        return espirit_maps(kspace)
