"""Training losses of the reconstruction networks: image losses (SSIM, L1, both) for supervised
training and denoising score matching for NCSNv2.

The SSIM loss computes the same quantity as fastMRI's ``SSIMLoss`` (uniform 7x7 window, valid
region only, sample covariances, ``k1 = 0.01``, ``k2 = 0.03``, data range given per item, usually
the target volume's maximum), so models trained here are comparable with fastMRI's. The GAN
objectives are in :mod:`mrizoo.train.gan_losses`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from mrizoo.errors import InputError
from mrizoo.metrics.image import local_ssim
from mrizoo.train.recipe import loss_params

__all__ = ["ssim_map", "SSIMLoss", "L1Loss", "SSIML1Loss", "build_image_loss", "sample_noise_levels", "dsm_loss"]


# ----------------------------------------------------------------------------- image losses


def _as_nchw(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim == 3:
        return x.unsqueeze(1)
    if x.ndim == 4:
        return x
    raise InputError("bad image shape", field=name, expected="[B, H, W] or [B, C, H, W]", got=tuple(x.shape))


def _per_item(value: torch.Tensor | float | None, ref: torch.Tensor, name: str) -> torch.Tensor:
    """A data range broadcastable over ``ref`` ([B, C, H, W]); None: each item's target maximum."""
    if value is None:
        return ref.detach().flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    v = torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
    if v.ndim == 0:
        return v.view(1, 1, 1, 1)
    if v.numel() != ref.shape[0]:
        raise InputError("one data range per item", field=name, expected=f"{ref.shape[0]} values",
                         got=tuple(v.shape))
    return v.reshape(-1, 1, 1, 1)


def ssim_map(
    output: torch.Tensor,
    target: torch.Tensor,
    data_range: torch.Tensor | float | None = None,
    *,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Local SSIM ``[B, C, H - win + 1, W - win + 1]`` with a uniform window (fastMRI's definition).

    Images are ``[B, H, W]`` or ``[B, C, H, W]`` magnitudes; ``data_range`` is a number, one value
    per item, or None for each target's maximum. The map itself is
    :func:`mrizoo.metrics.image.local_ssim`, the one the metrics use.
    """
    x, y = _as_nchw(output, "output"), _as_nchw(target, "target")
    if x.shape != y.shape:
        raise InputError("output and target differ in shape", field="output", expected=tuple(y.shape),
                         got=tuple(x.shape))
    if min(x.shape[-2:]) < win_size:
        raise InputError("image smaller than the SSIM window", field="output",
                         expected=f"H, W >= {win_size}", got=tuple(x.shape[-2:]))
    rng = _per_item(data_range, y, "data_range")
    return local_ssim(x, y, rng, win_size=win_size, k1=k1, k2=k2)


class SSIMLoss(nn.Module):
    """``1 - mean SSIM`` (fastMRI's ``SSIMLoss``); ``forward(output, target, data_range)``."""

    def __init__(self, win_size: int = 7, k1: float = 0.01, k2: float = 0.03) -> None:
        super().__init__()
        if win_size < 3 or win_size % 2 == 0:
            raise InputError("SSIM window must be odd and >= 3", field="win_size", got=win_size)
        self.win_size, self.k1, self.k2 = win_size, k1, k2

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                data_range: torch.Tensor | float | None = None) -> torch.Tensor:
        s = ssim_map(output, target, data_range, win_size=self.win_size, k1=self.k1, k2=self.k2)
        return 1 - s.mean()


class L1Loss(nn.Module):
    """Mean absolute error; ``data_range`` is accepted (and ignored) for a uniform call signature."""

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                data_range: torch.Tensor | float | None = None) -> torch.Tensor:
        return (output - target).abs().mean()


class SSIML1Loss(nn.Module):
    """``ssim_weight * (1 - SSIM) + l1_weight * mean |output - target| / data_range``.

    The L1 term is divided by each item's data range so both terms are scale-free.
    """

    def __init__(self, win_size: int = 7, k1: float = 0.01, k2: float = 0.03,
                 ssim_weight: float = 1.0, l1_weight: float = 1.0) -> None:
        super().__init__()
        self.ssim = SSIMLoss(win_size, k1, k2)
        self.ssim_weight, self.l1_weight = ssim_weight, l1_weight

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                data_range: torch.Tensor | float | None = None) -> torch.Tensor:
        y = _as_nchw(target, "target")
        rng = _per_item(data_range, y, "data_range")
        l1 = ((_as_nchw(output, "output") - y).abs() / rng).mean()
        return self.ssim_weight * self.ssim(output, target, data_range) + self.l1_weight * l1


def build_image_loss(spec: Any) -> nn.Module:
    """The image loss of a :class:`~mrizoo.train.recipe.LossSpec` named ssim, l1 or ssim_l1."""
    params = asdict(loss_params(spec))
    makers: dict[str, Callable[..., nn.Module]] = {"ssim": SSIMLoss, "l1": L1Loss, "ssim_l1": SSIML1Loss}
    if spec.name not in makers:
        raise InputError("not an image loss", field="loss.name", expected=f"one of {sorted(makers)}",
                         got=repr(spec.name))
    return makers[spec.name](**params)



# ----------------------------------------------------------------------------- score matching


def sample_noise_levels(batch: int, num_levels: int, *, generator: torch.Generator | None = None,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniformly drawn noise-level indices ``[batch]`` (long) into a ladder of ``num_levels``."""
    return torch.randint(0, num_levels, (batch,), generator=generator).to(device)


def dsm_loss(score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
             sigmas: torch.Tensor, *, labels: torch.Tensor | None = None, anneal_power: float = 2.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score matching over a noise ladder (Song & Ermon 2019/2020).

    For each item a level ``sigma = sigmas[label]`` is drawn (or given), ``x~ = x + sigma n``, and
    ``0.5 ||s(x~, label) + n / sigma||^2 * sigma**anneal_power`` is averaged over the batch; with
    weight ``sigma^2`` every level contributes on the same scale. ``score_fn(x~, labels)`` returns
    the score (NCSNv2's ``forward``).
    """
    b = x.shape[0]
    sigmas = sigmas.to(device=x.device, dtype=x.dtype)
    if labels is None:
        labels = sample_noise_levels(b, sigmas.numel(), generator=generator, device=x.device)
    used = sigmas[labels].view(b, *([1] * (x.ndim - 1)))
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype,
                        device="cpu" if generator is not None else x.device).to(x.device)
    perturbed = x + used * noise
    target = -noise / used
    scores = score_fn(perturbed, labels)
    per_item = 0.5 * ((scores - target) ** 2).flatten(1).sum(dim=1) * used.flatten() ** anneal_power
    return per_item.mean()
