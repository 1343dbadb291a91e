"""Annealed Langevin posterior sampling with a score-based prior (Jalal et al., NeurIPS 2021).

"Robust Compressed Sensing MRI with Deep Generative Priors". With the multi-coil forward
model ``A = M F S`` and measurements ``y = A x + n`` (``n``: white Gaussian noise of standard
deviation ``gamma`` per real component), chains run down a ladder of noise levels
``sigma_1 > ... > sigma_L``, ``steps_per_level`` steps each::

    x <- x + a (score(x, sigma) - w A^H (A x - y)) + sqrt(2 a) z,    z ~ N(0, I) per real channel
    a = step_lr * (sigma / sigma_L)^2
    w = data_weight / (sigma^2 + gamma^2)

``score(x, sigma)`` approximates ``grad log p_sigma`` of the prior smoothed by noise of
standard deviation ``sigma`` per real channel. The data term is the gradient of the
likelihood of ``y`` given the smoothed image, ``N(A x_sigma, (gamma^2 + sigma^2) I)``: the
weighting of the paper (``gamma^2 + beta_t^2``) and of the authors' code (``sigma^2`` alone,
i.e. ``gamma = 0``, ``data_weight = 1``). At the end of the ladder (``sigma_L`` small against
the posterior's scales) the chains target the posterior ``p(x | y)`` itself. Gradients are
taken with respect to the real and imaginary parts, which for a complex image is the
complex expression above.

With ``data_grad_ratio`` set (the csgm-mri-langevin brain runs), the data term of each chain is
instead rescaled to ``data_grad_ratio`` times the norm of its prior score, and
``late_from_level`` / ``late_steps_per_level`` change the steps per level from that level on.

Everything runs on images normalised by ``s``, the 99th percentile of ``|x_MVUE|``, the
SENSE/MVUE pseudo-inverse of the undersampled data (the prior was trained on images
normalised the same way): ``y`` and ``gamma`` are divided by ``s`` and the samples multiplied
back, so scaling the data scales the samples. Chains start from uniform noise in
``[0, 1)`` per real channel (as the authors' code) or from the normalised pseudo-inverse
plus noise at the first level (``init="pinv"``).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from mrizoo.errors import InputError
from mrizoo.models.base import PosteriorSamples, ReconModel, check_inputs
from mrizoo.models.ncsnv2 import NCSNV2_JALAL2021, LangevinConfig, NCSNv2, NCSNv2Config
from mrizoo.models.registry import Architecture, register_architecture
from mrizoo.physics.coils import sense_combine
from mrizoo.physics.fft import ifft2c
from mrizoo.physics.operators import adjoint_op, forward_op

__all__ = [
    "LangevinConfig",
    "annealed_langevin",
    "percentile_scale",
    "ScorePosterior",
    "build_score_posterior",
    "LANGEVIN_JALAL2021",
]

ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]


#: The sampler settings of the csgm-mri-langevin code (eps 5e-5, 3 steps per level, whole ladder).
LANGEVIN_JALAL2021 = LangevinConfig()


def percentile_scale(kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor,
                     q: float = 0.99) -> torch.Tensor:
    """``[B]`` quantile ``q`` of ``|x_MVUE|`` per item, ``x_MVUE`` the SENSE combination of ``ifft2c(M y)``."""
    mvue = sense_combine(ifft2c(kspace * mask.unsqueeze(-3)), maps)
    return torch.quantile(mvue.abs().flatten(1).float(), q, dim=1)


def _complex_randn(shape: tuple[int, ...], generator: torch.Generator | None,
                   device: torch.device) -> torch.Tensor:
    """Complex noise whose real and imaginary parts are each N(0, 1)."""
    return torch.view_as_complex(torch.randn(*shape, 2, generator=generator, device=device))


def annealed_langevin(
    score_fn: ScoreFn,
    y_kspace: torch.Tensor,
    mask: torch.Tensor,
    maps: torch.Tensor,
    sigmas: torch.Tensor,
    config: LangevinConfig | None = None,
    n: int = 1,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Posterior samples ``[n, B, H, W]`` (complex, in the units of the data) by annealed Langevin.

    ``score_fn(x, sigma)`` returns the prior score of complex images ``x`` ``[n, B, H, W]`` in
    the *normalised* domain (images divided by the 99th percentile of the MVUE); ``y_kspace``
    ``[B, C, H, W]`` and ``maps`` ``[B, C, H, W]`` are complex, ``mask`` ``[B, H, W]`` or
    ``[H, W]`` bool, ``sigmas`` the whole decreasing noise ladder. ``generator`` overrides
    ``config.seed``.
    """
    cfg = config or LangevinConfig()
    y_kspace, mask, maps = check_inputs(y_kspace, mask, maps)
    if maps is None:
        raise InputError("the forward model needs coil sensitivity maps", field="maps",
                         expected="complex [B, C, H, W]")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError("must be a positive integer", field="n", expected="int >= 1", got=n)
    sig = torch.as_tensor(sigmas).detach().to(device="cpu", dtype=torch.float64).flatten()
    if sig.numel() == 0 or not bool((sig > 0).all()):
        raise InputError("noise levels must be positive", field="sigmas", got=sig.tolist()[:5])
    end = sig.numel() if cfg.end_level is None else cfg.end_level
    if cfg.start_level >= sig.numel() or end > sig.numel():
        raise InputError("levels outside the noise ladder", field="start_level/end_level",
                         expected=f"within [0, {sig.numel()}]", got=(cfg.start_level, cfg.end_level))

    device = y_kspace.device
    maps = maps.to(device=device, dtype=torch.complex64)
    y_kspace = (y_kspace * mask.unsqueeze(-3)).to(torch.complex64)
    b, _, h, w = y_kspace.shape
    scale = percentile_scale(y_kspace, mask, maps, cfg.percentile)  # [B]
    if not bool((scale > 0).all()):
        raise InputError("the pseudo-inverse image is zero; no signal to normalise",
                         field="kspace", expected="non-zero sampled k-space inside the maps' support")
    y_n = y_kspace / scale.view(b, 1, 1, 1)
    gamma2 = (cfg.noise_std / scale.double()) ** 2  # [B]

    if generator is None and cfg.seed is not None:
        generator = torch.Generator(device=device).manual_seed(cfg.seed)
    sigma_last = float(sig[-1])
    if cfg.init == "uniform":
        x = torch.view_as_complex(torch.rand(n, b, h, w, 2, generator=generator, device=device))
    else:
        pinv = sense_combine(ifft2c(y_n), maps)
        x = pinv + float(sig[cfg.start_level]) * _complex_randn((n, b, h, w), generator, device)

    with torch.no_grad():
        for level in range(cfg.start_level, end):
            sigma = float(sig[level])
            step = cfg.step_lr * (sigma / sigma_last) ** 2
            weight = (cfg.data_weight / (sigma**2 + gamma2)).float().view(1, b, 1, 1)
            late = cfg.late_from_level is not None and level >= cfg.late_from_level
            for _ in range(cfg.late_steps_per_level if late else cfg.steps_per_level):
                data_grad = adjoint_op(forward_op(x, maps, mask) - y_n, maps)
                prior = score_fn(x, sigma)
                if cfg.data_grad_ratio is None:
                    drift = prior - weight * data_grad
                else:  # the data gradient of each chain rescaled to a multiple of its prior score's norm
                    ratio = prior.flatten(-2).norm(dim=-1) / data_grad.flatten(-2).norm(dim=-1).clamp_min(1e-30)
                    drift = prior - cfg.data_grad_ratio * ratio[..., None, None] * data_grad
                x = x + step * drift + math.sqrt(2 * step) * _complex_randn(x.shape, generator, device)
    return x * scale.view(1, b, 1, 1).to(x.real.dtype)


