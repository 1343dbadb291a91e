"""The architecture table: family name -> config dataclass, builder function and named presets.

Declared as data (import paths resolved on first use), so listing the zoo does not import
every model, and adding an architecture is one row here plus its module in ``mrizoo/models``.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any

from mrizoo._dataclass_io import from_dict
from mrizoo.errors import InputError
from mrizoo.zoo.names import closest_names

__all__ = ["Architecture", "ARCHITECTURES", "get_architecture", "resolve"]


def resolve(path: str) -> Any:
    """``"package.module:attribute"`` -> the attribute."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Architecture:
    """One architecture family."""

    name: str
    description: str
    config: str
    builder: str
    presets: dict[str, str] = field(default_factory=dict)

    def config_class(self) -> type:
        return resolve(self.config)

    def make_config(self, preset: str | None, overrides: dict[str, Any], source: str | None = None) -> Any:
        """The preset's config (or the defaults) with ``overrides`` applied and validated."""
        cls = self.config_class()
        if preset is not None:
            if preset not in self.presets:
                raise InputError(f"unknown preset for architecture {self.name!r}", path=source,
                                 field="model.preset", expected=f"one of {sorted(self.presets)}", got=preset)
            base = dataclasses.asdict(resolve(self.presets[preset]))
        else:
            base = {}
        return from_dict(cls, {**base, **overrides}, source=source, prefix="model.config")

    def build(self, config: Any) -> Any:
        return resolve(self.builder)(config)


_M = "mrizoo.models"
ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "unet", "image-domain U-Net on the zero-filled RSS image (fastMRI layout, Lin & Heckel 2024)",
            f"{_M}.unet:UnetConfig", f"{_M}.unet:build_unet",
            {"lin2024-small": f"{_M}.unet:UNET_LIN2024_SMALL", "lin2024-large": f"{_M}.unet:UNET_LIN2024_LARGE",
             "fastmri-leaderboard": f"{_M}.unet:UNET_FASTMRI_LEADERBOARD"},
        ),
        Architecture(
            "varnet", "end-to-end variational network with a sensitivity-map network (fastMRI layout)",
            f"{_M}.varnet:VarNetConfig", f"{_M}.varnet:build_varnet",
            {"lin2024-small": f"{_M}.varnet:VARNET_LIN2024_SMALL",
             "fastmri-leaderboard": f"{_M}.varnet:VARNET_FASTMRI_LEADERBOARD"},
        ),
        Architecture(
            "vit", "vision transformer for reconstruction (Lin & Heckel), image domain",
            f"{_M}.vit:ViTConfig", f"{_M}.vit:build_vit",
            {"lin2024-small": f"{_M}.vit:VIT_LIN2024_SMALL", "lin2024-large": f"{_M}.vit:VIT_LIN2024_LARGE"},
        ),
        Architecture(
            "modl", "MoDL: shared residual CNN denoiser unrolled with CG data consistency",
            f"{_M}.modl:MoDLConfig", f"{_M}.modl:build_modl", {"jalal2021": f"{_M}.modl:MODL_JALAL2021"},
        ),
        Architecture(
            "rcgan", "regularized conditional GAN posterior sampler (multi-coil, data consistent)",
            f"{_M}.rcgan:RCGANConfig", f"{_M}.rcgan:build_rcgan", {"bendel2023": f"{_M}.rcgan:RCGAN_BENDEL2023"},
        ),
        Architecture(
            "ncsnv2", "NCSNv2 score-based prior with annealed Langevin posterior sampling",
            f"{_M}.ncsnv2:NCSNv2Config", f"{_M}.langevin:build_score_posterior",
            {"jalal2021": f"{_M}.ncsnv2:NCSNV2_JALAL2021"},
        ),
        Architecture(
            "zerofilled", "zero-filled inverse FFT with RSS (or SENSE) coil combination",
            f"{_M}.classical:ZeroFilledConfig", f"{_M}.classical:build_zero_filled",
        ),
        Architecture(
            "cgsense", "CG-SENSE least squares with ESPIRiT maps",
            "mrizoo.classical.cg_sense:CGSenseConfig", f"{_M}.classical:build_cg_sense",
        ),
        Architecture(
            "l1wavelet", "L1-wavelet compressed sensing (FISTA) with ESPIRiT maps",
            "mrizoo.classical.l1_wavelet:L1WaveletConfig", f"{_M}.classical:build_l1_wavelet",
        ),
        Architecture(
            "convdecoder", "un-trained convolutional decoder fitted to one scan's k-space (Darestani & Heckel 2021)",
            f"{_M}.convdecoder:ConvDecoderConfig", f"{_M}.convdecoder:build_convdecoder",
        ),
    )
}


def get_architecture(name: str, source: str | None = None) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise InputError("unknown architecture", path=source, field="model.arch",
                         expected=f"one of {sorted(ARCHITECTURES)}",
                         got=f"{name!r} (closest: {closest_names(name, list(ARCHITECTURES))})") from None
