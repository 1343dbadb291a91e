"""The fastMRI U-Net, its normalised complex wrapper, and the image-domain U-Net model.

Layer layout and state-dict keys follow the fastMRI reference U-Net, so its official weights
load with ``strict=True``:

- down path: ``down_sample_layers.{i}`` conv blocks (widths ``chans * 2**i``), each followed
  by 2x2 average pooling; bottleneck ``conv``;
- up path: ``up_transpose_conv.{i}`` (2x2 transposed conv, stride 2) then ``up_conv.{i}`` on the
  concatenation with the skip; the last ``up_conv`` entry also holds the 1x1 output conv
  (``up_conv.{P-1}.1``), the only layer with a bias.

A conv block is ``conv3x3 (no bias) -> InstanceNorm -> LeakyReLU(0.2) -> Dropout2d``, twice
(keys ``layers.0.weight`` and ``layers.4.weight``). Odd sizes are handled by reflect-padding the
up-sampled map by one row/column at the bottom/right where it is smaller than the skip.

Inference on CPU (eval mode, no gradients, sizes divisible by ``2**num_pool_layers``) takes a
fused channels-last pass over the same weights (:func:`_fast_forward`): the same outputs to
float32 rounding, markedly faster for narrow networks. For more speed, ``model.compile(options=
{"freezing": True})`` (TorchInductor; compiles on the first call and needs a C++ compiler;
frozen weights: recompile after changing them) — see ``benchmarks/unet_varnet_speed.py``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mrizoo.errors import InputError
from mrizoo.models.base import ReconModel
from mrizoo.models.image_wrapper import image_domain_reconstruct, pad_amounts
from mrizoo.models.registry import Architecture, register_architecture

__all__ = [
    "UnetConfig",
    "Unet",
    "NormUnet",
    "UnetRecon",
    "build_unet",
    "UNET_LIN2024_SMALL",
    "UNET_LIN2024_LARGE",
    "UNET_FASTMRI_LEADERBOARD",
    "UNET_PRESETS",
]


def _positive_int(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError("must be a positive integer", field=field, expected="int >= 1", got=repr(value))


@dataclass(frozen=True)
class UnetConfig:
    """Hyper-parameters of the fastMRI U-Net."""

    in_chans: int = 1
    out_chans: int = 1
    chans: int = 32  # width of the first conv block; doubles at each pooling level
    num_pool_layers: int = 4
    drop_prob: float = 0.0
    # image-domain model only: clamp the standardized input to [-clamp, clamp] (fastMRI: 6)
    input_clamp: float | None = None

    def __post_init__(self) -> None:
        if self.input_clamp is not None and not float(self.input_clamp) > 0:
            raise InputError("input clamp must be positive", field="input_clamp", expected="> 0 or None",
                             got=self.input_clamp)
        for name in ("in_chans", "out_chans", "chans", "num_pool_layers"):
            _positive_int(getattr(self, name), name)
        if not 0.0 <= float(self.drop_prob) < 1.0:
            raise InputError("dropout probability out of range", field="drop_prob",
                             expected="0 <= p < 1", got=self.drop_prob)


#: Lin & Heckel 2024 small U-Net, ~7.8M parameters.
UNET_LIN2024_SMALL = UnetConfig(chans=32)
#: Lin & Heckel 2024 large U-Net, ~124M parameters.
UNET_LIN2024_LARGE = UnetConfig(chans=128)
#: fastMRI leaderboard U-Net (official checkpoints), 496,372,225 parameters.
UNET_FASTMRI_LEADERBOARD = UnetConfig(chans=256, input_clamp=6.0)

UNET_PRESETS: dict[str, UnetConfig] = {
    "lin2024-small": UNET_LIN2024_SMALL,
    "lin2024-large": UNET_LIN2024_LARGE,
    "fastmri-leaderboard": UNET_FASTMRI_LEADERBOARD,
}


class ConvBlock(nn.Module):
    """Two rounds of conv3x3 (no bias) -> InstanceNorm -> LeakyReLU(0.2) -> Dropout2d."""

    def __init__(self, in_chans: int, out_chans: int, drop_prob: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin in (in_chans, out_chans):
            layers += [
                nn.Conv2d(cin, out_chans, kernel_size=3, padding=1, bias=False),
                nn.InstanceNorm2d(out_chans),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Dropout2d(drop_prob),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class UpBlock(nn.Module):
    """2x up-sampling: transposed conv 2x2 stride 2 (no bias) -> InstanceNorm -> LeakyReLU(0.2)."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(in_chans, out_chans, kernel_size=2, stride=2, bias=False),
            nn.InstanceNorm2d(out_chans),
            nn.LeakyReLU(0.2, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Unet(nn.Module):
    """fastMRI-layout U-Net: ``[N, in_chans, H, W]`` -> ``[N, out_chans, H, W]`` (any H, W)."""

    def __init__(self, config: UnetConfig | None = None) -> None:
        super().__init__()
        config = UnetConfig() if config is None else config
        self.config = config
        p = config.drop_prob
        widths = [config.chans * 2**i for i in range(config.num_pool_layers)]
        inputs = [config.in_chans, *widths[:-1]]
        self.down_sample_layers = nn.ModuleList(ConvBlock(a, b, p) for a, b in zip(inputs, widths))
        self.conv = ConvBlock(widths[-1], 2 * widths[-1], p)
        self.up_transpose_conv = nn.ModuleList(UpBlock(2 * w, w) for w in reversed(widths))
        up_conv: list[nn.Module] = [ConvBlock(2 * w, w, p) for w in reversed(widths)]
        up_conv[-1] = nn.Sequential(up_conv[-1], nn.Conv2d(widths[0], config.out_chans, kernel_size=1))
        self.up_conv = nn.ModuleList(up_conv)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if _use_fast_path(self, image):
            return _fast_forward(self, image)
        skips: list[torch.Tensor] = []
        x = image
        for block in self.down_sample_layers:
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
        x = self.conv(x)
        for up, block in zip(self.up_transpose_conv, self.up_conv):
            skip = skips.pop()
            x = up(x)
            dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
            if dh or dw:  # odd size at this level: one extra row/column, mirrored
                x = F.pad(x, (0, dw, 0, dh), mode="reflect")
            x = block(torch.cat([x, skip], dim=1))
        return x


_CL = torch.channels_last
_PACK_OPS = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise") \
    and hasattr(torch.ops.mkldnn, "_reorder_convolution_weight")
_SUM_OP = _PACK_OPS and hasattr(torch.ops.mkldnn, "_convolution_pointwise_")


def _use_fast_path(net: Unet, x: torch.Tensor) -> bool:
    """Inference on CPU with every level even: the fused path applies (same results to float32 rounding).

    Not while ``torch.compile`` traces: the compiler fuses the plain pass better than this one.
    """
    if net.training or torch.is_grad_enabled() or x.device.type != "cpu" or x.ndim != 4:
        return False
    if torch.compiler.is_compiling():
        return False
    if x.dtype not in (torch.float32, torch.float64) or x.numel() == 0:
        return False
    step = 2**net.config.num_pool_layers
    return x.shape[-2] % step == 0 and x.shape[-1] % step == 0


def _center_(y: torch.Tensor, eps: float, dims: tuple[int, ...]) -> torch.Tensor:
    """Subtract the mean over ``dims`` in place; return ``1 / sqrt(var + eps)`` (InstanceNorm's scale).

    Two passes (mean, then the mean square of the centred values): as accurate as the
    channels-first kernel of ``nn.InstanceNorm2d`` (torch's channels-last batch-norm statistics
    accumulate less accurately).
    """
    count = 1
    for d in dims:
        count *= y.shape[d]
    y.sub_(y.sum(dim=dims, keepdim=True).div_(count))
    return torch.rsqrt((y * y).sum(dim=dims, keepdim=True).div_(count).add_(eps))


def _norm_lrelu_(y: torch.Tensor, eps: float) -> torch.Tensor:
    """InstanceNorm (no affine) then LeakyReLU(0.2), in place on ``y`` (a fresh conv output)."""
    return F.leaky_relu_(y.mul_(_center_(y, eps, (2, 3))), 0.2)


_PACK_MAX = 1 << 22  # weights of at most 4M values (16 MB) are kept pre-packed
# layer -> {input channels (start, stop): ((data pointer, version, input shape), packed weight)};
# outside the modules, so that copying or pickling a model never meets oneDNN's opaque tensors
_PACKED: weakref.WeakKeyDictionary[nn.Conv2d, dict[tuple[int, int | None], tuple[tuple[object, ...], torch.Tensor]]] = \
    weakref.WeakKeyDictionary()
_ONE = [1, 1]
_ALL = (0, None)


def _prepacked(conv: nn.Conv2d, x: torch.Tensor, part: tuple[int, int | None] = _ALL) -> torch.Tensor | None:
    """oneDNN's packed copy of ``conv``'s 3x3 weight (input channels ``part``) for inputs like ``x``.

    Packing once per layer saves the re-order ``F.conv2d`` does on every call (measured: equal or
    faster for every layer of the U-Net, 0.4-0.6x for the deep ones and the first). Cached per
    layer and re-made when the weight's storage or version changes (``load_state_dict``,
    optimiser steps and any in-place op on the parameter bump it; writes through
    ``weight.data`` do not, as for every autograd version check) or when the input shape does.
    None where oneDNN's ops are missing, for float64 and for weights above ``_PACK_MAX``.
    """
    w = conv.weight
    if not _PACK_OPS or x.dtype != torch.float32 or w.numel() > _PACK_MAX:
        return None
    key = (w.data_ptr(), w._version, tuple(x.shape))
    parts = _PACKED.setdefault(conv, {})
    cached = parts.get(part)
    if cached is None or cached[0] != key:
        weight = w[:, part[0] : part[1]].contiguous()  # the whole weight itself for _ALL
        packed = torch.ops.mkldnn._reorder_convolution_weight(weight, _ONE, _ONE, _ONE, 1, list(x.shape))
        cached = parts[part] = (key, packed)
    return cached[1]


def _packed_conv(x: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """3x3 convolution (padding 1, no bias) of ``x`` with a weight from :func:`_prepacked`."""
    return torch.ops.mkldnn._convolution_pointwise(x, packed, None, _ONE, _ONE, _ONE, 1, "none", [], "")


def _conv3x3(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    packed = _prepacked(conv, x)
    return F.conv2d(x, conv.weight, padding=1) if packed is None else _packed_conv(x, packed)


def _conv3x3_pair(up: torch.Tensor, skip: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(cat([up, skip]))`` without the concatenation: the skip's half of the weight, then
    the up-sampled half accumulated into the same output by oneDNN (a sum post-op)."""
    c = up.shape[1]
    first = _prepacked(conv, up, (0, c)) if _SUM_OP else None
    second = _prepacked(conv, skip, (c, None)) if first is not None else None
    if second is None:
        return _conv3x3(torch.cat([up, skip], dim=1), conv)
    return torch.ops.mkldnn._convolution_pointwise_.binary(_packed_conv(skip, second), up, first, None, _ONE, _ONE,
                                                           _ONE, 1, "add", 1.0, None, [], None)


def _fast_block(x: torch.Tensor, block: ConvBlock, skip: torch.Tensor | None = None) -> torch.Tensor:
    """A conv block; with ``skip``, on ``cat([x, skip])`` (the up path) without building it."""
    layers = block.layers
    y = _conv3x3(x, layers[0]) if skip is None else _conv3x3_pair(x, skip, layers[0])
    x = _norm_lrelu_(y, layers[1].eps)
    return _norm_lrelu_(_conv3x3(x, layers[4]), layers[5].eps)


def _fast_up(x: torch.Tensor, block: UpBlock) -> torch.Tensor:
    """Transposed conv 2x2 / stride 2 as one matrix product, then InstanceNorm and LeakyReLU.

    Output pixel ``(2i + a, 2j + b)`` depends on input pixel ``(i, j)`` only, so with ``x`` as
    ``[N, H * W, Ci]`` the layer is ``x @ W`` with ``W`` reshaped ``[Ci, 2 * 2 * Co]``; the 2x2
    interleave is one copy at the end (the statistics do not depend on the pixel order).
    """
    n, ci, h, w = x.shape
    weight = block.layers[0].weight  # [Ci, Co, 2, 2]
    co = weight.shape[1]
    y = torch.matmul(x.permute(0, 2, 3, 1).reshape(n, h * w, ci), weight.permute(0, 2, 3, 1).reshape(ci, 4 * co))
    flat = y.view(n, 4 * h * w, co)
    F.leaky_relu_(flat.mul_(_center_(flat, block.layers[1].eps, (1,))), 0.2)
    out = torch.empty((n, co, 2 * h, 2 * w), dtype=y.dtype, device=y.device, memory_format=_CL)
    out.permute(0, 2, 3, 1).view(n, h, 2, w, 2, co).copy_(y.view(n, h, w, 2, 2, co).transpose(2, 3))
    return out


def _fast_forward(net: Unet, image: torch.Tensor) -> torch.Tensor:
    """Inference-only U-Net pass: same layers and weights, fewer and cheaper memory passes.

    Exact up to float32 rounding: activations are channels-last (oneDNN's convolutions are
    markedly faster so, most of all for narrow layers), instance norms are computed in place,
    and transposed convs are matrix products.
    """
    x = image.contiguous(memory_format=_CL)
    skips: list[torch.Tensor] = []
    for block in net.down_sample_layers:
        x = _fast_block(x, block)
        skips.append(x)
        x = F.avg_pool2d(x, kernel_size=2, stride=2)
    x = _fast_block(x, net.conv)
    for up, block in zip(net.up_transpose_conv, net.up_conv):
        x, skip = _fast_up(x, up), skips.pop()
        if isinstance(block, ConvBlock):
            x = _fast_block(x, block, skip)
        else:  # last level: conv block, then the 1x1 output conv
            x = block[1](_fast_block(x, block[0], skip))
    return x.contiguous()


class NormUnet(nn.Module):
    """U-Net on complex images in fastMRI's real layout ``[B, C, H, W, 2]``.

    Real and imaginary parts of the ``C`` complex channels become ``2C`` U-Net channels
    (all real parts first). Each sample is normalised by the mean and (unbiased) standard
    deviation of its real parts and, separately, of its imaginary parts, zero-padded to a
    multiple of ``pad_multiple``, passed through the U-Net, cropped and de-normalised.
    """

    def __init__(
        self,
        chans: int,
        num_pools: int,
        in_chans: int = 2,
        out_chans: int = 2,
        drop_prob: float = 0.0,
        pad_multiple: int = 16,
    ) -> None:
        super().__init__()
        if in_chans % 2 or out_chans % 2:
            raise InputError("complex channels come in real/imaginary pairs", field="in_chans/out_chans",
                             expected="even numbers", got=(in_chans, out_chans))
        self.pad_multiple = pad_multiple
        self.unet = Unet(UnetConfig(in_chans, out_chans, chans, num_pools, drop_prob))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[-1] != 2:
            raise InputError("NormUnet expects real/imaginary pairs in the last axis", field="x",
                             expected="[B, C, H, W, 2]", got=tuple(x.shape))
        b, c, h, w, _ = x.shape
        x = x.permute(0, 4, 1, 2, 3).reshape(b, 2, c * h * w)  # [B, re/im, C*H*W]
        mean = x.mean(dim=2, keepdim=True)
        std = x.std(dim=2, keepdim=True)
        std = torch.where(std > 0, std, torch.ones_like(std))  # constant input: no division by 0
        x = ((x - mean) / std).reshape(b, 2 * c, h, w)
        ph, pw = pad_amounts(h, self.pad_multiple), pad_amounts(w, self.pad_multiple)
        x = F.pad(x, (*pw, *ph))
        y = self.unet(x)
        y = y[..., ph[0] : ph[0] + h, pw[0] : pw[0] + w]
        co = y.shape[1] // 2
        y = y.reshape(b, 2, co * h * w) * std + mean
        return y.reshape(b, 2, co, h, w).permute(0, 2, 3, 4, 1).contiguous()


class UnetRecon(Unet, ReconModel):
    """Image-domain U-Net reconstruction (Lin & Heckel 2024; fastMRI U-Net baseline).

    ``forward`` is the bare U-Net (state dict identical to :class:`Unet`, so fastMRI's
    official U-Net weights load directly). ``reconstruct`` feeds it the RSS of the zero-filled
    image, standardized per sample and padded to a multiple of 16 (see
    :mod:`mrizoo.models.image_wrapper`), and de-standardizes the output. ``clamp=6`` reproduces
    fastMRI's U-Net input pipeline, which clamps the standardized image to ``[-6, 6]``
    (the default of ``UnetConfig.input_clamp`` in the leaderboard preset).
    """

    adapt_family = "image"

    def __init__(self, config: UnetConfig | None = None, *, clamp: float | None = None) -> None:
        config = UnetConfig() if config is None else config
        if config.in_chans != 1 or config.out_chans != 1:
            raise InputError("the image-domain U-Net maps one magnitude image to one",
                             field="in_chans/out_chans", expected=(1, 1),
                             got=(config.in_chans, config.out_chans))
        super().__init__(config)
        self.clamp = config.input_clamp if clamp is None else clamp
        self.pad_multiple = max(16, 2**config.num_pool_layers)

    def reconstruct(
        self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None, *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        return image_domain_reconstruct(self, kspace, mask, multiple=self.pad_multiple, clamp=self.clamp)


def build_unet(config: UnetConfig | None = None, *, clamp: float | None = None) -> UnetRecon:
    """The image-domain U-Net reconstruction model for ``config`` (default: Lin & Heckel 2024 small)."""
    return UnetRecon(UNET_LIN2024_SMALL if config is None else config, clamp=clamp)


register_architecture(Architecture(
    "unet", "image-domain U-Net on the zero-filled RSS image (fastMRI layout, Lin & Heckel 2024)",
    UnetConfig, build_unet,
    {"lin2024-small": UNET_LIN2024_SMALL, "lin2024-large": UNET_LIN2024_LARGE,
     "fastmri-leaderboard": UNET_FASTMRI_LEADERBOARD},
    domain="image", losses=("ssim", "l1", "ssim_l1"), task="supervised", adapts=True,
))
