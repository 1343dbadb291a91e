"""Training losses: fastMRI SSIM parity on a real scan, rcGAN terms, score matching and EMA,
checked against fastMRI, scikit-image and closed-form results."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mrizoo.errors import InputError
from mrizoo.train.ema import EMA
from mrizoo.train.gan_losses import (
    gradient_penalty,
    ideal_psnr_gain,
    rcgan_discriminator_loss,
    rcgan_generator_loss,
    sd_reward_coefficient,
)
from mrizoo.train.gan_tuning import BetaAdvSchedule, BetaSDTuner
from mrizoo.train.losses import L1Loss, SSIML1Loss, SSIMLoss, build_image_loss, dsm_loss, ssim_map
from mrizoo.train.recipe import LossSpec

# ----------------------------------------------------------------------------- SSIM


@pytest.fixture(scope="module")
def real_pair(brain_kspace: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Target: RSS of the real 8-coil brain slice; output: RSS of its 4x undersampled zero-filled image.

    Two items (the second a noisier reconstruction) as ``[2, 1, H, W]`` float64.
    """
    from mrizoo.masks import create_mask
    from mrizoo.physics.coils import rss
    from mrizoo.physics.fft import ifft2c

    k = torch.from_numpy(brain_kspace).to(torch.complex128)
    target = rss(ifft2c(k), dim=0)
    mask = create_mask("equispaced_fraction", tuple(k.shape[-2:]), seed=0, acceleration=4,
                       center_fraction=0.08).mask
    zf = rss(ifft2c(k * mask), dim=0)
    g = torch.Generator().manual_seed(0)
    noisy = zf + 0.05 * target.max() * torch.randn(zf.shape, generator=g, dtype=zf.dtype)
    out = torch.stack([zf, noisy.abs()])[:, None]
    tgt = torch.stack([target, target * 0.7])[:, None]
    return out, tgt


def test_ssim_loss_matches_fastmri_value_and_gradient(real_pair) -> None:
    fastmri_losses = pytest.importorskip("fastmri.losses")
    out, tgt = real_pair
    data_range = tgt.flatten(1).amax(dim=1)  # per-item maximum, as fastMRI's training code
    ref_loss_fn = fastmri_losses.SSIMLoss().double()
    ref_loss_fn.w.fill_(1 / 49)  # its window was built in float32; exact weights for a float64 comparison

    x_ref = out.clone().requires_grad_(True)
    ref = ref_loss_fn(x_ref, tgt, data_range)
    ref.backward()
    x = out.clone().requires_grad_(True)
    ours = SSIMLoss()(x, tgt, data_range)
    ours.backward()

    assert 0.05 < ref.item() < 0.9  # a real, non-trivial reconstruction error
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12, abs=1e-12)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-14)
    # the per-pixel map too, and the [B, H, W] layout
    ref_map = 1 - ref_loss_fn(out, tgt, data_range, reduced=False)
    torch.testing.assert_close(ssim_map(out[:, 0], tgt[:, 0], data_range), ref_map, rtol=1e-10, atol=1e-12)


def test_ssim_float32_matches_fastmri(real_pair) -> None:
    fastmri_losses = pytest.importorskip("fastmri.losses")
    out, tgt = (t.float() for t in real_pair)
    rng = tgt.flatten(1).amax(dim=1)
    ref = fastmri_losses.SSIMLoss()(out, tgt, rng)
    assert SSIMLoss()(out, tgt, rng).item() == pytest.approx(ref.item(), abs=2e-5)


def test_ssim_matches_scikit_image(real_pair) -> None:
    metrics = pytest.importorskip("skimage.metrics")
    out, tgt = real_pair
    for i in range(2):
        x, y = out[i, 0].numpy(), tgt[i, 0].numpy()
        rng = float(y.max())
        _, full = metrics.structural_similarity(y, x, win_size=7, data_range=rng, full=True,
                                                use_sample_covariance=True, K1=0.01, K2=0.03)
        pad = 3  # scikit-image averages over the region the window fits in
        expected = full[pad:-pad, pad:-pad].mean()
        ours = ssim_map(out[i:i + 1], tgt[i:i + 1], rng).mean().item()
        assert ours == pytest.approx(expected, abs=1e-10)


