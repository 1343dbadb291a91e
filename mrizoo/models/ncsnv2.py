"""NCSNv2: the noise-conditional score network of Song & Ermon (NeurIPS 2020).

"Improved Techniques for Training Score-Based Generative Models". The network estimates
the score ``grad_x log p_sigma(x)`` of the data smoothed by Gaussian noise of standard
deviation ``sigma`` (per real channel). It is *unconditional*: the network sees only ``x``
and its output is divided by ``sigma`` (the paper's "technique 3"). Jalal et al. (NeurIPS
2021) train it on complex MVUE brain images as two channels (real, imag), normalised by
their 99th-percentile magnitude, with a geometric ladder of 2311 levels from 232 to 0.0066.

Architecture (a RefineNet with dilated residual stages):

- ``begin_conv`` (3x3) to ``ngf`` channels;
- residual stages ``res*`` of two pre-activation blocks (InstanceNorm++ -> ELU -> conv,
  twice); "down" stages halve the resolution with conv + 2x2 mean pooling, dilated stages
  keep it and use dilation 2 and 4;
- RefineNet blocks ``refine*`` from the deepest stage up: residual conv units on each input,
  multi-resolution fusion (3x3 conv + bilinear resize + sum), chained residual pooling
  (5x5 max-pool + conv, twice) and output residual conv units;
- InstanceNorm++ -> ELU -> ``end_conv`` (3x3) back to the input channels, divided by sigma.

Module and parameter names follow the reference implementation, so its checkpoints (e.g.
the csgm-mri-langevin brain prior, after removing the ``module.`` prefix) load with
``strict=True``. Three depths: ``"base"`` (NCSNv2, 32 px images), ``"deeper"`` (64-128 px) and
``"deepest"`` (256 px and up; the MRI prior).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mrizoo.errors import InputError

__all__ = [
    "NCSNv2Config",
    "LangevinConfig",
    "LANGEVIN_JALAL2021_BRAIN_T2_R4",
    "NCSNv2",
    "InstanceNorm2dPlus",
    "sigmas",
    "build_ncsnv2",
    "NCSNV2_JALAL2021",
    "NCSNV2_TINY",
]

# Per variant: residual stages (name, width multiple of ngf, resample, dilation), shallowest first,
# and the refine block that reads each stage (same order).
_STAGES: dict[str, list[tuple[str, int, str | None, int | None]]] = {
    "base": [("res1", 1, None, None), ("res2", 2, "down", None), ("res3", 2, "down", 2),
             ("res4", 2, "down", 4)],
    "deeper": [("res1", 1, None, None), ("res2", 2, "down", None), ("res3", 2, "down", None),
               ("res4", 4, "down", 2), ("res5", 4, "down", 4)],
    "deepest": [("res1", 1, None, None), ("res2", 2, "down", None), ("res3", 2, "down", None),
                ("res31", 2, "down", None), ("res4", 4, "down", 2), ("res5", 4, "down", 4)],
}
_REFINES: dict[str, list[str]] = {
    "base": ["refine4", "refine3", "refine2", "refine1"],
    "deeper": ["refine5", "refine4", "refine3", "refine2", "refine1"],
    "deepest": ["refine5", "refine4", "refine3", "refine31", "refine2", "refine1"],
}


@dataclass(frozen=True)
class LangevinConfig:
    """Settings of :func:`mrizoo.models.langevin.annealed_langevin` (here so that a prior's config holds them).

    ``step_lr``: ``eps`` of the step ``a = eps (sigma / sigma_L)^2`` (``sigma_L``: the last level
    of the whole ladder). ``steps_per_level``: Langevin steps per noise level.
    ``start_level`` / ``end_level``: the levels run, ``sigmas[start_level:end_level]``
    (``None``: to the end). ``noise_std``: ``gamma``, the measurement noise standard deviation
    per real component, in the units of the k-space. ``data_weight``: factor on the data
    term. ``percentile``: quantile of ``|x_MVUE|`` used to normalise. ``init``: ``"uniform"``
    or ``"pinv"``. ``seed``: seed of the chains' random numbers (``None``: the global
    generator). ``reconstruct_samples``: chains averaged by ``reconstruct``.

    ``late_from_level`` / ``late_steps_per_level``: from that level index on, run that many
    steps per level instead (``None``: ``steps_per_level`` throughout).
    ``data_grad_ratio``: when set, the data-consistency gradient of each chain is rescaled to
    this multiple of the norm of its prior score (replacing the ``1 / (sigma^2 + gamma^2)``
    weighting and ``data_weight``), as the csgm-mri-langevin code does for its brain runs.
    """

    step_lr: float = 5e-5
    steps_per_level: int = 3
    start_level: int = 0
    end_level: int | None = None
    noise_std: float = 0.0
    data_weight: float = 1.0
    percentile: float = 0.99
    init: Literal["uniform", "pinv"] = "uniform"
    seed: int | None = 0
    reconstruct_samples: int = 4
    late_from_level: int | None = None
    late_steps_per_level: int | None = None
    data_grad_ratio: float | None = None

    def __post_init__(self) -> None:
        for name in ("step_lr", "data_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError("must be a positive number", field=name, expected="> 0", got=value)
        if not (isinstance(self.noise_std, (int, float)) and math.isfinite(self.noise_std)
                and self.noise_std >= 0):
            raise InputError("must be a non-negative number", field="noise_std", expected=">= 0",
                             got=self.noise_std)
        for name in ("steps_per_level", "reconstruct_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError("must be a positive integer", field=name, expected="int >= 1", got=value)
        if isinstance(self.start_level, bool) or not isinstance(self.start_level, int) or self.start_level < 0:
            raise InputError("must be a non-negative integer", field="start_level", expected="int >= 0",
                             got=self.start_level)
        if self.end_level is not None and (not isinstance(self.end_level, int)
                                           or self.end_level <= self.start_level):
            raise InputError("must come after start_level", field="end_level",
                             expected=f"int > {self.start_level} or None", got=self.end_level)
        if (self.late_from_level is None) != (self.late_steps_per_level is None):
            raise InputError("late_from_level and late_steps_per_level go together", field="late_steps_per_level",
                             expected="both set or both None",
                             got=(self.late_from_level, self.late_steps_per_level))
        for name in ("late_from_level", "late_steps_per_level"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputError("must be a positive integer", field=name, expected="int >= 1 or None", got=value)
        if self.data_grad_ratio is not None and not (
                isinstance(self.data_grad_ratio, (int, float)) and not isinstance(self.data_grad_ratio, bool)
                and math.isfinite(self.data_grad_ratio) and self.data_grad_ratio > 0):
            raise InputError("must be a positive number", field="data_grad_ratio", expected="> 0 or None",
                             got=self.data_grad_ratio)
        if not 0.0 < self.percentile <= 1.0:
            raise InputError("must be a quantile", field="percentile", expected="in (0, 1]", got=self.percentile)
        if self.init not in ("uniform", "pinv"):
            raise InputError("unknown initialisation", field="init", expected="'uniform' or 'pinv'",
                             got=self.init)


@dataclass(frozen=True)
class NCSNv2Config:
    """NCSNv2 hyper-parameters and its noise ladder.

    ``channels``: image channels (2: real, imag). ``ngf``: base width. ``variant``: depth
    (``"base"``, ``"deeper"``, ``"deepest"``). ``num_classes``: number of noise levels of the
    geometric ladder from ``sigma_begin`` down to ``sigma_end``. ``rescale_input``: map the
    input through ``2 x - 1`` first, as the reference does for data that is neither
    logit-transformed nor rescaled (the MRI prior was trained that way). ``sampler``: the
    default settings of the posterior sampler built on this prior (``None``: those of
    :class:`LangevinConfig`), kept here so that they travel in the checkpoint's ``config.json``.
    """

    channels: int = 2
    ngf: int = 128
    variant: Literal["base", "deeper", "deepest"] = "deepest"
    num_classes: int = 2311
    sigma_begin: float = 232.0
    sigma_end: float = 0.0066
    rescale_input: bool = True
    sampler: LangevinConfig | None = None

    def __post_init__(self) -> None:
        for name in ("channels", "ngf", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError("must be a positive integer", field=name, expected="int >= 1", got=repr(value))
        if self.variant not in _STAGES:
            raise InputError("unknown NCSNv2 depth", field="variant",
                             expected=" or ".join(repr(v) for v in _STAGES), got=self.variant)
        for name in ("sigma_begin", "sigma_end"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError("must be a positive number", field=name, expected="> 0", got=value)
        if self.sigma_end > self.sigma_begin:
            raise InputError("the ladder must decrease", field="sigma_end",
                             expected=f"<= sigma_begin ({self.sigma_begin})", got=self.sigma_end)


#: The brain MVUE prior of Jalal et al. 2021 (FFHQ config of NCSNv2 with MRI noise levels).
NCSNV2_JALAL2021 = NCSNv2Config()

#: The sampler of the csgm-mri-langevin run for brain T2 at R=4: levels after index 1155 (the
#: code skips ``c <= 1155``), 3 steps per level up to index 1800 and 4 after, step 5e-5 x
#: (sigma / sigma_last)^2, the data gradient rescaled to 5 x the prior score's norm.
LANGEVIN_JALAL2021_BRAIN_T2_R4 = LangevinConfig(step_lr=5e-5, steps_per_level=3, start_level=1156,
                                                late_from_level=1801, late_steps_per_level=4,
                                                data_grad_ratio=5.0, percentile=0.99)

#: A small network and a short ladder for tests and smoke runs.
NCSNV2_TINY = NCSNv2Config(ngf=8, variant="base", num_classes=10, sigma_begin=1.0, sigma_end=0.01)


def sigmas(config: NCSNv2Config, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The geometric noise ladder ``[num_classes]``: ``sigma_begin`` down to ``sigma_end``."""
    logs = torch.linspace(math.log(config.sigma_begin), math.log(config.sigma_end),
                          config.num_classes, dtype=torch.float64)
    return torch.exp(logs).to(dtype)


