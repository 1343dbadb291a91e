"""rcGAN's critic and generator losses and the two cGAN objectives it is compared with.

- rcGAN (Bendel et al. 2023): WGAN-GP critic with a drift term; generator ``L1`` of the mean of
  P samples minus a weighted SD reward, plus the adversarial term.
- Adler & Oektem's three-input critic on (truth, sample) versus (sample, sample) pairs.
- Ohayon et al.'s L2 of the P-sample mean plus rcGAN's adversarial term.

Also Prop. 3.3's error ratio ``E_1 / E_P`` of P posterior samples and its ideal value, which the
beta_SD auto-tune (:mod:`mrizoo.train.gan_tuning`) steers towards.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from mrizoo.errors import InputError

__all__ = [
    "Critic",
    "PairCritic",
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
]

#: rcGAN's critic ``D(x, y)``: an image and the conditioning to one score per item.
Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Adler & Oektem's critic ``D(a, b, y)``: two images and the conditioning to one score per item.
PairCritic = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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
