"""Training objectives: image losses (SSIM, L1), rcGAN's critic and generator losses with their
weight schedules and the beta_SD auto-tune, the two cGAN objectives rcGAN is compared with
(Adler & Oektem's three-input critic, Ohayon et al.'s L2 of the P-sample mean), denoising score
matching for NCSNv2, and an EMA of weights.

The SSIM loss computes the same quantity as fastMRI's ``SSIMLoss`` (uniform 7x7 window, valid
region only, sample covariances, ``k1 = 0.01``, ``k2 = 0.03``, data range given per item, usually
the target volume's maximum), so models trained here are comparable with fastMRI's.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mrizoo.errors import InputError
from mrizoo.metrics.image import local_ssim

__all__ = [
    "ssim_map",
    "SSIMLoss",
    "L1Loss",
    "SSIML1Loss",
    "build_image_loss",
    "gradient_penalty",
    "rcgan_discriminator_loss",
    "rcgan_generator_loss",
    "adler_discriminator_loss",
    "adler_generator_loss",
    "ohayon_generator_loss",
    "posterior_error_ratio",
    "ideal_error_ratio",
    "sd_reward_coefficient",
    "ideal_psnr_gain",
    "BetaAdvSchedule",
    "BetaSDTuner",
    "sample_noise_levels",
    "dsm_loss",
    "EMA",
]

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Adler & Oektem's critic ``D(a, b, y)``: two images and the conditioning to one score per item.
PairCritic = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- image losses


def _as_nchw(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim == 3:
        return x.unsqueeze(1)
    if x.ndim == 4:
        return x
    raise InputError("bad image shape", field=name, expected="[B, H, W] or [B, C, H, W]", got=tuple(x.shape))


def _per_item(value: torch.Tensor | float | None, ref: torch.Tensor, name: str) -> torch.Tensor:
    """A data range broadcastable over ``ref`` ([B, C, H, W]); None: each item's target maximum."""
    if value is None:
        return ref.detach().flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    v = torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
    if v.ndim == 0:
        return v.view(1, 1, 1, 1)
    if v.numel() != ref.shape[0]:
        raise InputError("one data range per item", field=name, expected=f"{ref.shape[0]} values",
                         got=tuple(v.shape))
    return v.reshape(-1, 1, 1, 1)