# ------------------------------------------------------------------------------ layers


class InstanceNorm2dPlus(nn.Module):
    """InstanceNorm++: instance norm that puts back the (normalised) channel means.

    ``gamma * (IN(x) + alpha * m~) + beta`` with ``m~`` the per-channel spatial means
    standardised across channels, so the relative brightness of channels is not lost.
    """

    def __init__(self, num_features: int, bias: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.bias = bias
        self.alpha = nn.Parameter(torch.empty(num_features).normal_(1.0, 0.02))
        self.gamma = nn.Parameter(torch.empty(num_features).normal_(1.0, 0.02))
        self.beta = nn.Parameter(torch.zeros(num_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means = x.mean(dim=(2, 3))
        m = means.mean(dim=-1, keepdim=True)
        v = means.var(dim=-1, keepdim=True) if means.shape[-1] > 1 else torch.zeros_like(m)
        means = (means - m) / torch.sqrt(v + 1e-5)
        h = F.instance_norm(x, eps=1e-5) + means[..., None, None] * self.alpha[:, None, None]
        h = self.gamma[:, None, None] * h
        return h + self.beta[:, None, None] if self.beta is not None else h


def _conv3x3(cin: int, cout: int, bias: bool = True, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=bias)


class _ConvMeanPool(nn.Module):
    """Convolution followed by 2x2 mean pooling (an odd last row/column is dropped)."""

    def __init__(self, cin: int, cout: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(x), 2)


class _ResidualBlock(nn.Module):
    """Pre-activation block ``x -> shortcut(x) + conv2(act(norm2(conv1(act(norm1(x))))))``.

    ``resample="down"`` without dilation halves the resolution (conv + mean pool, shortcut
    1x1 conv + mean pool); with dilation it keeps the resolution and only changes the width
    (as in the reference).
    """

    def __init__(self, cin: int, cout: int, resample: str | None, dilation: int | None) -> None:
        super().__init__()
        self.resample = resample
        d = dilation or 1
        self.normalize1 = InstanceNorm2dPlus(cin)
        mid = cin if resample == "down" else cout
        self.conv1 = _conv3x3(cin, mid, dilation=d)
        self.normalize2 = InstanceNorm2dPlus(mid)
        if resample == "down" and dilation is None:
            self.conv2: nn.Module = _ConvMeanPool(mid, cout, 3)
            self.shortcut: nn.Module | None = _ConvMeanPool(cin, cout, 1)
        else:
            self.conv2 = _conv3x3(mid, cout, dilation=d)
            self.shortcut = _conv3x3(cin, cout, dilation=d) if (cin != cout or resample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.elu(self.normalize1(x)))
        out = self.conv2(F.elu(self.normalize2(out)))
        return out + (x if self.shortcut is None else self.shortcut(x))


class _RCU(nn.Module):
    """Residual conv units: ``n_blocks`` x (``n_stages`` x (ELU -> conv3x3 without bias) + skip)."""

    def __init__(self, features: int, n_blocks: int, n_stages: int = 2) -> None:
        super().__init__()
        self.n_blocks, self.n_stages = n_blocks, n_stages
        for i in range(n_blocks):
            for j in range(n_stages):
                setattr(self, f"{i + 1}_{j + 1}_conv", _conv3x3(features, features, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.n_blocks):
            residual = x
            for j in range(self.n_stages):
                x = getattr(self, f"{i + 1}_{j + 1}_conv")(F.elu(x))
            x = x + residual
        return x


class _CRP(nn.Module):
    """Chained residual pooling: ``x = ELU(x)``, then twice ``path = conv(maxpool5(path)); x += path``."""

    def __init__(self, features: int, n_stages: int = 2) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv3x3(features, features, bias=False) for _ in range(n_stages))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.elu(x)
        path = x
        for conv in self.convs:
            path = conv(F.max_pool2d(path, 5, stride=1, padding=2))
            x = path + x
        return x


class _MSF(nn.Module):
    """Multi-resolution fusion: conv3x3 of each input, resized (bilinear) to one shape, summed."""

    def __init__(self, in_planes: list[int], features: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv3x3(c, features) for c in in_planes)

    def forward(self, xs: list[torch.Tensor], shape: torch.Size) -> torch.Tensor:
        out = 0
        for conv, x in zip(self.convs, xs):
            out = out + F.interpolate(conv(x), size=tuple(shape), mode="bilinear", align_corners=True)
        return out


class _RefineBlock(nn.Module):
    """RefineNet block: RCUs per input, fusion (if several inputs), CRP, output RCUs."""

    def __init__(self, in_planes: list[int], features: int, start: bool = False, end: bool = False) -> None:
        super().__init__()
        self.adapt_convs = nn.ModuleList(_RCU(c, 2) for c in in_planes)
        self.output_convs = _RCU(features, 3 if end else 1)
        self.msf = None if start else _MSF(in_planes, features)
        self.crp = _CRP(features)

    def forward(self, xs: list[torch.Tensor], shape: torch.Size) -> torch.Tensor:
        hs = [adapt(x) for adapt, x in zip(self.adapt_convs, xs)]
        h = hs[0] if self.msf is None else self.msf(hs, shape)
        return self.output_convs(self.crp(h))


# ------------------------------------------------------------------------------- model


class NCSNv2(nn.Module):
    """Score network ``s(x, sigma) ~ grad log p_sigma(x)`` on ``[B, channels, H, W]`` (any H, W).

    ``forward(x, y)`` is the reference call with noise-level indices ``y`` ``[B]`` (long);
    :meth:`score` takes the noise level itself.
    """

    def __init__(self, config: NCSNv2Config | None = None) -> None:
        super().__init__()
        self.config = cfg = config or NCSNv2Config()
        self.register_buffer("sigmas", sigmas(cfg))
        ngf = cfg.ngf
        self.begin_conv = _conv3x3(cfg.channels, ngf)
        self.normalizer = InstanceNorm2dPlus(ngf)
        self.end_conv = _conv3x3(ngf, cfg.channels)

        stages = _STAGES[cfg.variant]
        self._stage_names = [s[0] for s in stages]
        self._refine_names = _REFINES[cfg.variant]
        widths = [ngf * mult for _, mult, _, _ in stages]
        cin = ngf
        for (name, _, resample, dilation), cout in zip(stages, widths):
            setattr(self, name, nn.ModuleList([
                _ResidualBlock(cin, cout, resample, dilation),
                _ResidualBlock(cout, cout, None, dilation),
            ]))
            cin = cout
        last = len(stages) - 1
        for i, name in enumerate(self._refine_names):
            if i == last:
                block = _RefineBlock([widths[i]], widths[i], start=True)
            else:
                # inputs: stage i and the refined map from below (widths[i] channels: the
                # deepest two stages have equal widths in every variant)
                block = _RefineBlock([widths[i], widths[i]], widths[i - 1] if i > 0 else widths[0],
                                     end=i == 0)
            setattr(self, name, block)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        h = 2 * x - 1.0 if self.config.rescale_input else x
        h = self.begin_conv(h)
        layers = []
        for name in self._stage_names:
            for block in getattr(self, name):
                h = block(h)
            layers.append(h)
        ref = None
        for i in reversed(range(len(layers))):
            block = getattr(self, self._refine_names[i])
            xs = [layers[i]] if ref is None else [layers[i], ref]
            ref = block(xs, layers[i].shape[-2:])
        return self.end_conv(F.elu(self.normalizer(ref)))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Score at the noise levels ``sigmas[y]`` (``y``: ``[B]`` indices)."""
        used = self.sigmas[y].view(x.shape[0], *([1] * (x.ndim - 1)))
        return self._net(x) / used

    def score(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """Score at noise level ``sigma`` (a number, or ``[B]`` per item)."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 1:
            sigma = sigma.view(-1, *([1] * (x.ndim - 1)))
        return self._net(x) / sigma


def build_ncsnv2(config: NCSNv2Config | None = None) -> NCSNv2:
    """The NCSNv2 score network for ``config``."""
    return NCSNv2(config)