class ScorePosterior(ReconModel):
    """Posterior sampling with an NCSNv2 prior and :func:`annealed_langevin` (needs coil maps).

    ``forward`` is the score network's native call; ``sample`` runs the sampler, with
    ESPIRiT maps estimated from the calibration region when none are given. ``chunk`` limits
    the chains per network evaluation (``None``: all at once).
    """

    is_posterior = True
    needs_maps = True

    def __init__(self, net: NCSNv2 | None = None, langevin: LangevinConfig | None = None,
                 *, chunk: int | None = None) -> None:
        super().__init__()
        self.net = net if net is not None else NCSNv2()
        self.langevin = langevin or LangevinConfig()
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
            raise InputError("must be a positive integer", field="chunk", expected="int >= 1 or None", got=chunk)
        self.chunk = chunk

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(x, y)

    def score(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """Prior score of complex images ``[..., H, W]`` (normalised domain) at level ``sigma``."""
        shape = x.shape
        real = torch.view_as_real(x.reshape(-1, *shape[-2:])).permute(0, 3, 1, 2)
        p = next(self.net.parameters())
        real = real.to(dtype=p.dtype, device=p.device)
        parts = real.split(self.chunk) if self.chunk else (real,)
        out = torch.cat([self.net.score(part, sigma) for part in parts])
        out = torch.view_as_complex(out.permute(0, 2, 3, 1).float().contiguous()).reshape(shape)
        return out.to(x.device)

    def _run(self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None, n: int,
             generator: torch.Generator | None) -> torch.Tensor:
        kspace, mask, maps = check_inputs(kspace, mask, maps)
        maps = self._maps(kspace, maps)
        return annealed_langevin(self.score, kspace, mask, maps, self.net.sigmas, self.langevin, n,
                                 generator=generator)

    def sample(
        self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None,
        n: int = 32, *, generator: torch.Generator | None = None,
    ) -> PosteriorSamples:
        """``n`` posterior samples (magnitude ``[n, B, H, W]``) with their mean and std."""
        return PosteriorSamples.from_samples(self._run(kspace, mask, maps, n, generator).abs())

    def reconstruct(
        self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None,
        *, generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Magnitude of the mean of ``reconstruct_samples`` complex posterior samples."""
        x = self._run(kspace, mask, maps, self.langevin.reconstruct_samples, generator)
        return x.mean(0).abs()


def build_score_posterior(config: NCSNv2Config | None = None,
                          langevin: LangevinConfig | None = None) -> ScorePosterior:
    """An NCSNv2 prior (``config``) with the annealed Langevin sampler (``langevin``, else ``config.sampler``)."""
    return ScorePosterior(NCSNv2(config), langevin or (config.sampler if config is not None else None))


register_architecture(Architecture(
    "ncsnv2", "NCSNv2 score-based prior with annealed Langevin posterior sampling",
    NCSNv2Config, build_score_posterior, {"jalal2021": NCSNV2_JALAL2021},
    needs_maps=True, is_posterior=True, domain="image", losses=("dsm",), task="ncsnv2",
))
