"""ConvDecoder: an un-trained convolutional decoder fitted to the measurements of one scan.

Darestani & Heckel (2021), "Accelerated MRI with un-trained neural networks": a decoder maps a
fixed random tensor through upsampling, 3x3 convolutions, ReLU and batch normalisation to a
complex image ``x``; its weights are fitted, per scan, so that ``M F S x`` matches the measured
k-space (``S``: ESPIRiT maps, estimated from the calibration region when none are given). No
training data is involved, so there is no training distribution to shift away from.

A network this size can fit the noise too. A seeded part of the measured locations
(:class:`~mrizoo.models.holdout.HoldoutSplit`, whole columns for column masks) is never fitted
and only scores the fit; :class:`~mrizoo.models.holdout.HoldoutStopper` keeps the weights with
the lowest held-out error and stops when it has not improved for ``patience`` scorings. The
output puts the measured samples (held-out ones included) back into the fitted k-space
(data consistency) and combines the coils as the reference is combined (RSS by default).

One addition to the original, for the step budget of a CPU: by default the decoder first draws
the CG-SENSE image of the fitted measurements (a warm start) before it is fitted to the k-space.
Default size and steps (chosen on the shipped demo scan, 230 x 180, 8 coils, 4x equispaced, on
a 2-core CPU): see :class:`ConvDecoderConfig`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from mrizoo.classical.cg_sense import cg_sense
from mrizoo.errors import InputError
from mrizoo.models.base import ReconModel, check_inputs
from mrizoo.models.holdout import HoldoutSplit, HoldoutStopper, calibration_region
from mrizoo.models.registry import Architecture, register_architecture
from mrizoo.physics.coils import rss
from mrizoo.physics.fft import fft2c, ifft2c

__all__ = ["ConvDecoderConfig", "ConvDecoder", "ConvDecoderRecon", "FitInfo", "build_convdecoder", "fit_convdecoder",
           "decoder_sizes"]

COMBINES = ("rss", "sense")
UPSAMPLES = ("bilinear", "nearest")
WARM_STARTS = ("cgsense", "none")


def _positive_int(value: object, name: str, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name} must be an integer >= {low}", field=name, expected=f"int >= {low}", got=repr(value))


@dataclass(frozen=True)
class ConvDecoderConfig:
    """Network size, fitting schedule and hold-out stopping of the ConvDecoder.

    - ``num_layers`` upsampling blocks of ``channels`` channels (3x3 convolutions), from a random
      input ``input_scale`` times smaller than the image along each axis (at least 4 x 4); the
      block sizes grow geometrically, as in the original decoder.
    - ``steps``: the most Adam steps (learning rate ``lr``); the held-out error is scored every
      ``eval_every`` steps and fitting stops after ``patience`` scorings without a new best.
    - ``holdout``: fraction of the measured units outside the calibration region held out.
    - ``combine``: ``rss`` (root-sum-of-squares of the data-consistent coil images, like the
      fastMRI reference) or ``sense`` (magnitude of the fitted image itself, no data consistency).

    - ``warm_start``: ``cgsense`` first fits the decoder's image, for ``warm_steps`` Adam steps,
      to the CG-SENSE image of the fitted (not held-out) measurements; ``none`` starts from the
      random initialisation as the original does.
    - ``upsample``: ``nearest`` (the original's) or ``bilinear``.

    Defaults (chosen on the shipped demo scan only): 6 blocks of 32 channels, nearest upsampling,
    Adam at 2e-3, 150 warm-start steps and at most 150 k-space steps, 5% of the measured units
    held out. The original's 160 channels and thousands of steps from a random start cost hours
    per slice on a CPU; from a random start, a few hundred steps leave the decoder either near the
    zero-filled image (bilinear) or fitting an aliased image whose held-out error exceeds that of
    predicting zeros (nearest, equispaced masks). The warm start reaches a better held-out error
    than CG-SENSE itself within the budget: about a minute per 230 x 180 8-coil slice on two
    cores (``benchmarks/convdecoder.py`` measures it).
    """

    num_layers: int = 6
    channels: int = 32
    input_scale: int = 16
    kernel_size: int = 3
    warm_start: str = "cgsense"
    warm_steps: int = 150
    steps: int = 150
    lr: float = 0.002
    eval_every: int = 10
    patience: int = 6
    holdout: float = 0.05
    seed: int = 0
    combine: str = "rss"
    upsample: str = "nearest"

    def __post_init__(self) -> None:
        _positive_int(self.num_layers, "num_layers", 2)
        _positive_int(self.channels, "channels")
        _positive_int(self.input_scale, "input_scale")
        _positive_int(self.steps, "steps")
        _positive_int(self.warm_steps, "warm_steps", 0)
        if self.warm_start not in WARM_STARTS:
            raise InputError("unknown warm start", field="warm_start", expected=" | ".join(WARM_STARTS),
                             got=repr(self.warm_start))
        _positive_int(self.eval_every, "eval_every")
        _positive_int(self.patience, "patience")
        if isinstance(self.kernel_size, bool) or not isinstance(self.kernel_size, int) or self.kernel_size < 1 \
                or self.kernel_size % 2 == 0:
            raise InputError("kernel_size must be an odd positive integer", field="kernel_size",
                             expected="1, 3, 5, ...", got=repr(self.kernel_size))
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (0 < self.lr < math.inf):
            raise InputError("lr must be a positive number", field="lr", expected="a number > 0", got=repr(self.lr))
        if isinstance(self.holdout, bool) or not isinstance(self.holdout, (int, float)) \
                or not 0.0 <= self.holdout < 0.9:
            raise InputError("holdout must be a fraction", field="holdout", expected="a number in [0, 0.9)",
                             got=repr(self.holdout))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError("seed must be an integer", field="seed", expected="int", got=repr(self.seed))
        if self.upsample not in UPSAMPLES:
            raise InputError("unknown upsampling mode", field="upsample", expected=" | ".join(UPSAMPLES),
                             got=repr(self.upsample))
        if self.combine not in COMBINES:
            raise InputError("unknown coil combination", field="combine", expected=" | ".join(COMBINES),
                             got=repr(self.combine))


def decoder_sizes(shape: tuple[int, int], num_layers: int, input_scale: int) -> list[tuple[int, int]]:
    """Spatial sizes: the random input's, then one per block, growing geometrically to ``shape``."""
    h, w = int(shape[0]), int(shape[1])
    h0, w0 = min(h, max(4, round(h / input_scale))), min(w, max(4, round(w / input_scale)))
    n = num_layers - 1
    sizes = [(h0, w0)]
    for i in range(1, n):
        sizes.append((max(h0, round(h0 * (h / h0) ** (i / n))), max(w0, round(w0 * (w / w0) ** (i / n)))))
    return sizes + [(h, w)]


class ConvDecoder(nn.Module):
    """The decoder network: fixed random input -> (upsample, conv, ReLU, BN) blocks -> 2 channels (re, im)."""

    def __init__(self, shape: tuple[int, int], config: ConvDecoderConfig) -> None:
        super().__init__()
        sizes = decoder_sizes(shape, config.num_layers, config.input_scale)
        c, k = config.channels, config.kernel_size
        self.sizes = sizes
        self.register_buffer("z", torch.rand(1, c, *sizes[0]) * 0.1)  # fixed, never fitted
        blocks: list[nn.Module] = []
        for size in sizes[1:]:
            up = nn.Upsample(size=size, mode=config.upsample,
                             **({"align_corners": False} if config.upsample == "bilinear" else {}))
            blocks += [up,
                       nn.Conv2d(c, c, k, padding=k // 2, padding_mode="reflect", bias=False),
                       nn.ReLU(), nn.BatchNorm2d(c)]
        blocks += [nn.Conv2d(c, c, k, padding=k // 2, padding_mode="reflect", bias=False), nn.ReLU(),
                   nn.BatchNorm2d(c), nn.Conv2d(c, 2, 1)]
        self.net = nn.Sequential(*blocks)

    def forward(self) -> torch.Tensor:
        """The complex image ``[H, W]``."""
        out = self.net(self.z)[0]
        return torch.complex(out[0], out[1])


@dataclass
class FitInfo:
    """What one fit did: steps run, the kept step, the held-out errors ``(step, error)`` and seconds."""

    steps: int
    best_step: int | None
    stopped_early: bool
    history: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0


def _rel_error(pred: torch.Tensor, target: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    diff = (pred - target) * m
    return (diff.real.square() + diff.imag.square()).sum() / (target.abs().square() * m).sum().clamp_min(1e-30)


def _warm_start(net: ConvDecoder, opt: torch.optim.Optimizer, y: torch.Tensor, fit: torch.Tensor,
                maps: torch.Tensor, steps: int) -> None:
    """Fit the decoder's image to the CG-SENSE image of the fitted measurements (inside the maps' support).

    A few hundred k-space steps from a random start leave the decoder near the zero-filled image; starting
    from a decoder that already draws the SENSE solution reaches a better fit in the step budget of a CPU.
    The held-out measurements are not used.
    """
    target = cg_sense(y * fit, fit, maps)
    support = (maps.abs().square().sum(0) > 0).to(y.real.dtype)
    norm = (target.abs().square() * support).sum().clamp_min(1e-30)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        diff = net() - target
        loss = ((diff.real.square() + diff.imag.square()) * support).sum() / norm
        loss.backward()
        opt.step()


def fit_convdecoder(kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor,
                    config: ConvDecoderConfig) -> tuple[torch.Tensor, FitInfo]:
    """Fit one decoder to one slice: ``kspace``/``maps`` ``[C, H, W]``, ``mask`` bool ``[H, W]``.

    Returns the magnitude image ``[H, W]`` and the :class:`FitInfo`. Seeded: the same inputs
    and config give the same image.
    """
    start = time.perf_counter()
    h, w = kspace.shape[-2:]
    scale = float(ifft2c(kspace).abs().square().sum(0).sqrt().max())  # the zero-filled RSS peak
    y = kspace / scale
    free = bool((mask.cpu() & ~calibration_region(mask)).any())  # nothing to hold out when fully sampled
    split = HoldoutSplit(mask, holdout=config.holdout if free else 0.0, loss=0.0, seed=config.seed)
    fit_m = split.available.to(kspace.device)[None].to(y.real.dtype)
    held_m = split.held_out.to(kspace.device)[None].to(y.real.dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = ConvDecoder((h, w), config).to(kspace.device)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    if config.warm_start == "cgsense" and config.warm_steps > 0:
        _warm_start(net, opt, y, split.available.to(kspace.device), maps, config.warm_steps)
    stopper = HoldoutStopper(config.patience)
    scored = bool(held_m.any())
    step = 0
    for step in range(1, config.steps + 1):
        opt.zero_grad(set_to_none=True)
        k = fft2c(maps * net())
        loss = _rel_error(k, y, fit_m)
        loss.backward()
        opt.step()
        if scored and (step % config.eval_every == 0 or step == config.steps):
            with torch.no_grad():
                err = float(_rel_error(fft2c(maps * net()), y, held_m))
            if stopper.update(step, err, net):
                break
    if scored:
        stopper.restore(net)
    with torch.no_grad():
        x = net()
        if config.combine == "sense":
            image = x.abs()
        else:
            m = torch.as_tensor(mask, device=kspace.device)[None]
            image = rss(ifft2c(torch.where(m, y, fft2c(maps * x))))
    info = FitInfo(steps=step, best_step=stopper.best_step if scored else step, stopped_early=stopper.stopped,
                   history=list(stopper.history), seconds=time.perf_counter() - start)
    return (image * scale).to(torch.float32), info


class ConvDecoderRecon(ReconModel):
    """ConvDecoder as a zoo model: ``reconstruct`` fits a fresh decoder to each slice of the batch.

    The zoo model itself holds no weights (nothing to load); :attr:`last_fit` holds the
    :class:`FitInfo` of every slice of the latest call.
    """

    needs_maps = True

    def __init__(self, config: ConvDecoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or ConvDecoderConfig()
        self.last_fit: list[FitInfo] = []

    def reconstruct(self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None, *,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        kspace, mask, maps = check_inputs(kspace, mask, maps)
        maps = self._maps(kspace, maps)
        images, infos = [], []
        with torch.enable_grad():
            for b in range(kspace.shape[0]):
                image, info = fit_convdecoder(kspace[b], mask[b], maps[b], self.config)
                images.append(image)
                infos.append(info)
        self.last_fit = infos
        return torch.stack(images)


def build_convdecoder(config: ConvDecoderConfig | None = None) -> ConvDecoderRecon:
    return ConvDecoderRecon(config)


register_architecture(Architecture(
    "convdecoder", "un-trained convolutional decoder fitted to one scan's k-space (Darestani & Heckel 2021)",
    ConvDecoderConfig, build_convdecoder, needs_maps=True, domain="image",
))