def test_loss_ssim_map_is_the_metric_ssim_map(real_pair) -> None:
    """The loss and the fastMRI metric share one SSIM map: per item, the same numbers to the last bit."""
    from mrizoo.metrics import ssim_map as metric_ssim_map

    out, tgt = real_pair
    rng = tgt.flatten(1).amax(dim=1)
    loss_map = ssim_map(out, tgt, rng)
    for i in range(out.shape[0]):
        metric_map = metric_ssim_map(tgt[i], out[i], float(rng[i]))  # [1, H', W'] (one slice)
        assert torch.equal(loss_map[i], metric_map)


def test_ssim_default_data_range_is_target_max(real_pair) -> None:
    out, tgt = real_pair
    explicit = SSIMLoss()(out, tgt, tgt.flatten(1).amax(dim=1))
    assert SSIMLoss()(out, tgt).item() == pytest.approx(explicit.item(), rel=1e-14)
    assert SSIMLoss()(tgt, tgt).item() == pytest.approx(0.0, abs=1e-12)


def test_ssim_rejects_bad_inputs() -> None:
    with pytest.raises(InputError, match="window"):
        SSIMLoss()(torch.ones(1, 5, 5), torch.ones(1, 5, 5), 1.0)
    with pytest.raises(InputError, match="shape"):
        SSIMLoss()(torch.ones(1, 9, 9), torch.ones(1, 9, 8), 1.0)
    with pytest.raises(InputError, match="one data range per item"):
        SSIMLoss()(torch.ones(2, 9, 9), torch.ones(2, 9, 9), torch.ones(3))


def test_l1_and_ssim_l1(real_pair) -> None:
    out, tgt = real_pair
    rng = tgt.flatten(1).amax(dim=1)
    assert L1Loss()(out, tgt).item() == pytest.approx(float(np.abs((out - tgt).numpy()).mean()), rel=1e-12)
    combo = SSIML1Loss(ssim_weight=0.5, l1_weight=2.0)
    expected = 0.5 * SSIMLoss()(out, tgt, rng) + 2.0 * ((out - tgt).abs() / rng.view(-1, 1, 1, 1)).mean()
    assert combo(out, tgt, rng).item() == pytest.approx(expected.item(), rel=1e-12)
    # both terms are scale-free: scaling images and range together leaves the loss unchanged
    assert combo(1e-6 * out, 1e-6 * tgt, 1e-6 * rng).item() == pytest.approx(combo(out, tgt, rng).item(), rel=1e-9)


def test_build_image_loss_from_spec() -> None:
    loss = build_image_loss(LossSpec(name="ssim_l1", params={"l1_weight": 0.25}))
    assert isinstance(loss, SSIML1Loss) and loss.l1_weight == 0.25 and loss.ssim.win_size == 7
    assert isinstance(build_image_loss(LossSpec(name="ssim")), SSIMLoss)
    with pytest.raises(InputError, match="not an image loss"):
        build_image_loss(LossSpec(name="dsm"))


# ----------------------------------------------------------------------------- rcGAN


