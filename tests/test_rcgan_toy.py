"""rcGAN's regularizer on a 1-D Gaussian toy with a known posterior (Bendel et al. 2023).

x ~ N(0, 1), y = x + n with n ~ N(0, s^2): the posterior x | y is N(a y, a s^2) with
a = 1 / (1 + s^2). Prop. 3.1: L1 of the P-sample mean minus the SD reward with weight
sqrt(2 / (pi P (P+1))) is minimised by the true posterior mean and std, provided the SD reward is
an unbiased estimate of the generated std and the generator's outputs are Gaussian given y.
Prop. 3.2: the L2 loss of the P-sample mean is minimised by a zero std (mode collapse).

``rcgan_generator_loss`` uses ``torch.std(correction=1)``, the square root of the unbiased variance,
whose mean is ``c4(P) sigma < sigma`` (``c4(2) = sqrt(2 / pi)``). With ``beta_sd = 1`` the reward is
therefore ``c4(P)`` times too small, and the stationary point of the objective at the true mean,
``sqrt(2/pi) sqrt(sigma^2/P + sigma0^2) - c4 sigma sqrt(2/(pi P (P+1)))``, is the closed form
``sigma / sigma0 = sqrt(P c4^2 / (P + 1 - c4^2))`` (0.734 at P = 2). Setting
``beta_sd = 1 / c4(P)`` makes the reward unbiased, so the proposition's conditions hold; P = 2,
the rcGAN default, gives the steepest objective. The generator is ``mu(y) + sigma(y) z`` with an MLP
for ``(mu, log sigma)``, Gaussian given y as the proposition requires (the paper's toy generator,
made conditional).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mrizoo.train.losses import rcgan_generator_loss, sd_reward_coefficient

pytestmark = pytest.mark.usefixtures("one_thread")

NOISE_STD = 0.75
SHRINK = 1.0 / (1.0 + NOISE_STD**2)  # posterior mean = SHRINK * y
POST_STD = math.sqrt(NOISE_STD**2 / (1.0 + NOISE_STD**2))  # 0.6
P_TRAIN = 2
STEPS = 1200
Y_EVAL = (-2.0, -1.0, 0.0, 1.0, 2.0)  # y has std 1.25: +-1.6 of its std


def c4(p: int) -> float:
    """``E[std_unbiased] / sigma`` for p Gaussian samples (closed form)."""
    return math.sqrt(2.0 / (p - 1)) * math.exp(math.lgamma(p / 2) - math.lgamma((p - 1) / 2))


class ToyGenerator(nn.Module):
    """``G(y, z) = mu(y) + exp(log_sigma(y)) z``, both from one small MLP of y."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.body(y)
        return h[..., :1] + torch.exp(h[..., 1:]) * z


def train(objective: str, beta_sd: float = 1.0, *, seed: int = 0, batch: int = 512) -> ToyGenerator:
    torch.manual_seed(seed)
    g = ToyGenerator()
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 1.0 if t < STEPS // 2 else 0.1 if t < 0.85 * STEPS else 0.02)
    rng = torch.Generator().manual_seed(seed + 1)
    for _ in range(STEPS):
        x = torch.randn(batch, 1, generator=rng)
        y = x + NOISE_STD * torch.randn(batch, 1, generator=rng)
        z = torch.randn(batch, P_TRAIN, 1, generator=rng)
        samples = g(y.unsqueeze(1).expand(batch, P_TRAIN, 1), z)  # [B, P, 1]
        if objective == "l1_sd":
            loss, _ = rcgan_generator_loss(None, samples, x, y, beta_adv=0.0, beta_sd=beta_sd)
        else:  # L2 of the P-sample mean (Prop. 3.2)
            loss = ((samples.mean(dim=1) - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return g


def conditional_stats(g: ToyGenerator, n: int = 20000) -> list[tuple[float, float, float]]:
    """``(y, mean error, std / true std)`` of the generator's samples at each evaluation y."""
    rng = torch.Generator().manual_seed(123)
    out = []
    with torch.no_grad():
        for y in Y_EVAL:
            s = g(torch.full((n, 1), y), torch.randn(n, 1, generator=rng))
            out.append((y, s.mean().item() - SHRINK * y, s.std().item() / POST_STD))
    return out


def test_coefficient_is_the_papers_beta_sd_n() -> None:
    for p in (2, 4, 8):
        assert sd_reward_coefficient(p) == pytest.approx(math.sqrt(2.0 / (math.pi * p * (p + 1))))
    assert c4(2) == pytest.approx(math.sqrt(2.0 / math.pi))


def test_l1_plus_unbiased_sd_reward_recovers_the_posterior() -> None:
    stats = conditional_stats(train("l1_sd", beta_sd=1.0 / c4(P_TRAIN)))
    for y, mean_err, std_ratio in stats:
        assert abs(mean_err) < 0.1 * POST_STD, (y, mean_err)
        assert 0.9 < std_ratio < 1.1, (y, std_ratio)


def test_unit_beta_sd_with_unbiased_variance_under_spreads_as_predicted() -> None:
    k = c4(P_TRAIN) ** 2
    predicted = math.sqrt(P_TRAIN * k / (P_TRAIN + 1 - k))  # 0.734
    stats = conditional_stats(train("l1_sd", beta_sd=1.0))
    for y, mean_err, std_ratio in stats:
        assert abs(mean_err) < 0.1 * POST_STD, (y, mean_err)
        assert abs(std_ratio - predicted) < 0.06, (y, std_ratio, predicted)


def test_l2_of_the_sample_mean_collapses_the_spread() -> None:
    stats = conditional_stats(train("l2"))
    for y, mean_err, std_ratio in stats:
        assert abs(mean_err) < 0.1 * POST_STD, (y, mean_err)  # the mean is still the MMSE one
        assert std_ratio < 0.1, (y, std_ratio)
