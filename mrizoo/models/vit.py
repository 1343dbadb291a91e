"""Vision transformer for image-domain reconstruction (Lin & Heckel, MIDL 2022).

The image is cut into non-overlapping ``p x p`` patches by a convolution with kernel = stride
= ``p``; a learned position embedding, stored for the grid of an average image
(``avg_image_size / p`` patches a side) and resized bilinearly to the actual grid, is added;
pre-norm transformer blocks (timm's ``Block``: LayerNorm -> multi-head self-attention without
qkv bias, LayerNorm -> GELU MLP) follow, then a final LayerNorm and a linear head that maps
every token back to its ``p x p`` pixels. There is no class token, so any image whose sides
are multiples of ``p`` works.

State-dict keys follow the authors' model (``patch_embed.proj``, ``pos_embed``,
``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``, ``head``); their
training wrapper prefixes them with ``net.``. Presets are the Lin & Heckel 2024 configurations
(Lin & Heckel, ICML 2024): small = 396-d, 9 heads, depth 4; large = 1024-d, 16 heads,
depth 10 (about 127M parameters); both with patch 10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mrizoo._compat import import_timm
from mrizoo.errors import InputError
from mrizoo.models.base import ReconModel
from mrizoo.models.image_wrapper import image_domain_reconstruct
from mrizoo.models.registry import Architecture, register_architecture

__all__ = [
    "ViTConfig",
    "VisionTransformer",
    "ViTRecon",
    "build_vit",
    "unpatchify",
    "VIT_LIN2024_SMALL",
    "VIT_LIN2024_LARGE",
    "VIT_PRESETS",
]


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of the reconstruction ViT.

    ``embed_dim`` must be divisible by ``num_heads``. ``avg_image_size`` sets the grid of the
    stored position embedding (``avg_image_size // patch_size`` a side; 320 in the paper).
    ``pos_interp``: how that grid is resized to the input's (``"bilinear"`` as in the
    paper, or ``"bicubic"``).
    """

    patch_size: int = 10
    embed_dim: int = 396
    depth: int = 4
    num_heads: int = 9
    mlp_ratio: float = 4.0
    in_chans: int = 1
    out_chans: int | None = None
    avg_image_size: int = 320
    qkv_bias: bool = False
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    pos_interp: str = "bilinear"

    def __post_init__(self) -> None:
        for name in ("patch_size", "embed_dim", "depth", "num_heads", "in_chans", "avg_image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError("must be a positive integer", field=name, expected="int >= 1", got=value)
        if self.out_chans is not None and (not isinstance(self.out_chans, int) or self.out_chans < 1):
            raise InputError("must be a positive integer or None", field="out_chans", got=self.out_chans)
        if self.embed_dim % self.num_heads:
            raise InputError("embedding width must split evenly over the heads", field="embed_dim",
                             expected=f"a multiple of num_heads={self.num_heads}", got=self.embed_dim)
        if self.avg_image_size < self.patch_size:
            raise InputError("average image is smaller than one patch", field="avg_image_size",
                             expected=f">= patch_size={self.patch_size}", got=self.avg_image_size)
        if not (self.mlp_ratio > 0 and math.isfinite(self.mlp_ratio)):
            raise InputError("must be positive", field="mlp_ratio", got=self.mlp_ratio)
        for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise InputError("probability out of range", field=name, expected="0 <= p < 1",
                                 got=getattr(self, name))
        if self.pos_interp not in ("bilinear", "bicubic"):
            raise InputError("unknown interpolation", field="pos_interp",
                             expected="'bilinear' or 'bicubic'", got=self.pos_interp)

    @property
    def base_grid(self) -> int:
        """Side of the stored position-embedding grid."""
        return self.avg_image_size // self.patch_size


#: Lin & Heckel 2024 ViT-S: 396-d (44 per head), 9 heads, depth 4, patch 10.
VIT_LIN2024_SMALL = ViTConfig(embed_dim=396, depth=4, num_heads=9)
#: Lin & Heckel 2024 large ViT: 1024-d (64 per head), 16 heads, depth 10, patch 10 (~127M parameters).
VIT_LIN2024_LARGE = ViTConfig(embed_dim=1024, depth=10, num_heads=16)

VIT_PRESETS: dict[str, ViTConfig] = {
    "lin2024-small": VIT_LIN2024_SMALL,
    "lin2024-large": VIT_LIN2024_LARGE,
}


def unpatchify(tokens: torch.Tensor, grid: tuple[int, int], patch: int) -> torch.Tensor:
    """Tokens ``[B, gh * gw, C * p * p]`` (row-major grid, pixels ``(C, p, p)``) to ``[B, C, gh p, gw p]``."""
    b, n, d = tokens.shape
    gh, gw = grid
    c = d // (patch * patch)
    x = tokens.reshape(b, gh, gw, c, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, gh * patch, gw * patch)


class _PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens: a conv with kernel = stride = patch size."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def _init_linear(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class VisionTransformer(nn.Module):
    """The ViT itself: ``[B, in_chans, H, W]`` -> ``[B, out_chans, H, W]``, H and W multiples of the patch."""

    def __init__(self, config: ViTConfig | None = None) -> None:
        super().__init__()
        import_timm()  # makes sure timm (and its torchvision import) loads
        # imported on use: a heavy package that most calls of this module do not need
        from timm.models.vision_transformer import Block

        self.config = cfg = config or ViTConfig()
        self.patch_size = cfg.patch_size
        self.out_chans = cfg.out_chans or cfg.in_chans
        dim = cfg.embed_dim
        self.patch_embed = _PatchEmbed(cfg.patch_size, cfg.in_chans, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, cfg.base_grid, cfg.base_grid))
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        step = cfg.drop_path_rate / max(cfg.depth - 1, 1)
        rates = [i * step for i in range(cfg.depth)]  # stochastic-depth rate grows linearly
        self.blocks = nn.ModuleList(
            Block(dim, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
                  proj_drop=cfg.drop_rate, attn_drop=cfg.attn_drop_rate, drop_path=rate,
                  norm_layer=nn.LayerNorm)
            for rate in rates
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, self.out_chans * cfg.patch_size**2)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks.apply(_init_linear)

    def interpolate_pos_embed(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position embedding ``[1, D, gh, gw]`` resized to a ``gh x gw`` token grid."""
        if tuple(grid) == tuple(self.pos_embed.shape[-2:]):
            return self.pos_embed
        return F.interpolate(self.pos_embed, size=tuple(grid), mode=self.config.pos_interp, align_corners=False)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Normalised tokens ``[B, gh * gw, D]`` and the token grid ``(gh, gw)``."""
        x = self.patch_embed(x)
        grid = (x.shape[-2], x.shape[-1])
        x = x + self.interpolate_pos_embed(grid)
        x = self.pos_drop(x.flatten(2).transpose(1, 2))
        for block in self.blocks:
            x = block(x)
        return self.norm(x), grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        if x.ndim != 4 or x.shape[-2] % p or x.shape[-1] % p:
            raise InputError("the ViT needs images whose sides are multiples of the patch size "
                             "(ViTRecon.reconstruct pads automatically)", field="x",
                             expected=f"[B, {self.config.in_chans}, H, W] with H, W multiples of {p}",
                             got=tuple(x.shape))
        tokens, grid = self.forward_features(x)
        return unpatchify(self.head(tokens), grid, p)


class ViTRecon(VisionTransformer, ReconModel):
    """Image-domain ViT reconstruction (Lin & Heckel 2024).

    ``forward`` is the bare ViT. ``reconstruct`` feeds it the RSS of the zero-filled image,
    standardized per sample and zero-padded to a multiple of the patch size (see
    :mod:`mrizoo.models.image_wrapper`), and de-standardizes and crops the output.
    """

    adapt_family = "image"

    def __init__(self, config: ViTConfig | None = None) -> None:
        config = config or VIT_LIN2024_SMALL
        if config.in_chans != 1 or (config.out_chans or 1) != 1:
            raise InputError("the image-domain ViT maps one magnitude image to one",
                             field="in_chans/out_chans", expected=(1, 1),
                             got=(config.in_chans, config.out_chans))
        super().__init__(config)

    def reconstruct(
        self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None, *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        return image_domain_reconstruct(self, kspace, mask, multiple=self.patch_size)


def build_vit(config: ViTConfig | None = None) -> ViTRecon:
    """The image-domain ViT reconstruction model for ``config`` (default: Lin & Heckel 2024 small)."""
    return ViTRecon(VIT_LIN2024_SMALL if config is None else config)


register_architecture(Architecture(
    "vit", "vision transformer for reconstruction (Lin & Heckel), image domain",
    ViTConfig, build_vit, {"lin2024-small": VIT_LIN2024_SMALL, "lin2024-large": VIT_LIN2024_LARGE},
    domain="image", losses=("ssim", "l1", "ssim_l1"), task="supervised", adapts=True,
))
