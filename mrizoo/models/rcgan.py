"""rcGAN: a conditional GAN that draws posterior samples of multi-coil MR images.

Bendel, Ahmad & Schniter, "A Regularized Conditional GAN for Posterior Sampling in Image
Recovery Problems", NeurIPS 2023. The generator maps the zero-filled multi-coil image ``y``
(``C`` coils as ``[real(C), imag(C)]`` channels, normalised by one scalar mean/std) plus
``noise_chans`` channels of white Gaussian noise ``z`` to a multi-coil image; every draw of
``z`` gives one posterior sample. The sampled k-space of each output is then replaced by the
measurement (data consistency), so every sample agrees exactly with the data.

The networks (layout and config) are in :mod:`mrizoo.models.rcgan_nets`.

Coils: the network is built for ``in_coils`` coils. With ``coil_compression`` (the default for
new configs) every scan's coils are first rotated or compressed by SVD to that many virtual
coils (:mod:`mrizoo.physics.coil_compression`, as Bendel et al. do on fastMRI; fewer coils are
zero-padded); without it (checkpoints written before the option existed) coils pass unchanged
when their count matches and are compressed or padded only when it differs. The samples are
mapped back to the physical coils (``A^H``) before the measured samples are put back, so
samples, maps and data consistency always live in the scan's own coils.
:func:`rcgan_input` is the one input preparation that training and inference share.

Coil combination of the samples (``coil_combine``), each to a magnitude image:

- ``"sense"``: SENSE with the given maps, or ESPIRiT maps estimated from the central 16 k-space
  lines with kernel 6 and crop 0.70, as in the paper's evaluation (for MVUE-style references);
- ``"rss"``: root-sum-of-squares of each sample's coil images;
- ``"projected"``: each sample's coil images projected onto the unit coil profile of the
  samples' mean, ``Re <xbar / |xbar|, x_i>`` per pixel (``|xbar|`` its RSS). The projection is
  linear, so the mean of the combined samples is exactly the RSS of the mean coil images: the
  P-sample average of Bendel et al. (the average of the complex samples, then combined), scored
  like RSS references. A single sample carries its spread along the mean's profile only, not
  the noise floor that the RSS of each sample adds (pure-noise pixels may come out negative).

The reported estimate is always the mean of the combined samples (``sample(...).mean``), and
``reconstruct`` returns that same mean of ``reconstruct_samples`` samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mrizoo.errors import InputError
from mrizoo.models.base import PosteriorSamples, ReconModel, check_inputs
from mrizoo.models.rcgan_nets import (
    RCGAN_BENDEL2023,
    RCGANConfig,
    RCGANDiscriminator,
    RCGANGenerator,
    _positive_int,
    fold_batch_norms,
)
from mrizoo.models.registry import Architecture, register_architecture
from mrizoo.physics.coil_compression import apply_compression, expand_coils, virtual_coil_matrix
from mrizoo.physics.coils import rss, sense_combine
from mrizoo.physics.espirit import espirit_maps
from mrizoo.physics.fft import fft2c, ifft2c

__all__ = [
    "normalized_measurement",
    "stack_coils",
    "RCGANInput",
    "rcgan_input",
    "RCGANConfig",
    "RCGAN",
    "RCGANGenerator",
    "RCGANDiscriminator",
    "build_rcgan",
    "build_rcgan_discriminator",
    "RCGAN_BENDEL2023",
]


# ------------------------------------------------------------------------------ model


def stack_coils(coil_images: torch.Tensor) -> torch.Tensor:
    """Complex ``[B, C, H, W]`` -> real ``[B, 2C, H, W]`` as ``[real(C), imag(C)]``."""
    return torch.cat([coil_images.real, coil_images.imag], dim=1)


def _unstack(x: torch.Tensor) -> torch.Tensor:
    """Real ``[B, 2C, H, W]`` (``[real(C), imag(C)]``) -> complex ``[B, C, H, W]``."""
    c = x.shape[1] // 2
    return torch.complex(x[:, :c].float(), x[:, c:].float())


def normalized_measurement(kspace: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The generator's conditioning ``y`` from masked k-space ``[B, C, H, W]``.

    ``y`` is the zero-filled coil images stacked ``[real, imag]`` and standardised by a scalar
    mean and std per item; returns ``(y, mean, std)`` (``[B, 1, 1, 1]``) so targets and samples
    can be put in (or taken out of) the same normalised domain.
    """
    stacked = stack_coils(ifft2c(kspace))
    mean = stacked.mean(dim=(1, 2, 3), keepdim=True)
    std = stacked.std(dim=(1, 2, 3), keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (stacked - mean) / std, mean, std


@dataclass(frozen=True)
class RCGANInput:
    """What the generator reads, prepared from a scan with any number of coils ``C``.

    ``y``: ``[B, 2V, H, W]`` normalised zero-filled image of the ``V = in_coils`` virtual coils;
    ``mean``, ``std``: ``[B, 1, 1, 1]`` of that normalisation; ``mask``: ``[B, H, W]`` bool;
    ``target``: the fully sampled k-space given as ``full``, compressed with the same matrix and
    put in the same normalised domain (else None); ``matrix``: ``[B, V, C]`` compression applied
    (None: coils passed unchanged); ``coils``: virtual coils that carry data, ``min(C, V)`` (the
    channels of the others are padding).
    """

    y: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor | None
    matrix: torch.Tensor | None
    coils: int


def rcgan_input(
    config: RCGANConfig, kspace: torch.Tensor, mask: torch.Tensor, full: torch.Tensor | None = None,
) -> RCGANInput:
    """The generator's input from k-space ``[B, C, H, W]`` (any ``C``; masked here) and ``mask``.

    Used by sampling and by training alike. The compression matrix is computed from the
    measured samples only, so a training item (``full`` given) and the same scan undersampled
    at inference get the same virtual coils.
    """
    kspace, mask, _ = check_inputs(kspace, mask)
    if full is not None and (not isinstance(full, torch.Tensor) or full.shape != kspace.shape):
        raise InputError("fully sampled k-space does not fit the measured k-space", field="full",
                         expected=f"complex {tuple(kspace.shape)}",
                         got=tuple(full.shape) if isinstance(full, torch.Tensor) else type(full).__name__)
    measured = kspace * mask.unsqueeze(1)
    c, v = kspace.shape[1], config.in_coils
    matrix = None
    if config.coil_compression or c != v:
        matrix = virtual_coil_matrix(measured, v)
        measured = apply_compression(measured, matrix)
        if full is not None:
            full = apply_compression(full, matrix)
    y, mean, std = normalized_measurement(measured)
    target = None if full is None else (stack_coils(ifft2c(full)) - mean) / std
    return RCGANInput(y=y, mean=mean, std=std, mask=mask, target=target, matrix=matrix, coils=min(c, v))


def _data_consistency(coil_images: torch.Tensor, kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Replace the sampled k-space of ``coil_images`` ``[..., C, H, W]`` by ``kspace``; returns k-space."""
    return torch.where(mask.unsqueeze(-3), kspace, fft2c(coil_images))


def _consistent_images(coil_images: torch.Tensor, kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``ifft2c(_data_consistency(...))`` with the centring shifts moved onto the (per-slice)
    k-space and mask: two shifts of the sample stack instead of four."""
    dims = (-2, -1)
    k = torch.fft.fft2(torch.fft.ifftshift(coil_images, dim=dims), norm="ortho")
    k = torch.where(torch.fft.ifftshift(mask, dim=dims).unsqueeze(-3), torch.fft.ifftshift(kspace, dim=dims), k)
    return torch.fft.fftshift(torch.fft.ifft2(k, norm="ortho"), dim=dims)


class RCGAN(ReconModel):
    """rcGAN posterior sampler; ``forward(y, mask, noise)`` is the authors' training-time call."""

    adapt_family = "rcgan"

    is_posterior = True

    def __init__(self, config: RCGANConfig | None = None, *, discriminator: bool = False) -> None:
        super().__init__()
        self.config = cfg = config or RCGANConfig()
        self.generator = RCGANGenerator(cfg)
        self.discriminator = RCGANDiscriminator(cfg) if discriminator else None

    # -- native call ------------------------------------------------------------------
    def forward(
        self, y: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One sample per item in the normalised domain: ``y`` ``[B, 2C, H, W]`` -> ``[B, 2C, H, W]``.

        ``y`` is the normalised zero-filled image; data consistency uses its own k-space at
        ``mask`` (``[B, H, W]`` or ``[H, W]`` bool), as in training.
        """
        b, _, h, w = y.shape
        if noise is None:
            noise = torch.randn(b, self.config.noise_chans, h, w, generator=generator,
                                device=y.device, dtype=y.dtype)
        out = self.generator(torch.cat([y, noise], dim=1))
        mask = mask.to(device=y.device, dtype=torch.bool).expand(b, h, w)
        k = _data_consistency(_unstack(out), fft2c(_unstack(y)), mask)
        return stack_coils(ifft2c(k)).to(y.dtype)

    # -- inference --------------------------------------------------------------------
    def _sampling_generator(self) -> nn.Module:
        """The generator to sample with: in eval mode without gradients, a BatchNorm-folded copy,
        rebuilt whenever a weight or statistic changes (tensor identity, version counter, device,
        dtype); the generator itself when it trains or gradients must reach its parameters."""
        gen = self.generator
        if gen.training or (torch.is_grad_enabled() and any(p.requires_grad for p in gen.parameters())):
            return gen
        tensors = [*gen.parameters(), *gen.buffers()]
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)
        cached = self.__dict__.get("_folded_generator")
        if cached is None or cached[0] != key:
            cached = (key, fold_batch_norms(gen))
            self.__dict__["_folded_generator"] = cached  # a plain attribute: not a submodule
        return cached[1]

    def prepare_input(self, kspace: torch.Tensor, mask: torch.Tensor,
                      full: torch.Tensor | None = None) -> RCGANInput:
        """:func:`rcgan_input` with this model's config."""
        return rcgan_input(self.config, kspace, mask, full)

    def _check_coils(self, kspace: torch.Tensor) -> None:
        """Any coil count is accepted (compressed or padded to ``in_coils``); k-space needs a coil axis."""
        if kspace.ndim != 4 or kspace.shape[1] < 1:
            raise InputError("k-space must be [B, C, H, W] with at least one coil", field="kspace",
                             expected="complex [B, C, H, W]", got=tuple(kspace.shape))

    def _chunk_size(self, n: int, pixels: int, device: torch.device) -> int:
        if self.config.sample_chunk is not None:
            return min(n, self.config.sample_chunk)
        # peak memory of a no-grad pass: about 10 * chans float32 values per pixel and sample
        # (measured on CPU); budget 12 for headroom
        per_sample = 12 * self.config.chans * pixels * 4
        if device.type == "cuda":
            budget = torch.cuda.mem_get_info(device)[0] // 2
        else:
            budget = 4 * 2**30
        return max(1, min(n, budget // max(per_sample, 1)))

    @torch.no_grad()
    def sample_kspace(
        self, kspace: torch.Tensor, mask: torch.Tensor, n: int = 32,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` posterior samples as data-consistent multi-coil k-space ``[n, B, C, H, W]``.

        The noise for all samples is drawn up front, so the result does not depend on how the
        generator passes are chunked (in eval mode).
        """
        return _data_consistency(*self._generate(kspace, mask, n, generator))

    def _generate(
        self, kspace: torch.Tensor, mask: torch.Tensor, n: int, generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Generator outputs as complex coil images ``[n, B, C, H, W]`` (before data consistency),
        with the masked k-space and the mask."""
        kspace, mask, _ = check_inputs(kspace, mask)
        _positive_int(n, "n")
        b, c, h, w = kspace.shape
        kspace = kspace * mask.unsqueeze(1)
        prepared = rcgan_input(self.config, kspace, mask)
        y, mean, std = prepared.y, prepared.mean, prepared.std
        v = self.config.in_coils

        m = 2**self.config.depth
        ph, pw = (-h) % m, (-w) % m
        top, left = ph // 2, pw // 2
        if ph or pw:  # pad with the value that raw zeros take after normalisation
            y = F.pad(y + mean / std, (left, pw - left, top, ph - top)) - mean / std
        hp, wp = h + ph, w + pw
        noise = torch.randn(n, b, self.config.noise_chans, hp, wp, generator=generator,
                            device=y.device, dtype=y.dtype)

        chunk = self._chunk_size(n * b, hp * wp, y.device)
        # [y, noise] per sample, written straight into channels-last memory: oneDNN's convolutions
        # run about twice as fast on CPU with channels-last activations
        inp = torch.empty(n * b, y.shape[1] + noise.shape[2], hp, wp, device=y.device, dtype=y.dtype,
                          memory_format=torch.channels_last)
        inp[:, : y.shape[1]] = y.unsqueeze(0).expand(n, -1, -1, -1, -1).reshape(n * b, -1, hp, wp)
        inp[:, y.shape[1] :] = noise.reshape(n * b, -1, hp, wp)
        generator_net = self._sampling_generator()
        out = torch.cat([generator_net(part) for part in inp.split(chunk)])
        out = out[..., top : top + h, left : left + w].reshape(n, b, 2 * v, h, w)
        out = out * std + mean
        coil_images = torch.complex(out[:, :, :v].float(), out[:, :, v:].float())
        if prepared.matrix is not None:  # virtual -> physical coils (padding coils drop out)
            coil_images = expand_coils(coil_images, prepared.matrix)
        return coil_images, kspace, mask

    @torch.no_grad()
    def sample_coil_images(
        self, kspace: torch.Tensor, mask: torch.Tensor, n: int = 32,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` posterior samples as complex multi-coil images ``[n, B, C, H, W]``."""
        return _consistent_images(*self._generate(kspace, mask, n, generator))

    def _maps(self, kspace: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
        """Given maps, or ESPIRiT maps with the paper's settings (calibration 16, kernel 6, crop 0.70)."""
        if maps is not None:
            return maps

        return espirit_maps(kspace, calib_width=16, kernel_width=6, crop=0.70)

    def combine_samples(self, coil_images: torch.Tensor, kspace: torch.Tensor,
                        maps: torch.Tensor | None) -> torch.Tensor:
        """Coil images of ``n`` samples ``[n, B, C, H, W]`` -> magnitude images ``[n, B, H, W]``,
        by the config's ``coil_combine`` (see the module docstring)."""
        how = self.config.coil_combine
        if how == "rss":
            return rss(coil_images)
        if how == "projected":
            mean = coil_images.mean(0)
            norm = rss(mean)
            profile = mean / norm.clamp_min(torch.finfo(norm.dtype).tiny).unsqueeze(-3)
            return (profile.conj().unsqueeze(0) * coil_images).sum(-3).real
        maps = self._maps(kspace, maps).to(coil_images.device)
        return sense_combine(coil_images, maps.expand_as(coil_images)).abs()

    def sample(
        self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None,
        n: int = 32, *, generator: torch.Generator | None = None,
    ) -> PosteriorSamples:
        """``n`` posterior samples, coil-combined to magnitude images ``[n, B, H, W]``."""
        kspace, mask, maps = check_inputs(kspace, mask, maps)
        coil_images = self.sample_coil_images(kspace, mask, n, generator)
        return PosteriorSamples.from_samples(self.combine_samples(coil_images, kspace, maps))

    def reconstruct(
        self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None,
        *, generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The mean of ``reconstruct_samples`` combined samples: ``sample(...).mean``."""
        return self.sample(kspace, mask, maps, self.config.reconstruct_samples, generator=generator).mean


def build_rcgan(config: RCGANConfig | None = None) -> RCGAN:
    """The rcGAN sampler (generator only) for ``config``."""
    return RCGAN(config)


def build_rcgan_discriminator(config: RCGANConfig | None = None) -> RCGANDiscriminator:
    """The rcGAN critic for ``config`` (training only)."""
    return RCGANDiscriminator(config)


register_architecture(Architecture(
    "rcgan", "regularized conditional GAN posterior sampler (multi-coil, data consistent)",
    RCGANConfig, build_rcgan, {"bendel2023": RCGAN_BENDEL2023},
    is_posterior=True, domain="image", losses=("rcgan", "adler", "ohayon"), task="rcgan", adapts=True,
))
