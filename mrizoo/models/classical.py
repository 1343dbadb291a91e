"""Classical reconstructions wrapped as zoo models, so baselines share the models' interface."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrizoo.classical.cg_sense import CGSenseConfig, cg_sense
from mrizoo.classical.l1_wavelet import L1WaveletConfig, l1_wavelet
from mrizoo.classical.zero_filled import zero_filled
from mrizoo.models.base import ReconModel, check_inputs
from mrizoo.models.registry import Architecture, register_architecture

__all__ = ["ZeroFilledConfig", "ZeroFilledRecon", "CGSenseRecon", "L1WaveletRecon",
           "build_zero_filled", "build_cg_sense", "build_l1_wavelet"]


@dataclass(frozen=True)
class ZeroFilledConfig:
    """Zero-filling has no settings; ``combine`` picks RSS or SENSE (needs maps) coil combination."""

    combine: str = "rss"

    def __post_init__(self) -> None:
        if self.combine not in ("rss", "sense"):
            raise ValueError(f"combine must be 'rss' or 'sense'; got {self.combine!r}")


class ZeroFilledRecon(ReconModel):
    """Zero-filled RSS (or SENSE) magnitude."""

    def __init__(self, config: ZeroFilledConfig | None = None) -> None:
        super().__init__()
        self.config = config or ZeroFilledConfig()
        self.needs_maps = self.config.combine == "sense"

    def reconstruct(self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None, *,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        kspace, mask, maps = check_inputs(kspace, mask, maps)
        if self.config.combine == "sense":
            return zero_filled(kspace, mask, self._maps(kspace, maps)).abs()
        return zero_filled(kspace, mask)


class CGSenseRecon(ReconModel):
    """CG-SENSE magnitude (ESPIRiT maps when none are given)."""

    needs_maps = True

    def __init__(self, config: CGSenseConfig | None = None) -> None:
        super().__init__()
        self.config = config or CGSenseConfig()

    def reconstruct(self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None, *,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        kspace, mask, maps = check_inputs(kspace, mask, maps)
        return cg_sense(kspace, mask, self._maps(kspace, maps), self.config).abs()


class L1WaveletRecon(ReconModel):
    """L1-wavelet compressed-sensing magnitude by FISTA (ESPIRiT maps when none are given)."""

    needs_maps = True

    def __init__(self, config: L1WaveletConfig | None = None) -> None:
        super().__init__()
        self.config = config or L1WaveletConfig()

    def reconstruct(self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None, *,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        kspace, mask, maps = check_inputs(kspace, mask, maps)
        return l1_wavelet(kspace, mask, self._maps(kspace, maps), self.config).abs()


def build_zero_filled(config: ZeroFilledConfig | None = None) -> ZeroFilledRecon:
    return ZeroFilledRecon(config)


def build_cg_sense(config: CGSenseConfig | None = None) -> CGSenseRecon:
    return CGSenseRecon(config)


def build_l1_wavelet(config: L1WaveletConfig | None = None) -> L1WaveletRecon:
    return L1WaveletRecon(config)


register_architecture(Architecture(
    "zerofilled", "zero-filled inverse FFT with RSS (or SENSE) coil combination",
    ZeroFilledConfig, build_zero_filled, domain="classical",
))
register_architecture(Architecture(
    "cgsense", "CG-SENSE least squares with ESPIRiT maps",
    CGSenseConfig, build_cg_sense, needs_maps=True, domain="classical",
))
register_architecture(Architecture(
    "l1wavelet", "L1-wavelet compressed sensing (FISTA) with ESPIRiT maps",
    L1WaveletConfig, build_l1_wavelet, needs_maps=True, domain="classical",
))
