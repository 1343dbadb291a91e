"""L1-wavelet compressed sensing: ``min_x 0.5 ||M F S x - y||^2 + lam ||W x||_1`` by FISTA.

With a ``prior`` image ``p`` (e.g. a network's reconstruction) the objective gains
``0.5 mu ||x - p||^2`` (``mu = prior_weight``) and FISTA starts from ``p``: the MAP estimate
under a Gaussian prior centred on ``p`` times the Laplace wavelet prior.

``W`` is an orthogonal Daubechies wavelet transform (periodic extension,
:mod:`mrizoo.physics.wavelets`); the image is zero-padded (centred) to a multiple of
``2^levels`` so that the proximal step ``W^H soft(W v, t)`` is exact, and cropped at the end.
FISTA (Beck & Teboulle 2009) uses the step ``1/L`` with ``L >= ||A^H A||``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from mrizoo.errors import InputError
from mrizoo.masks.sampling import check_measurements
from mrizoo.physics.espirit import espirit_maps
from mrizoo.physics.operators import MultiCoilOperator
from mrizoo.physics.wavelets import WaveletTransform, dwt2, idwt2

__all__ = ["L1WaveletConfig", "L1WaveletInfo", "l1_wavelet", "soft_threshold"]


@dataclass(frozen=True)
class L1WaveletConfig:
    """Solver settings.

    ``lam``: regularisation weight relative to the data scale -- the absolute weight is
    ``lam * max|A^H y|`` per image, so the result does not depend on how the k-space is scaled.
    ``max_iter``: FISTA iterations. ``tol``: stop early once every image's relative change
    ``||x_k - x_{k-1}|| / ||x_k||`` is below it (0: run ``max_iter``). ``wavelet`` /
    ``levels``: the sparsifying transform. ``penalize_approx``: threshold the coarsest
    approximation band too (``False`` leaves it free, as its content is not sparse; the
    problem is then not strictly posed where the maps vanish). ``crop_to_maps``: set pixels
    where every coil map is zero to 0 in the result -- no measurement constrains them, as
    in the SENSE coil combination. ``lipschitz``: ``L >= ||A^H A||``; ``"bound"`` uses
    ``max_pixel sum_c |S_c|^2`` (exactly 1 for normalised ESPIRiT maps), ``"power"``
    estimates the largest eigenvalue by ``power_iters`` power iterations (times 1.01), a
    number is used as given. ``prior_weight``: ``mu`` of the quadratic pull towards a
    ``prior`` image (only used when one is given; relative to ``||A^H A|| <= 1`` for
    normalised maps, so it does not depend on the data scale either).
    """

    lam: float = 2e-3
    max_iter: int = 100
    tol: float = 0.0
    wavelet: str = "db4"
    levels: int = 4
    penalize_approx: bool = True
    crop_to_maps: bool = True
    lipschitz: float | Literal["bound", "power"] = "bound"
    power_iters: int = 30
    prior_weight: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.lam, (int, float)) and math.isfinite(self.lam) and self.lam >= 0):
            raise InputError("must be a non-negative number", field="lam", expected=">= 0", got=self.lam)
        for name in ("max_iter", "power_iters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError("must be a positive integer", field=name, expected="int >= 1", got=value)
        if isinstance(self.prior_weight, bool) or not isinstance(self.prior_weight, (int, float)) \
                or not (math.isfinite(self.prior_weight) and self.prior_weight >= 0):
            raise InputError("must be a non-negative number", field="prior_weight", expected=">= 0",
                             got=self.prior_weight)
        if not (isinstance(self.tol, (int, float)) and self.tol >= 0):
            raise InputError("must be a non-negative number", field="tol", expected=">= 0", got=self.tol)
        if isinstance(self.lipschitz, str):
            if self.lipschitz not in ("bound", "power"):
                raise InputError("unknown Lipschitz rule", field="lipschitz",
                                 expected="'bound', 'power' or a positive number", got=self.lipschitz)
        elif not (isinstance(self.lipschitz, (int, float)) and math.isfinite(self.lipschitz)
                  and self.lipschitz > 0):
            raise InputError("must be positive", field="lipschitz",
                             expected="'bound', 'power' or a positive number", got=self.lipschitz)
        WaveletTransform(self.wavelet, self.levels)  # validates both


@dataclass(frozen=True)
class L1WaveletInfo:
    """Iterations run, the step's ``L`` and the absolute ``lam`` per image, and (when asked)
    the objective ``0.5 ||A x - y||^2 + lam ||W x||_1`` at the start and after every iteration
    (``[iterations + 1, *batch]``)."""

    iterations: int
    lipschitz: torch.Tensor
    lam: torch.Tensor
    objective: torch.Tensor | None


def soft_threshold(c: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Complex (or real) soft-thresholding: shrink ``|c|`` by ``t``, keep the phase."""
    mag = c.abs()
    scale = torch.clamp(mag - t, min=0) / torch.where(mag > 0, mag, torch.ones_like(mag))
    return c * scale


def _power_lipschitz(op: MultiCoilOperator, like: torch.Tensor, iters: int) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(like.shape, dtype=like.dtype, generator=g).to(like.device)
    dims = (-2, -1)
    est = torch.ones(like.shape[:-2], dtype=like.real.dtype, device=like.device)
    for _ in range(iters):
        x = x / torch.linalg.vector_norm(x, dim=dims, keepdim=True).clamp_min(1e-30)
        y = op.normal(x)
        est = torch.sum((x.conj() * y).real, dim=dims)
        x = y
    return est * 1.01


