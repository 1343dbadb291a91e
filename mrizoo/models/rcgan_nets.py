"""rcGAN's networks and their config: the generator, the critic and the config dataclass.

Generator (layout of the authors' MRI code; about 86.8M parameters at the default size):

- encoder: ``depth`` blocks of ``conv3x3 -> BN -> PReLU``, a residual block and a stride-2
  conv3x3, widths ``chans * 2**i`` (18 -> 128 -> 256 -> 512 -> 1024); the first block has no BN.
  The input of each stride-2 conv is kept as the skip connection.
- bottleneck: ``conv3x3 -> BN -> PReLU`` at the deepest width.
- decoder: transposed conv3x3 (stride 2, width unchanged) -> BN -> PReLU, concatenation with
  the skip, ``conv3x3 -> BN -> PReLU`` to half the width (the last block keeps ``chans``) and a
  residual block.
- head: 1x1 convs ``chans -> chans // 2 -> 2 C``.

A residual block is ``x -> conv1x1(x) + (conv3x3 -> BN -> PReLU) x 2``. The authors' module
also defines an extra stack of five residual blocks at the bottleneck that its forward pass
never calls; it is left out here (it holds no used parameters).

Discriminator: ``cat(x, y)`` (``4 C`` channels) -> conv3x3 + LeakyReLU(0.01), then blocks of
``AvgPool2 -> conv3x3 -> InstanceNorm -> LeakyReLU(0.2)`` (widths 64, 128, 256, 512, 512, 512)
and a linear layer to one score. The authors flatten a fixed ``512 x 6 x 6`` map (384 x 384
input); ``disc_input_size=None`` replaces the flattening by global average pooling so any
size works.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from mrizoo.errors import InputError

__all__ = ["RCGANConfig", "RCGANGenerator", "RCGANDiscriminator", "fold_batch_norms", "RCGAN_BENDEL2023",
           "RCGAN_TINY", "COIL_COMBINES"]


#: How the samples' coil images are combined (:meth:`mrizoo.models.rcgan.RCGAN.combine_samples`).
CoilCombine = Literal["sense", "rss", "projected"]
COIL_COMBINES: tuple[str, ...] = get_args(CoilCombine)


def _positive_int(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError("must be a positive integer", field=field, expected="int >= 1", got=repr(value))


@dataclass(frozen=True)
class RCGANConfig:
    """rcGAN hyper-parameters.

    ``in_coils``: (virtual) coils the network reads (``2 * in_coils`` channels).
    ``coil_compression``: rotate/compress every scan to ``in_coils`` SVD virtual coils (True), or
    pass the coils unchanged when their count is ``in_coils`` (False: how checkpoints written
    before the option were trained; a ``config.json`` without the key loads as False, see
    ``CHECKPOINT_DEFAULTS``); other coil counts are compressed or zero-padded either way.
    ``noise_chans``: channels of ``z``. ``chans``: width of
    the first encoder block, doubled at each of the ``depth`` levels. ``disc_chans``: widths of
    the discriminator (first conv, then one per pooling block). ``disc_input_size``: image size
    the discriminator's linear layer is built for, or ``None`` for global average pooling.
    ``reconstruct_samples``: samples averaged by ``reconstruct``. ``coil_combine``: ``"sense"``,
    ``"rss"`` or ``"projected"`` (see :mod:`mrizoo.models.rcgan`). ``sample_chunk``: samples per
    generator pass (``None``: as many as fit a memory budget, usually all).
    """

    in_coils: int = 8
    noise_chans: int = 2
    chans: int = 128
    depth: int = 4
    disc_chans: tuple[int, ...] = (32, 64, 128, 256, 512, 512, 512)
    disc_input_size: tuple[int, int] | None = (384, 384)
    reconstruct_samples: int = 8
    coil_combine: CoilCombine = "sense"
    sample_chunk: int | None = None
    coil_compression: bool = True

    #: Values of keys missing from a checkpoint's ``config.json`` (written before they existed).
    CHECKPOINT_DEFAULTS: ClassVar[dict[str, object]] = {"coil_compression": False}

    def __post_init__(self) -> None:
        for name in ("in_coils", "noise_chans", "chans", "depth", "reconstruct_samples"):
            _positive_int(getattr(self, name), name)
        if not isinstance(self.coil_compression, bool):
            raise InputError("must be true or false", field="coil_compression", expected="bool",
                             got=repr(self.coil_compression))
        if self.chans < 2:
            raise InputError("the head halves the width", field="chans", expected=">= 2", got=self.chans)
        if len(self.disc_chans) < 1:
            raise InputError("needs at least the first conv width", field="disc_chans",
                             expected="non-empty tuple of ints", got=self.disc_chans)
        for c in self.disc_chans:
            _positive_int(c, "disc_chans")
        if self.disc_input_size is not None:
            factor = 2 ** (len(self.disc_chans) - 1)
            if (len(self.disc_input_size) != 2
                    or any(not isinstance(s, int) or s < factor for s in self.disc_input_size)):
                raise InputError("too small for the discriminator's pooling", field="disc_input_size",
                                 expected=f"(H, W) with H, W >= {factor}, or None",
                                 got=self.disc_input_size)
        if self.coil_combine not in COIL_COMBINES:
            raise InputError("unknown coil combination", field="coil_combine",
                             expected="one of " + ", ".join(repr(c) for c in COIL_COMBINES), got=self.coil_combine)
        if self.sample_chunk is not None:
            _positive_int(self.sample_chunk, "sample_chunk")

    @property
    def image_chans(self) -> int:
        """Channels of a multi-coil image: ``[real(C), imag(C)]``."""
        return 2 * self.in_coils


#: The fastMRI brain configuration of Bendel et al. 2023 (8 virtual coils, 384 x 384).
RCGAN_BENDEL2023 = RCGANConfig()

#: A few-thousand-parameter configuration for tests and smoke runs (4 coils, RSS, any size).
RCGAN_TINY = RCGANConfig(in_coils=4, chans=8, depth=2, disc_chans=(8, 16, 16), disc_input_size=None,
                         reconstruct_samples=2, coil_combine="rss")


# --------------------------------------------------------------------------- generator


class _ResidualBlock(nn.Module):
    """``x -> conv1x1(x) + (conv3x3 -> BN -> PReLU) x 2`` at constant width."""

    def __init__(self, chans: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(chans, chans, 3, padding=1), nn.BatchNorm2d(chans), nn.PReLU(),
            nn.Conv2d(chans, chans, 3, padding=1), nn.BatchNorm2d(chans), nn.PReLU(),
        )
        self.conv_1x1 = nn.Conv2d(chans, chans, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1x1(x) + self.conv_block(x)


class _DownBlock(nn.Module):
    """``conv3x3 -> [BN] -> PReLU -> residual`` (the skip), then a stride-2 conv3x3."""

    def __init__(self, cin: int, cout: int, batch_norm: bool) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout) if batch_norm else nn.Identity()
        self.activation = nn.PReLU()
        self.res = _ResidualBlock(cout)
        self.conv_3 = nn.Conv2d(cout, cout, 3, padding=1, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.res(self.activation(self.bn(self.conv_1(x))))
        return self.conv_3(skip), skip


class _UpBlock(nn.Module):
    """Transposed conv (x2) -> BN -> PReLU, concat with the skip, conv3x3 -> BN -> PReLU, residual."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv_1 = nn.ConvTranspose2d(cin, cin, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(cin)
        self.activation = nn.PReLU()
        self.layers = nn.Sequential(
            nn.Conv2d(cin + cskip, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.PReLU(),
            _ResidualBlock(cout),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.activation(self.bn(self.conv_1(x, output_size=skip.shape[-2:])))
        return self.layers(torch.cat([skip, up], dim=1))


class RCGANGenerator(nn.Module):
    """The rcGAN U-Net: ``[B, 2C + noise, H, W] -> [B, 2C, H, W]`` (any H, W)."""

    def __init__(self, config: RCGANConfig | None = None) -> None:
        super().__init__()
        cfg = config or RCGANConfig()
        widths = [cfg.chans * 2**i for i in range(cfg.depth)]
        cin = cfg.image_chans + cfg.noise_chans
        self.down_sample_layers = nn.ModuleList()
        for i, w in enumerate(widths):
            self.down_sample_layers.append(_DownBlock(cin, w, batch_norm=i > 0))
            cin = w
        self.conv = nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1), nn.BatchNorm2d(cin), nn.PReLU())
        self.up_sample_layers = nn.ModuleList()
        for i in reversed(range(cfg.depth)):
            cout = widths[i - 1] if i > 0 else widths[0]
            self.up_sample_layers.append(_UpBlock(cin, widths[i], cout))
            cin = cout
        self.conv2 = nn.Sequential(
            nn.Conv2d(cin, cin // 2, 1), nn.Conv2d(cin // 2, cfg.image_chans, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for layer in self.down_sample_layers:
            x, skip = layer(x)
            skips.append(skip)
        x = self.conv(x)
        for layer in self.up_sample_layers:
            x = layer(x, skips.pop())
        return self.conv2(x)


# ----------------------------------------------------------------------- discriminator


class RCGANDiscriminator(nn.Module):
    """The rcGAN critic ``D(x, y)``: two ``[B, 2C, H, W]`` images to one score ``[B, 1]``."""

    def __init__(self, config: RCGANConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or RCGANConfig()
        c0 = cfg.disc_chans[0]
        self.initial_layers = nn.Sequential(nn.Conv2d(2 * cfg.image_chans, c0, 3, padding=1), nn.LeakyReLU())
        self.encoder_layers = nn.ModuleList()
        for cin, cout in zip(cfg.disc_chans[:-1], cfg.disc_chans[1:]):
            self.encoder_layers.append(nn.Sequential(
                nn.AvgPool2d(2), nn.Conv2d(cin, cout, 3, padding=1), nn.InstanceNorm2d(cout),
                nn.LeakyReLU(0.2),
            ))
        factor = 2 ** (len(cfg.disc_chans) - 1)
        if cfg.disc_input_size is None:
            flat = cfg.disc_chans[-1]
        else:
            flat = cfg.disc_chans[-1] * (cfg.disc_input_size[0] // factor) * (cfg.disc_input_size[1] // factor)
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(flat, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        size = self.config.disc_input_size
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            raise InputError("image size does not match the discriminator's linear layer",
                             field="x", expected=f"[..., {size[0]}, {size[1]}] (or build with "
                             "disc_input_size=None for global pooling)", got=tuple(x.shape))
        out = self.initial_layers(torch.cat([x, y], dim=1))
        for layer in self.encoder_layers:
            out = layer(out)
        if size is None:
            out = out.mean(dim=(-2, -1))
        return self.dense(out)


def fold_batch_norms(generator: RCGANGenerator) -> RCGANGenerator:
    """A copy of an eval-mode generator with every BatchNorm folded into the conv before it
    (for inference only).

    ``BN(conv(x)) = conv'(x)`` with scaled weights and shifted bias: the same function up to
    float rounding, one pass over the activations fewer per BatchNorm.
    """
    gen = copy.deepcopy(generator)
    for mod in gen.modules():
        if isinstance(mod, nn.Sequential):
            for i in range(len(mod) - 1):
                if isinstance(mod[i], nn.Conv2d) and isinstance(mod[i + 1], nn.BatchNorm2d):
                    mod[i], mod[i + 1] = fuse_conv_bn_eval(mod[i], mod[i + 1]), nn.Identity()
        elif isinstance(mod, (_DownBlock, _UpBlock)) and isinstance(mod.bn, nn.BatchNorm2d):
            transpose = isinstance(mod.conv_1, nn.ConvTranspose2d)
            mod.conv_1 = fuse_conv_bn_eval(mod.conv_1, mod.bn, transpose=transpose)
            mod.bn = nn.Identity()
    # every PReLU now follows a conv whose fresh output nothing else reads: with one shared
    # slope it is an in-place leaky ReLU (the same values, no new tensor)
    for mod in gen.modules():
        for name, child in mod.named_children():
            if isinstance(child, nn.PReLU) and child.weight.numel() == 1:
                setattr(mod, name, nn.LeakyReLU(float(child.weight), inplace=True))
    return gen