def ssim_map(
    output: torch.Tensor,
    target: torch.Tensor,
    data_range: torch.Tensor | float | None = None,
    *,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Local SSIM ``[B, C, H - win + 1, W - win + 1]`` with a uniform window (fastMRI's definition).

    Images are ``[B, H, W]`` or ``[B, C, H, W]`` magnitudes; ``data_range`` is a number, one value
    per item, or None for each target's maximum. The map itself is
    :func:`mrizoo.metrics.image.local_ssim`, the one the metrics use.
    """
    x, y = _as_nchw(output, "output"), _as_nchw(target, "target")
    if x.shape != y.shape:
        raise InputError("output and target differ in shape", field="output", expected=tuple(y.shape),
                         got=tuple(x.shape))
    if min(x.shape[-2:]) < win_size:
        raise InputError("image smaller than the SSIM window", field="output",
                         expected=f"H, W >= {win_size}", got=tuple(x.shape[-2:]))
    rng = _per_item(data_range, y, "data_range")
    return local_ssim(x, y, rng, win_size=win_size, k1=k1, k2=k2)


class SSIMLoss(nn.Module):
    """``1 - mean SSIM`` (fastMRI's ``SSIMLoss``); ``forward(output, target, data_range)``."""

    def __init__(self, win_size: int = 7, k1: float = 0.01, k2: float = 0.03) -> None:
        super().__init__()
        if win_size < 3 or win_size % 2 == 0:
            raise InputError("SSIM window must be odd and >= 3", field="win_size", got=win_size)
        self.win_size, self.k1, self.k2 = win_size, k1, k2

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                data_range: torch.Tensor | float | None = None) -> torch.Tensor:
        s = ssim_map(output, target, data_range, win_size=self.win_size, k1=self.k1, k2=self.k2)
        return 1 - s.mean()


class L1Loss(nn.Module):
    """Mean absolute error; ``data_range`` is accepted (and ignored) for a uniform call signature."""

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                data_range: torch.Tensor | float | None = None) -> torch.Tensor:
        return (output - target).abs().mean()


class SSIML1Loss(nn.Module):
    """``ssim_weight * (1 - SSIM) + l1_weight * mean |output - target| / data_range``.

    The L1 term is divided by each item's data range so both terms are scale-free.
    """

    def __init__(self, win_size: int = 7, k1: float = 0.01, k2: float = 0.03,
                 ssim_weight: float = 1.0, l1_weight: float = 1.0) -> None:
        super().__init__()
        self.ssim = SSIMLoss(win_size, k1, k2)
        self.ssim_weight, self.l1_weight = ssim_weight, l1_weight

    def forward(self, output: torch.Tensor, target: torch.Tensor,
                data_range: torch.Tensor | float | None = None) -> torch.Tensor:
        y = _as_nchw(target, "target")
        rng = _per_item(data_range, y, "data_range")
        l1 = ((_as_nchw(output, "output") - y).abs() / rng).mean()
        return self.ssim_weight * self.ssim(output, target, data_range) + self.l1_weight * l1


def build_image_loss(spec: Any) -> nn.Module:
    """The image loss of a :class:`~mrizoo.train.recipe.LossSpec` named ssim, l1 or ssim_l1."""
    from dataclasses import asdict

    from mrizoo.train.recipe import loss_params

    params = asdict(loss_params(spec))
    makers: dict[str, Callable[..., nn.Module]] = {"ssim": SSIMLoss, "l1": L1Loss, "ssim_l1": SSIML1Loss}
    if spec.name not in makers:
        raise InputError("not an image loss", field="loss.name", expected=f"one of {sorted(makers)}",
                         got=repr(spec.name))
    return makers[spec.name](**params)


# ----------------------------------------------------------------------------- rcGAN


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor,
                     *, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP: ``mean (||grad_x D(x_t, y)||_2 - 1)^2`` at random interpolates ``x_t`` of real and fake.

    One uniform weight per item; the graph is kept so the penalty trains the critic.
    """
    b = real.shape[0]
    t = torch.rand((b,) + (1,) * (real.ndim - 1), generator=generator, dtype=real.dtype,
                   device="cpu" if generator is not None else real.device).to(real.device)
    x = (t * real.detach() + (1 - t) * fake.detach()).requires_grad_(True)
    out = critic(x, cond)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def rcgan_discriminator_loss(critic: Critic, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor,
                             *, gp_weight: float = 10.0, drift_weight: float = 1e-3,
                             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Critic loss ``mean D(x_hat) - mean D(x) + gp_weight GP + drift_weight mean D(x)^2``.

    ``fake`` is detached (the generator is not trained by this loss). Returns the loss and its
    parts as floats for logging.
    """
    d_real = critic(real, cond)
    d_fake = critic(fake.detach(), cond)
    gp = gradient_penalty(critic, real, fake, cond, generator=generator) if gp_weight else real.new_zeros(())
    drift = (d_real ** 2).mean()
    wasserstein = d_fake.mean() - d_real.mean()
    loss = wasserstein + gp_weight * gp + drift_weight * drift
    return loss, {"d_wasserstein": wasserstein.item(), "d_gp": gp.item(), "d_drift": drift.item()}


def sd_reward_coefficient(p: int) -> float:
    """``sqrt(2 / (pi P (P+1)))``: the SD-reward weight that makes L1 + reward unbiased for Gaussians."""
    if p < 2:
        raise InputError("the SD reward needs at least 2 samples", field="p", expected=">= 2", got=p)
    return math.sqrt(2.0 / (math.pi * p * (p + 1)))


def ideal_psnr_gain(p: int) -> float:
    """PSNR gain (dB) of a P-sample average over one sample for true posterior samples: ``10 log10(2P/(P+1))``."""
    if p < 1:
        raise InputError("need at least one sample", field="p", expected=">= 1", got=p)
    return 10.0 * math.log10(2.0 * p / (p + 1))


def _check_generator_inputs(samples: torch.Tensor, target: torch.Tensor, adv_reduction: str) -> None:
    """``samples`` ``[B, P, *target.shape[1:]]`` and a known reduction of the critic term."""
    if adv_reduction not in ("mean", "sum_batch"):
        raise InputError("unknown reduction", field="adv_reduction", expected="mean or sum_batch",
                         got=repr(adv_reduction))
    if samples.ndim != target.ndim + 1 or samples.shape[0] != target.shape[0] or samples.shape[2:] != target.shape[1:]:
        raise InputError("samples must be [B, P, *target.shape[1:]]", field="samples",
                         expected=f"[{target.shape[0]}, P, {', '.join(map(str, target.shape[1:]))}]",
                         got=tuple(samples.shape))


def _critic_term(critic: Critic | None, samples: torch.Tensor, cond: torch.Tensor, beta_adv: float,
                 adv_reduction: str) -> torch.Tensor:
    """The generator's adversarial term ``-D(x_hat, y)`` over all samples (zero without a critic)."""
    if critic is None or beta_adv == 0:
        return samples.new_zeros(())
    b, p = samples.shape[:2]
    cond_rep = cond.unsqueeze(1).expand(b, p, *cond.shape[1:]).flatten(0, 1)
    adv = -critic(samples.flatten(0, 1), cond_rep).reshape(b, -1).mean(dim=1)
    return adv.sum() if adv_reduction == "sum_batch" else adv.mean()


def rcgan_generator_loss(critic: Critic | None, samples: torch.Tensor, target: torch.Tensor, cond: torch.Tensor,
                         *, beta_adv: float, beta_sd: float,
                         adv_reduction: str = "mean") -> tuple[torch.Tensor, dict[str, float]]:
    """Generator loss ``beta_adv L_adv + L1(mean_P x_hat, x) - beta_sd c_P mean(std_P x_hat)``.

    ``samples``: ``[B, P, C, H, W]`` (P >= 2 posterior samples per item), ``target`` ``[B, C, H, W]``,
    ``cond`` the critic's conditioning ``[B, C', H, W]``. ``L_adv = -mean D(x_hat_i, y)`` over
    samples and items (``adv_reduction="sum_batch"``: summed over items instead, as the authors'
    code does, which scales beta_adv by the batch size); ``std_P`` is the unbiased per-pixel
    standard deviation over the samples and ``c_P`` = :func:`sd_reward_coefficient`.
    ``critic=None`` or ``beta_adv=0`` skips the critic. The parts come back as floats, for logging.

    Note: Prop. 3.1's weight assumes an unbiased estimate of the spread, but the square root of
    the unbiased variance averages ``c4(P) sigma`` (``c4(2) = sqrt(2/pi)``), so ``beta_sd = 1``
    under-spreads (P = 2: std 0.73 of the true one); ``beta_sd = 1/c4(P)`` recovers it, and the
    beta_SD auto-tune corrects it during training (tests/test_rcgan_toy.py measures both).
    """
    _check_generator_inputs(samples, target, adv_reduction)
    p = samples.shape[1]
    l1 = (samples.mean(dim=1) - target).abs().mean()
    std = samples.std(dim=1, correction=1).mean()
    loss = l1 - beta_sd * sd_reward_coefficient(p) * std
    adv = _critic_term(critic, samples, cond, beta_adv, adv_reduction)
    loss = loss + beta_adv * adv
    return loss, {"g_adv": adv.item(), "g_l1": l1.item(), "g_std": std.item()}


def posterior_error_ratio(samples: torch.Tensor, target: torch.Tensor) -> float:
    """Prop. 3.3's ``E_1 / E_P`` of ``samples`` ``[B, P, ...]`` against ``target`` ``[B, ...]``.

    ``E_1`` is the squared error of one sample, averaged over all P samples (each is one draw, so
    the average has the same expectation with less variance); ``E_P`` the squared error of the
    P-sample mean. True posterior samples give ``2P / (P + 1)`` (:func:`ideal_error_ratio`);
    collapsed samples give 1.
    """
    if samples.ndim != target.ndim + 1 or samples.shape[0] != target.shape[0] or samples.shape[2:] != target.shape[1:]:
        raise InputError("samples must be [B, P, *target.shape[1:]]", field="samples",
                         expected=f"[{target.shape[0]}, P, ...]", got=tuple(samples.shape))
    if samples.shape[1] < 2:
        raise InputError("the ratio needs at least 2 samples", field="samples", expected="P >= 2",
                         got=samples.shape[1])
    err = samples.detach() - target.detach().unsqueeze(1)
    e1 = float((err.abs() ** 2).sum() / samples.shape[1])
    ep = float((err.mean(dim=1).abs() ** 2).sum())
    return e1 / ep if ep > 0 else math.inf


def ideal_error_ratio(p: int) -> float:
    """``2P / (P + 1)``: ``E_1 / E_P`` of true posterior samples (Prop. 3.3)."""
    if p < 1:
        raise InputError("need at least one sample", field="p", expected=">= 1", got=p)
    return 2.0 * p / (p + 1)


def _pair_gradient_penalty(critic: PairCritic, real: tuple[torch.Tensor, torch.Tensor],
                           fake: tuple[torch.Tensor, torch.Tensor], cond: torch.Tensor,
                           generator: torch.Generator | None) -> torch.Tensor:
    """WGAN-GP for a two-image critic: the joint gradient norm over both inputs at interpolates."""
    b = real[0].shape[0]
    t = torch.rand((b,) + (1,) * (real[0].ndim - 1), generator=generator, dtype=real[0].dtype,
                   device="cpu" if generator is not None else real[0].device).to(real[0].device)
    a = (t * real[0].detach() + (1 - t) * fake[0].detach()).requires_grad_(True)
    c = (t * real[1].detach() + (1 - t) * fake[1].detach()).requires_grad_(True)
    out = critic(a, c, cond)
    ga, gc = torch.autograd.grad(out.sum(), (a, c), create_graph=True)
    norm = (ga.flatten(1).pow(2).sum(1) + gc.flatten(1).pow(2).sum(1)).sqrt()
    return ((norm - 1) ** 2).mean()


def _adler_adv(critic: PairCritic, real: torch.Tensor, fake1: torch.Tensor, fake2: torch.Tensor,
               cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 5 of Bendel et al.: ``1/2 D(x, x1, y) + 1/2 D(x2, x, y) - D(x1, x2, y)``; also the two parts."""
    d_mixed = 0.5 * critic(real, fake1, cond) + 0.5 * critic(fake2, real, cond)
    d_pair = critic(fake1, fake2, cond)
    return d_mixed.mean() - d_pair.mean(), d_mixed, d_pair


def adler_discriminator_loss(critic: PairCritic, real: torch.Tensor, fake1: torch.Tensor, fake2: torch.Tensor,
                             cond: torch.Tensor, *, gp_weight: float = 10.0, drift_weight: float = 1e-3,
                             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Adler & Oektem's critic loss ``-L_adv^adler + gp_weight GP + drift_weight mean D(mixed)^2``.

    The critic sees pairs: (truth, sample) in either order is "real", (sample, sample) of two
    independent codes is "fake"; ``fake1``/``fake2`` are detached. The penalty is taken at
    interpolates between the pair (x, x1) and the pair (x1, x2).
    """
    fake1, fake2 = fake1.detach(), fake2.detach()
    adv, d_mixed, _ = _adler_adv(critic, real, fake1, fake2, cond)
    gp = (_pair_gradient_penalty(critic, (real, fake1), (fake1, fake2), cond, generator)
          if gp_weight else real.new_zeros(()))
    drift = (d_mixed ** 2).mean()
    loss = -adv + gp_weight * gp + drift_weight * drift
    return loss, {"d_wasserstein": float(-adv.detach()), "d_gp": float(gp.detach()), "d_drift": float(drift.detach())}


def adler_generator_loss(critic: PairCritic, fake1: torch.Tensor, fake2: torch.Tensor, target: torch.Tensor,
                         cond: torch.Tensor, *, beta_adv: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Adler & Oektem's generator loss ``beta_adv L_adv^adler`` (Eq. 5; no supervised term).

    ``fake1``/``fake2``: samples of two independent codes for each item ``[B, C, H, W]``. The
    L1 of their mean and their spread are logged only.
    """
    adv, _, _ = _adler_adv(critic, target, fake1, fake2, cond)
    with torch.no_grad():
        l1 = (0.5 * (fake1 + fake2) - target).abs().mean()
        std = (fake1 - fake2).abs().mean() / math.sqrt(2.0)  # |x1 - x2| / sqrt(2): the unbiased std of 2
    return beta_adv * adv, {"g_adv": float(adv.detach()), "g_l1": float(l1), "g_std": float(std)}


def ohayon_generator_loss(critic: Critic | None, samples: torch.Tensor, target: torch.Tensor, cond: torch.Tensor,
                          *, beta_adv: float, adv_reduction: str = "mean") -> tuple[torch.Tensor, dict[str, float]]:
    """Ohayon et al.'s generator loss ``beta_adv L_adv + ||x - mean_P x_hat||_2^2`` (Eq. 14; mean over pixels).

    ``samples`` ``[B, P, C, H, W]`` (their code: P = 8). The critic term is rcGAN's
    (:func:`rcgan_generator_loss`); Prop. 3.2: the L2 term alone is minimised by zero spread.
    """
    _check_generator_inputs(samples, target, adv_reduction)
    l2 = ((samples.mean(dim=1) - target) ** 2).mean()
    adv = _critic_term(critic, samples, cond, beta_adv, adv_reduction)
    loss = l2 + beta_adv * adv
    with torch.no_grad():
        std = samples.std(dim=1, correction=1).mean()
    return loss, {"g_adv": float(adv.detach()), "g_l2": float(l2.detach()), "g_std": float(std)}


class BetaAdvSchedule:
    """The adversarial weight by epoch: ``values[i]`` while the 0-based epoch ``<= milestones[i]``,
    ``values[-1]`` after (rcGAN: 1e-2 to epoch 4, 1e-4 to epoch 22, 1e-5 after)."""

    def __init__(self, values: tuple[float, ...] = (1e-2, 1e-4, 1e-5),
                 milestones: tuple[int, ...] = (4, 22)) -> None:
        if len(values) != len(milestones) + 1:
            raise InputError("one more value than milestones", field="beta_adv",
                             expected=f"{len(milestones) + 1} values", got=len(values))
        if list(milestones) != sorted(milestones):
            raise InputError("milestones must increase", field="beta_adv_milestones", got=list(milestones))
        self.values, self.milestones = tuple(float(v) for v in values), tuple(int(m) for m in milestones)

    def __call__(self, epoch: int) -> float:
        for value, last in zip(self.values, self.milestones):
            if epoch <= last:
                return value
        return self.values[-1]

    def state_dict(self) -> dict[str, Any]:
        return {"values": list(self.values), "milestones": list(self.milestones)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__init__(tuple(state["values"]), tuple(state["milestones"]))  # type: ignore[misc]


class BetaSDTuner:
    """rcGAN's beta_SD auto-tune (Eq. 23): ``beta_sd += rate * gap`` with
    ``gap = [2P/(P+1)]_dB - [E_1 / E_P]_dB`` (dB of Prop. 3.3's error ratio, P = ``p_val``).

    If averaging P samples gains less than true posterior samples would, the samples are too alike
    and the SD reward grows (and vice versa). With PSNRs from one data range the gap is
    ``(PSNR_1 + 10 log10(2P/(P+1))) - PSNR_P``. ``beta_sd`` stays within ``[0, max_beta]``.
    The paper updates once per epoch (``rate`` 0.02 per dB with ``beta_sd`` in units of the
    nominal weight); a short run updates every few steps on a fixed batch so that it converges.
    ``enabled=False`` keeps beta_sd fixed (the ratio is still recorded).
    """

    def __init__(self, beta_sd: float = 1.0, p_val: int = 8, rate: float = 0.02, enabled: bool = True,
                 max_beta: float = math.inf) -> None:
        self.beta_sd, self.p_val, self.rate, self.enabled = float(beta_sd), int(p_val), float(rate), enabled
        self.max_beta = float(max_beta)
        self.steps = 0  # optimizer steps counted by the trainer (for a tune cadence)
        self.history: list[dict[str, float]] = []

    @property
    def ideal_ratio(self) -> float:
        """``2P / (P + 1)`` for ``p_val``."""
        return ideal_error_ratio(self.p_val)

    def gap(self, psnr_1: float, psnr_p: float) -> float:
        """Ideal minus achieved PSNR gain (dB); positive: too little sample diversity."""
        return (psnr_1 + ideal_psnr_gain(self.p_val)) - psnr_p

    def gap_from_ratio(self, e1_over_ep: float) -> float:
        """The same gap from the error ratio ``E_1 / E_P`` itself."""
        return ideal_psnr_gain(self.p_val) - 10.0 * math.log10(max(e1_over_ep, 1e-12))

    def well_tuned(self, psnr_1: float, psnr_p: float, tol: float = 0.25) -> bool:
        """Whether the achieved gain is within ``tol`` dB of the ideal one (the paper's criterion)."""
        return abs(self.gap(psnr_1, psnr_p)) <= tol

    def _step(self, gap: float, record: dict[str, float]) -> float:
        if self.enabled and math.isfinite(gap):
            self.beta_sd = min(max(self.beta_sd + self.rate * gap, 0.0), self.max_beta)
        self.history.append({**record, "gap": gap, "beta_sd": self.beta_sd})
        return self.beta_sd

    def update(self, psnr_1: float, psnr_p: float) -> float:
        """Apply one auto-tune step from validation PSNRs of 1 sample and the P-sample average."""
        return self._step(self.gap(psnr_1, psnr_p), {"psnr_1": float(psnr_1), "psnr_p": float(psnr_p)})

    def update_from_ratio(self, e1_over_ep: float, **record: float) -> float:
        """Apply one auto-tune step from a measured ``E_1 / E_P`` (``record``: extra values to keep)."""
        return self._step(self.gap_from_ratio(e1_over_ep), {"ratio": float(e1_over_ep), **record})

    def state_dict(self) -> dict[str, Any]:
        return {"beta_sd": self.beta_sd, "p_val": self.p_val, "rate": self.rate, "enabled": self.enabled,
                "max_beta": self.max_beta if math.isfinite(self.max_beta) else None, "steps": self.steps,
                "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.beta_sd, self.p_val = float(state["beta_sd"]), int(state["p_val"])
        self.rate, self.enabled = float(state["rate"]), bool(state["enabled"])
        mb = state.get("max_beta")
        self.max_beta = math.inf if mb is None else float(mb)
        self.steps = int(state.get("steps", 0))
        self.history = [dict(h) for h in state.get("history", [])]


# ----------------------------------------------------------------------------- score matching


def sample_noise_levels(batch: int, num_levels: int, *, generator: torch.Generator | None = None,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniformly drawn noise-level indices ``[batch]`` (long) into a ladder of ``num_levels``."""
    return torch.randint(0, num_levels, (batch,), generator=generator).to(device)


def dsm_loss(score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
             sigmas: torch.Tensor, *, labels: torch.Tensor | None = None, anneal_power: float = 2.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score matching over a noise ladder (Song & Ermon 2019/2020).

    For each item a level ``sigma = sigmas[label]`` is drawn (or given), ``x~ = x + sigma n``, and
    ``0.5 ||s(x~, label) + n / sigma||^2 * sigma**anneal_power`` is averaged over the batch; with
    weight ``sigma^2`` every level contributes on the same scale. ``score_fn(x~, labels)`` returns
    the score (NCSNv2's ``forward``).
    """
    b = x.shape[0]
    sigmas = sigmas.to(device=x.device, dtype=x.dtype)
    if labels is None:
        labels = sample_noise_levels(b, sigmas.numel(), generator=generator, device=x.device)
    used = sigmas[labels].view(b, *([1] * (x.ndim - 1)))
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype,
                        device="cpu" if generator is not None else x.device).to(x.device)
    perturbed = x + used * noise
    target = -noise / used
    scores = score_fn(perturbed, labels)
    per_item = 0.5 * ((scores - target) ** 2).flatten(1).sum(dim=1) * used.flatten() ** anneal_power
    return per_item.mean()


class EMA:
    """Exponential moving average of a module's floating-point parameters (and a copy of its buffers).

    ``shadow = decay * shadow + (1 - decay) * param`` after each optimizer step; ``copy_to`` writes
    the averages into a module (e.g. a copy used for validation and for the published weights).
    """

    def __init__(self, module: nn.Module, decay: float = 0.999) -> None:
        if not 0 <= decay < 1:
            raise InputError("EMA decay outside [0, 1)", field="ema", expected="0 <= decay < 1", got=decay)
        self.decay = float(decay)
        self.shadow: dict[str, torch.Tensor] = {
            k: v.detach().clone() for k, v in module.state_dict().items()
        }
        self.num_updates = 0

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """One averaging step from the module's current weights."""
        params = dict(module.named_parameters())
        for k, v in module.state_dict().items():
            s = self.shadow[k]
            if k in params and params[k].requires_grad and v.is_floating_point():
                s.mul_(self.decay).add_(v.detach().to(s.dtype), alpha=1 - self.decay)
            else:
                s.copy_(v)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> nn.Module:
        """Load the averaged weights into ``module`` (in place) and return it."""
        module.load_state_dict(self.shadow)
        return module

    def averaged(self, module: nn.Module) -> nn.Module:
        """A deep copy of ``module`` holding the averaged weights."""
        return self.copy_to(copy.deepcopy(module))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.num_updates = int(state.get("num_updates", 0))
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise InputError("EMA state does not match the model", field="shadow",
                             expected="the same parameter names", got=sorted(missing)[:5])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