def l1_wavelet(
    kspace: torch.Tensor,
    mask: torch.Tensor,
    maps: torch.Tensor | None = None,
    config: L1WaveletConfig | None = None,
    *,
    prior: torch.Tensor | None = None,
    return_info: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, L1WaveletInfo]:
    """Complex L1-wavelet image ``[..., H, W]`` from undersampled k-space ``[..., C, H, W]``.

    ``mask`` broadcasts to ``[..., H, W]``; maps are estimated with ESPIRiT when not given.
    ``prior``: a complex image ``[..., H, W]`` to start from and (with ``config.prior_weight``)
    to pull towards.
    With ``return_info`` also returns an :class:`L1WaveletInfo` (and evaluates the objective
    every iteration, which costs one extra forward model and wavelet transform each).
    """
    cfg = config or L1WaveletConfig()
    kspace, mask = check_measurements(kspace, mask)
    if maps is None:
        maps = espirit_maps(kspace * _mask_factor(mask, kspace))
    if maps.shape[-3:] != kspace.shape[-3:]:
        raise InputError("maps do not fit the k-space", field="maps",
                         expected=tuple(kspace.shape), got=tuple(maps.shape))
    maps = maps.to(device=kspace.device, dtype=kspace.dtype)
    shape = tuple(kspace.shape[-2:])
    if prior is not None:
        if not isinstance(prior, torch.Tensor) or prior.shape != kspace.shape[:-3] + kspace.shape[-2:]:
            raise InputError("prior image does not fit the k-space", field="prior",
                             expected=tuple(kspace.shape[:-3] + kspace.shape[-2:]),
                             got=tuple(getattr(prior, "shape", ())) or type(prior).__name__)
        prior = prior.to(device=kspace.device, dtype=kspace.dtype)
    mu = float(cfg.prior_weight) if prior is not None else 0.0
    wav = WaveletTransform(cfg.wavelet, cfg.levels)
    op = MultiCoilOperator(maps, mask)
    kspace = kspace * _mask_factor(mask, kspace)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return op.forward(wav.crop(x, shape))

    def adjoint(k: torch.Tensor) -> torch.Tensor:
        return wav.pad(op.adjoint(k))

    aty = op.adjoint(kspace)
    scale = aty.abs().amax(dim=(-2, -1))
    lam = cfg.lam * scale  # [*batch]
    if isinstance(cfg.lipschitz, str) and cfg.lipschitz == "power":
        lip = _power_lipschitz(op, aty, cfg.power_iters)
    elif isinstance(cfg.lipschitz, str):
        lip = (maps.abs() ** 2).sum(-3).amax(dim=(-2, -1)).expand_as(scale)
    else:
        lip = torch.full_like(scale, float(cfg.lipschitz))
    lip = (lip + mu).clamp_min(torch.finfo(lip.dtype).tiny)
    thresh = (lam / lip)[..., None, None]
    step = (1.0 / lip)[..., None, None]
    free = wav.approx_mask(shape, device=kspace.device) if not cfg.penalize_approx else None

    def prox(v: torch.Tensor) -> torch.Tensor:  # v is padded: W is square and orthogonal there
        c = dwt2(v, wav.wavelet, wav.levels)
        shrunk = soft_threshold(c, thresh)
        if free is not None:
            shrunk = torch.where(free, c, shrunk)
        return idwt2(shrunk, wav.wavelet, wav.levels)

    def objective(x: torch.Tensor) -> torch.Tensor:
        r = forward(x) - kspace
        c = dwt2(x, wav.wavelet, wav.levels)
        if free is not None:
            c = torch.where(free, torch.zeros_like(c), c)
        value = 0.5 * (r.abs() ** 2).sum(dim=(-3, -2, -1)) + lam * c.abs().sum(dim=(-2, -1))
        if mu > 0:
            value = value + 0.5 * mu * ((wav.crop(x, shape) - prior).abs() ** 2).sum(dim=(-2, -1))
        return value

    data_gradient = op.gradient_fn(kspace)

    def gradient(z: torch.Tensor) -> torch.Tensor:  # A^H (A z - y) [+ mu (z - p)] on the padded grid
        zc = wav.crop(z, shape)
        g = data_gradient(zc)
        return wav.pad(g + mu * (zc - prior) if mu > 0 else g)

    x = wav.pad(aty if prior is None else prior)
    z, t = x, 1.0
    history = [objective(x)] if return_info else []
    it = 0
    for it in range(1, cfg.max_iter + 1):
        x_new = prox(z - step * gradient(z))
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        diff = x_new - x
        z = x_new + ((t - 1.0) / t_new) * diff
        x, t = x_new, t_new
        if return_info:
            history.append(objective(x))
        if cfg.tol > 0:
            change = torch.linalg.vector_norm(diff, dim=(-2, -1))
            size = torch.linalg.vector_norm(x, dim=(-2, -1)).clamp_min(torch.finfo(change.dtype).tiny)
            if bool((change / size < cfg.tol).all()):
                break
    out = wav.crop(x, shape)
    if cfg.crop_to_maps:
        out = out * ((maps.abs() ** 2).sum(-3) > 0)
    if not return_info:
        return out
    info = L1WaveletInfo(iterations=it, lipschitz=lip, lam=lam,
                         objective=torch.stack(history).detach())
    return out, info


def _mask_factor(mask: torch.Tensor, kspace: torch.Tensor) -> torch.Tensor:
    m = mask.to(device=kspace.device)
    m = m.to(kspace.real.dtype) if m.dtype == torch.bool else m
    return m.unsqueeze(-3) if m.ndim >= 2 else m
