"""End-to-end variational network (E2E-VarNet, Sriram et al. 2020), fastMRI layout.

A sensitivity network (a :class:`NormUnet` on each coil image of the k-space centre,
normalised to unit RSS over coils) estimates coil maps ``S``; then every cascade updates the
multi-coil k-space estimate ``k``::

    k <- k - w * M (k - k0) - F S NormUnet(sum_c conj(S_c) F^H k_c)

with a learned scalar ``w`` (``dc_weight``), the sampling mask ``M`` and the measured
k-space ``k0``. The output is the RSS of the final coil images. State-dict keys are those of
fastMRI's ``VarNet`` (``sens_net.norm_unet.unet.*``, ``cascades.{i}.dc_weight``,
``cascades.{i}.model.unet.*``), so the official checkpoints load with ``strict=True``.

The computations run on complex tensors; the native ``forward`` keeps fastMRI's real layout
``[B, C, H, W, 2]`` for inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from mrizoo.errors import InputError
from mrizoo.masks.center_band import center_band
from mrizoo.models.base import ReconModel, check_inputs
from mrizoo.models.registry import Architecture, register_architecture
from mrizoo.models.unet import NormUnet, _positive_int
from mrizoo.physics.espirit import central_block
from mrizoo.physics.fft import fft2c, ifft2c

__all__ = [
    "VarNetConfig",
    "VarNet",
    "SensitivityModel",
    "VarNetBlock",
    "build_varnet",
    "VARNET_LIN2024_SMALL",
    "VARNET_LIN2024_LARGE",
    "VARNET_FASTMRI_LEADERBOARD",
    "VARNET_PRESETS",
]


@dataclass(frozen=True)
class VarNetConfig:
    """Hyper-parameters of the E2E-VarNet.

    ``checkpoint_cascades`` recomputes each cascade's activations in the backward pass
    (activation checkpointing): less memory in training, same results.
    """

    num_cascades: int = 12
    sens_chans: int = 8
    sens_pools: int = 4
    chans: int = 18
    pools: int = 4
    mask_center: bool = True
    checkpoint_cascades: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.num_cascades, bool) or not isinstance(self.num_cascades, int) or self.num_cascades < 0:
            raise InputError("must be a non-negative integer", field="num_cascades",
                             expected="int >= 0", got=repr(self.num_cascades))
        for name in ("sens_chans", "sens_pools", "chans", "pools"):
            _positive_int(getattr(self, name), name)


#: Lin & Heckel 2024 small VarNet: 8 cascades of width 12.
VARNET_LIN2024_SMALL = VarNetConfig(num_cascades=8, chans=12)
#: fastMRI leaderboard VarNet (official checkpoints), 29,936,966 parameters.
VARNET_FASTMRI_LEADERBOARD = VarNetConfig()
#: Lin & Heckel 2024 large VarNet: the fastMRI leaderboard configuration.
VARNET_LIN2024_LARGE = VARNET_FASTMRI_LEADERBOARD

VARNET_PRESETS: dict[str, VarNetConfig] = {
    "lin2024-small": VARNET_LIN2024_SMALL,
    "lin2024-large": VARNET_LIN2024_LARGE,
    "fastmri-leaderboard": VARNET_FASTMRI_LEADERBOARD,
}


def _band_mask(start: torch.Tensor, num: torch.Tensor, n: int) -> torch.Tensor:
    idx = torch.arange(n, device=start.device)
    return (idx >= start[:, None]) & (idx < (start + num)[:, None])  # [B, N]


def _symmetric_band(block: slice, n: int) -> tuple[int, int]:
    """``(start, num)`` of the largest band inside ``block`` symmetric about ``n // 2`` (fastMRI's rule)."""
    if block.start == 0 and block.stop == n:
        return 0, n
    num = max(2 * min(n // 2 - block.start, block.stop - n // 2), 1)
    return (n - num + 1) // 2, num


def _symmetric_block(mask: torch.Tensor) -> torch.Tensor:
    """Bool ``[H, W]`` selecting the symmetric fully sampled central block of a 2D mask ``[H, W]``."""
    h, w = mask.shape
    rows, cols = central_block(mask)
    (r0, rn), (c0, cn) = _symmetric_band(rows, h), _symmetric_band(cols, w)
    out = torch.zeros(h, w, dtype=torch.bool, device=mask.device)
    out[r0 : r0 + rn, c0 : c0 + cn] = True
    return out


class SensitivityModel(nn.Module):
    """Coil sensitivities from the fully sampled k-space centre, normalised to unit RSS."""

    def __init__(self, chans: int, num_pools: int, mask_center: bool = True) -> None:
        super().__init__()
        self.mask_center = mask_center
        self.norm_unet = NormUnet(chans, num_pools)

    def center_mask(
        self, mask: torch.Tensor, num_low_frequencies: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Bool ``[B, 1, H or 1, W]`` selecting the calibration region of the mask ``[B, H or 1, W]``.

        A column mask (``H == 1``) follows fastMRI: the symmetric sampled band around the
        centre column, or ``num_low_frequencies`` columns when given. A 2D mask gives its fully
        sampled central block (:func:`~mrizoo.physics.espirit.central_block`), made symmetric
        about the centre as fastMRI's band is, so only measured samples enter the maps.
        """
        b, mh, w = mask.shape
        if mh > 1 and (num_low_frequencies is None
                       or (isinstance(num_low_frequencies, int) and num_low_frequencies == 0)):
            return torch.stack([_symmetric_block(m) for m in mask])[:, None]
        if num_low_frequencies is None or (isinstance(num_low_frequencies, int) and num_low_frequencies == 0):
            start, num = center_band(mask[:, 0, :], fastmri_rule=True)
        else:
            num = torch.as_tensor(num_low_frequencies, device=mask.device).long().expand(b)
            start = (w - num + 1) // 2
        band = _band_mask(start, num, w)[:, None, None, :]
        if mh > 1:
            rstart, rnum = center_band(mask[:, :, w // 2], fastmri_rule=False)
            band = band & _band_mask(rstart, rnum, mh)[:, None, :, None]
        return band

    def forward(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Maps ``[B, C, H, W]`` (complex) from complex k-space ``[B, C, H, W]`` and bool mask ``[B, H or 1, W]``."""
        if self.mask_center:
            kspace = torch.where(self.center_mask(mask, num_low_frequencies), kspace, 0)
        b, c, h, w = kspace.shape
        images = torch.view_as_real(ifft2c(kspace).reshape(b * c, 1, h, w))
        maps = torch.view_as_complex(self.norm_unet(images)).reshape(b, c, h, w)
        norm = torch.sqrt(torch.sum(maps.real**2 + maps.imag**2, dim=1, keepdim=True))
        return maps / norm


class VarNetBlock(nn.Module):
    """One cascade: soft data consistency plus a :class:`NormUnet` refinement in image space."""

    def __init__(self, chans: int, pools: int) -> None:
        super().__init__()
        self.model = NormUnet(chans, pools)
        self.dc_weight = nn.Parameter(torch.ones(1))

    def forward(
        self, kspace: torch.Tensor, ref_kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor
    ) -> torch.Tensor:
        """All complex: ``kspace``, ``ref_kspace``, ``maps`` ``[B, C, H, W]``; bool mask ``[B, 1, H or 1, W]``."""
        soft_dc = torch.where(mask, kspace - ref_kspace, 0) * self.dc_weight
        image = torch.sum(ifft2c(kspace) * maps.conj(), dim=1, keepdim=True)
        refined = torch.view_as_complex(self.model(torch.view_as_real(image)))
        return kspace - soft_dc - fft2c(refined * maps)


class VarNet(ReconModel):
    """E2E-VarNet with fastMRI's interface and state-dict layout."""

    adapt_family = "varnet"

    def __init__(self, config: VarNetConfig | None = None) -> None:
        super().__init__()
        config = VarNetConfig() if config is None else config
        self.config = config
        self.sens_net = SensitivityModel(config.sens_chans, config.sens_pools, config.mask_center)
        self.cascades = nn.ModuleList(VarNetBlock(config.chans, config.pools) for _ in range(config.num_cascades))

    def _mask(self, mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        b, _, h, w, _ = shape
        if mask.ndim == 5 and mask.shape[1] == 1 and mask.shape[-1] == 1 and mask.shape[-2] == w \
                and mask.shape[-3] in (1, h) and mask.shape[0] in (1, b):
            m = mask[:, 0, :, :, 0]
            return (m if m.dtype == torch.bool else m != 0).expand(b, -1, -1)
        raise InputError("mask does not fit the k-space", field="mask",
                         expected=f"[{b}, 1, 1, {w}, 1] (columns) or [{b}, 1, {h}, {w}, 1]",
                         got=tuple(mask.shape))

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """fastMRI's call: real k-space ``[B, C, H, W, 2]`` and mask ``[B, 1, 1, W, 1]`` -> RSS ``[B, H, W]``.

        Also accepts a 2D mask ``[B, 1, H, W, 1]``; its calibration region is then its fully
        sampled central block (see :meth:`SensitivityModel.center_mask`).
        ``num_low_frequencies`` (an int or one per sample) overrides the number of centre columns.
        """
        if masked_kspace.ndim != 5 or masked_kspace.shape[-1] != 2:
            raise InputError("k-space must be real/imaginary pairs", field="masked_kspace",
                             expected="[B, C, H, W, 2]", got=tuple(masked_kspace.shape))
        mask = self._mask(mask, masked_kspace.shape)  # [B, H or 1, W] bool
        ref = torch.view_as_complex(masked_kspace.contiguous())
        maps = self.sens_net(ref, mask, num_low_frequencies)
        dc_mask = mask[:, None]
        kspace = ref
        use_ckpt = self.config.checkpoint_cascades and torch.is_grad_enabled()
        for cascade in self.cascades:
            if use_ckpt:
                kspace = checkpoint(cascade, kspace, ref, dc_mask, maps, use_reentrant=False)
            else:
                kspace = cascade(kspace, ref, dc_mask, maps)
        image = ifft2c(kspace)
        return torch.sqrt(torch.sum(image.real**2 + image.imag**2, dim=1))

    def reconstruct(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        maps: torch.Tensor | None = None,
        *,
        upsample: int = 1,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Common interface. ``maps`` is ignored (the network estimates its own), as is ``generator``.

        Column masks (the same for every row) use fastMRI's centre detection, except that a
        half sampled to the edge counts in full; other masks use the 2D rule of :meth:`forward`.
        ``upsample = f > 1`` repeat-interleaves k-space and mask ``f`` times along H and W,
        reconstructs at ``f H x f W`` and centre-crops back to ``H x W`` (Lin & Heckel (2024)'s inference
        trick for a resolution mismatch between training and test data). The output is not
        rescaled: in image space the repetition tiles the image with period ``H x W`` and weights
        it by a smooth window, so (without cascades) the crop is the zero-filled image times a
        weight going from ``f`` at the centre to 1 at the corners.
        """
        kspace, mask, _ = check_inputs(kspace, mask)
        if isinstance(upsample, bool) or not isinstance(upsample, int) or upsample < 1:
            raise InputError("upsampling factor must be a positive integer", field="upsample",
                             expected="int >= 1", got=repr(upsample))
        b, _, h, w = kspace.shape
        param = next(self.parameters(), None)
        cdtype = torch.complex128 if param is not None and param.dtype == torch.float64 else torch.complex64
        kspace = kspace.to(cdtype)
        if upsample > 1:
            kspace = kspace.repeat_interleave(upsample, dim=-2).repeat_interleave(upsample, dim=-1)
            mask = mask.repeat_interleave(upsample, dim=-2).repeat_interleave(upsample, dim=-1)
        masked = torch.where(mask[:, None], kspace, 0)
        num_low: torch.Tensor | None = None
        if bool((mask == mask[:, :1, :]).all()):  # column mask
            fmask = mask[:, :1, :]
            _, num_low = center_band(fmask[:, 0, :], fastmri_rule=False)
        else:
            fmask = mask
        out = self.forward(torch.view_as_real(masked), fmask[:, None, :, :, None], num_low)
        if upsample > 1:
            top, left = (out.shape[-2] - h) // 2, (out.shape[-1] - w) // 2
            out = out[:, top : top + h, left : left + w]
        return out.float()


def build_varnet(config: VarNetConfig | None = None) -> VarNet:
    """The E2E-VarNet for ``config`` (default: fastMRI leaderboard / Lin & Heckel 2024 large)."""
    return VarNet(config)


register_architecture(Architecture(
    "varnet", "end-to-end variational network with a sensitivity-map network (fastMRI layout)",
    VarNetConfig, build_varnet,
    {"lin2024-small": VARNET_LIN2024_SMALL, "fastmri-leaderboard": VARNET_FASTMRI_LEADERBOARD},
    domain="kspace", losses=("ssim", "l1", "ssim_l1"), task="supervised", adapts=True,
))