class LinearCritic(nn.Module):
    """D(x, y) = <w, x> + <v, y> per item: its gradient in x is w everywhere."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64) * 0.1)
        self.v = nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64) * 0.1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1, keepdim=True) + (y * self.v).flatten(1).sum(1, keepdim=True)


def test_gradient_penalty_of_linear_critic_is_closed_form() -> None:
    shape = (2, 6, 5)
    critic = LinearCritic(shape)
    g = torch.Generator().manual_seed(1)
    real, fake, y = (torch.randn((4, *shape), generator=g, dtype=torch.float64) for _ in range(3))
    gp = gradient_penalty(critic, real, fake, y, generator=g)
    norm = critic.w.detach().norm()
    assert gp.item() == pytest.approx(((norm - 1) ** 2).item(), rel=1e-12)
    # the penalty trains the critic: d GP / d w = 2 (||w|| - 1) w / ||w||
    gp.backward()
    expected = 2 * (norm - 1) * critic.w.detach() / norm
    torch.testing.assert_close(critic.w.grad, expected, rtol=1e-10, atol=1e-12)


def test_gradient_penalty_of_quadratic_critic_at_equal_inputs() -> None:
    # D(x) = 0.5 ||x||^2 has gradient x; with real == fake every interpolate is real itself
    critic = lambda x, y: 0.5 * (x ** 2).flatten(1).sum(1)  # noqa: E731
    g = torch.Generator().manual_seed(2)
    real = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    expected = ((real.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert gradient_penalty(critic, real, real.clone(), real).item() == pytest.approx(expected.item(), rel=1e-12)


def test_discriminator_loss_terms() -> None:
    shape = (2, 4, 4)
    critic = LinearCritic(shape, seed=3)
    g = torch.Generator().manual_seed(4)
    real, fake, y = (torch.randn((3, *shape), generator=g, dtype=torch.float64) for _ in range(3))
    fake.requires_grad_(True)
    loss, parts = rcgan_discriminator_loss(critic, real, fake, y, gp_weight=10.0, drift_weight=1e-3)
    with torch.no_grad():
        d_real, d_fake = critic(real, y), critic(fake, y)
        gp = (critic.w.norm() - 1) ** 2
        expected = d_fake.mean() - d_real.mean() + 10 * gp + 1e-3 * (d_real ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    assert parts["d_gp"] == pytest.approx(gp.item(), rel=1e-12)
    loss.backward()
    assert fake.grad is None  # the generator is not trained by the critic's loss


def test_sd_reward_coefficient_is_the_l1_slope_at_the_true_posterior() -> None:
    # Gaussian posterior N(mu, s^2), generator N(mu, sigma^2): E|mean_P - x| = sqrt(2/pi) sqrt(s^2 + sigma^2/P).
    # L1 - c_P * sigma is minimised exactly at sigma = s when c_P = sqrt(2 / (pi P (P+1))).
    s = 1.7
    sig = np.linspace(0.2, 4.0, 400001)
    for p in (2, 4, 8):
        c = sd_reward_coefficient(p)
        objective = math.sqrt(2 / math.pi) * np.sqrt(s ** 2 + sig ** 2 / p) - c * sig
        assert sig[np.argmin(objective)] == pytest.approx(s, abs=1e-4)
    assert sd_reward_coefficient(2) == pytest.approx(math.sqrt(1 / (3 * math.pi)))
    with pytest.raises(InputError):
        sd_reward_coefficient(1)


def test_generator_loss_l1_and_std_parts_match_gaussian_moments() -> None:
    # samples m + sigma z (P per item), target x ~ N(mu, s^2): closed-form expectations of both terms
    g = torch.Generator().manual_seed(5)
    b, p, mu, m, s, sigma = 40000, 2, 0.3, 0.5, 1.0, 0.8
    x = mu + s * torch.randn(b, 1, 1, 1, generator=g, dtype=torch.float64)
    samples = m + sigma * torch.randn(b, p, 1, 1, 1, generator=g, dtype=torch.float64)
    loss, parts = rcgan_generator_loss(None, samples, x, x, beta_adv=0.0, beta_sd=1.5)
    var = s ** 2 + sigma ** 2 / p
    # E|N(d, v)| for d = m - mu
    d = m - mu
    e_abs = math.sqrt(2 * var / math.pi) * math.exp(-d * d / (2 * var)) + d * math.erf(d / math.sqrt(2 * var))
    c4 = math.sqrt(2 / (p - 1)) * math.gamma(p / 2) / math.gamma((p - 1) / 2)  # E[unbiased sample std] / sigma
    assert parts["g_l1"] == pytest.approx(e_abs, rel=0.01)
    assert parts["g_std"] == pytest.approx(c4 * sigma, rel=0.01)
    assert loss.item() == pytest.approx(parts["g_l1"] - 1.5 * sd_reward_coefficient(p) * parts["g_std"], rel=1e-12)


def test_generator_adversarial_term_and_reduction() -> None:
    shape = (2, 4, 4)
    critic = LinearCritic(shape, seed=6)
    g = torch.Generator().manual_seed(7)
    b, p = 3, 2
    samples = torch.randn((b, p, *shape), generator=g, dtype=torch.float64, requires_grad=True)
    target, y = (torch.randn((b, *shape), generator=g, dtype=torch.float64) for _ in range(2))
    base, _ = rcgan_generator_loss(None, samples, target, y, beta_adv=0.0, beta_sd=1.0)
    with torch.no_grad():
        d = torch.stack([torch.stack([critic(samples[i, j:j + 1], y[i:i + 1])[0, 0] for j in range(p)])
                         for i in range(b)])  # [B, P]
    loss, parts = rcgan_generator_loss(critic, samples, target, y, beta_adv=1e-2, beta_sd=1.0)
    assert parts["g_adv"] == pytest.approx(-d.mean().item(), rel=1e-12)
    assert loss.item() == pytest.approx(base.item() + 1e-2 * -d.mean().item(), rel=1e-12)
    summed, parts_sum = rcgan_generator_loss(critic, samples, target, y, beta_adv=1e-2, beta_sd=1.0,
                                             adv_reduction="sum_batch")
    assert parts_sum["g_adv"] == pytest.approx(-d.mean(dim=1).sum().item(), rel=1e-12)
    summed.backward()
    assert samples.grad is not None and torch.isfinite(samples.grad).all()
    with pytest.raises(InputError, match="samples must be"):
        rcgan_generator_loss(None, samples[:, 0], target, y, beta_adv=0.0, beta_sd=1.0)


def test_beta_adv_schedule_of_the_paper() -> None:
    sched = BetaAdvSchedule()
    assert [sched(e) for e in (0, 4, 5, 22, 23, 99)] == [1e-2, 1e-2, 1e-4, 1e-4, 1e-5, 1e-5]
    other = BetaAdvSchedule((1.0, 2.0), (0,))
    other.load_state_dict(sched.state_dict())
    assert other(22) == 1e-4 and other(23) == 1e-5
    with pytest.raises(InputError):
        BetaAdvSchedule((1.0,), (3,))


def test_ideal_psnr_gain_matches_true_posterior_samples() -> None:
    # Prop. 3.3: for true posterior samples E_1 / E_P = 2P / (P+1); check it by simulation
    g = torch.Generator().manual_seed(8)
    n, p = 200000, 8
    mean = torch.randn(n, generator=g, dtype=torch.float64)
    x = mean + torch.randn(n, generator=g, dtype=torch.float64)
    samples = mean[:, None] + torch.randn(n, p, generator=g, dtype=torch.float64)
    e1 = ((samples[:, 0] - x) ** 2).mean()
    ep = ((samples.mean(dim=1) - x) ** 2).mean()
    gain = 10 * math.log10(e1 / ep)
    assert gain == pytest.approx(ideal_psnr_gain(p), abs=0.03)
    assert ideal_psnr_gain(8) == pytest.approx(2.5, abs=0.01)  # the paper's "2.5 dB"


def test_beta_sd_tuner_eq23_and_state() -> None:
    tuner = BetaSDTuner(beta_sd=1.0, p_val=8, rate=0.02)
    # samples too alike: the 8-average gains only 1 dB over one sample -> reward grows
    b = tuner.update(psnr_1=36.0, psnr_p=37.0)
    assert b == pytest.approx(1.0 + 0.02 * ((36.0 + 10 * math.log10(16 / 9)) - 37.0))
    assert not tuner.well_tuned(36.0, 37.0)
    assert tuner.well_tuned(36.0, 38.4) and tuner.gap(36.0, 38.4) > 0
    # too diverse: gain above ideal -> reward shrinks
    assert tuner.update(36.0, 40.0) < b
    clone = BetaSDTuner()
    clone.load_state_dict(tuner.state_dict())
    assert clone.beta_sd == tuner.beta_sd and clone.history == tuner.history and clone.p_val == 8
    fixed = BetaSDTuner(enabled=False)
    assert fixed.update(36.0, 37.0) == 1.0


# ----------------------------------------------------------------------------- score matching


def _gaussian_score(s0: float, sigmas: torch.Tensor, scale: float = 1.0):
    """Exact score of x + sigma n with x ~ N(0, s0^2 I): -x / (s0^2 + sigma^2) (optionally mis-scaled)."""
    def score(xt: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        var = s0 ** 2 + sigmas[labels].view(-1, *([1] * (xt.ndim - 1))) ** 2
        return -scale * xt / var
    return score


def test_dsm_loss_of_exact_gaussian_score_is_closed_form_minimum() -> None:
    s0, d = 0.7, 16
    sigmas = torch.exp(torch.linspace(math.log(5.0), math.log(0.05), 6, dtype=torch.float64))
    g = torch.Generator().manual_seed(9)
    x = s0 * torch.randn(60000, 1, 4, 4, generator=g, dtype=torch.float64)
    labels = torch.arange(x.shape[0]) % sigmas.numel()

    def loss(scale: float) -> float:
        return dsm_loss(_gaussian_score(s0, sigmas, scale), x, sigmas, labels=labels,
                        generator=torch.Generator().manual_seed(10)).item()

    # expected value with the exact score, sigma^2 weighting: d/2 (1 - sigma^2 / (s0^2 + sigma^2)) per level
    per_level = d / 2 * (1 - sigmas ** 2 / (s0 ** 2 + sigmas ** 2))
    assert loss(1.0) == pytest.approx(per_level.mean().item(), rel=0.01)
    assert loss(1.0) < min(loss(0.9), loss(1.1), loss(0.5))


def test_dsm_loss_trains_the_ncsnv2_network() -> None:
    from mrizoo.models.ncsnv2 import NCSNv2, NCSNv2Config

    net = NCSNv2(NCSNv2Config(ngf=4, variant="base", num_classes=5, sigma_begin=1.0, sigma_end=0.01))
    x = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(11))
    loss = dsm_loss(net, x, net.sigmas, generator=torch.Generator().manual_seed(12))
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert loss.item() > 0 and all(gr is not None and torch.isfinite(gr).all() for gr in grads)


# ----------------------------------------------------------------------------- EMA


def test_ema_math_buffers_and_state() -> None:
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for prm in net.parameters():
            prm.fill_(0.0)
    ema = EMA(net, decay=0.9)
    with torch.no_grad():
        for prm in net.parameters():
            prm.fill_(1.0)
        net[1].running_mean.fill_(3.0)
    for _ in range(5):
        ema.update(net)
    # shadow of a parameter held at 1 from 0: 1 - 0.9^5; buffers are copied, not averaged
    torch.testing.assert_close(ema.shadow["0.weight"], torch.full((2, 3), 1 - 0.9 ** 5))
    torch.testing.assert_close(ema.shadow["1.running_mean"], torch.full((2,), 3.0))
    averaged = ema.averaged(net)
    torch.testing.assert_close(averaged[0].bias.detach(), torch.full((2,), 1 - 0.9 ** 5))
    assert net[0].bias.detach().eq(1.0).all()  # the live model is untouched

    other = EMA(net, decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9 and other.num_updates == 5
    torch.testing.assert_close(other.shadow["0.weight"], ema.shadow["0.weight"])
    with pytest.raises(InputError):
        EMA(net, decay=1.0)
    with pytest.raises(InputError, match="does not match"):
        EMA(nn.Linear(3, 2)).load_state_dict(ema.state_dict())
