"""NCSNv2 score network, its noise ladder, and the annealed Langevin posterior sampler.

The key test runs the sampler on a Gaussian prior whose smoothed score is known exactly and
compares the sample mean and covariance with the closed-form Gaussian posterior, computed
with an explicit forward matrix built from numpy's FFT (independent of mrizoo.physics).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from mrizoo.errors import InputError
from mrizoo.models.langevin import (
    LANGEVIN_JALAL2021,
    LangevinConfig,
    ScorePosterior,
    annealed_langevin,
    build_score_posterior,
    percentile_scale,
)
from mrizoo.models.ncsnv2 import NCSNV2_JALAL2021, NCSNV2_TINY, NCSNv2, NCSNv2Config, build_ncsnv2, sigmas

pytestmark = pytest.mark.usefixtures("one_thread")



# ----------------------------------------------------------------------------- helpers


def _fft2c(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def _ifft2c(k: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def _smooth_maps(c: int, h: int, w: int) -> np.ndarray:
    """Smooth complex coil maps with ``sum_c |S_c|^2 = 1`` everywhere."""
    yy, xx = np.meshgrid(np.arange(h) - h / 2, np.arange(w) - w / 2, indexing="ij")
    maps = []
    for i in range(c):
        ang = 2 * np.pi * i / c
        cy, cx = 0.75 * h * np.sin(ang), 0.75 * w * np.cos(ang)
        mag = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.75 * h) ** 2))
        maps.append(mag * np.exp(1j * (0.3 * i + 0.1 * (yy * np.cos(ang) - xx * np.sin(ang)))))
    maps = np.array(maps)
    return maps / np.sqrt((np.abs(maps) ** 2).sum(0, keepdims=True))


# ----------------------------------------------------------------- Gaussian posterior test

H = W = 6
C = 2
NPIX = H * W
N_CHAINS = 2000
GAMMA = 0.3  # measurement noise std per real component (k-space units)


@pytest.fixture(scope="module")
def gaussian_problem() -> dict:
    """Prior x ~ N(mu, Sigma) per real component (Sigma = diag + rank 3), y = A x + noise."""
    rng = np.random.default_rng(1234)
    maps = _smooth_maps(C, H, W)
    mask = np.zeros((H, W), bool)
    mask[:, [1, 2, 3, 5]] = True
    yy, xx = np.meshgrid(np.arange(H) - H / 2, np.arange(W) - W / 2, indexing="ij")
    r = np.hypot(yy, xx)
    mu = (1.0 / (1 + np.exp((r - 0.35 * H) * 2))) * np.exp(0.2j * xx)
    u = 0.3 * rng.standard_normal((NPIX, 3)) * np.array([0.3, 0.2, 0.1])
    sigma_prior = np.diag(0.09 * rng.uniform(0.2, 1.0, NPIX)) + u @ u.T
    # explicit forward matrix: columns A e_j = M F (S e_j)
    a = np.zeros((C, H, W, NPIX), complex)
    for j in range(NPIX):
        e = np.zeros(NPIX)
        e[j] = 1.0
        a[..., j] = _fft2c(maps * e.reshape(H, W)) * mask
    a = a.reshape(-1, NPIX)
    chol = np.linalg.cholesky(sigma_prior)
    x_true = mu.ravel() + chol @ rng.standard_normal(NPIX) + 1j * (chol @ rng.standard_normal(NPIX))
    noise = GAMMA * (rng.standard_normal(a.shape[0]) + 1j * rng.standard_normal(a.shape[0]))
    y = (a @ x_true + noise).reshape(C, H, W) * mask
    # closed-form posterior: precision P = Sigma^-1 + A^H A / gamma^2 (complex form);
    # E[(x - m)(x - m)^H] = 2 P^-1 since real and imaginary parts each have covariance P^-1
    sinv = np.linalg.inv(sigma_prior)
    cov = np.linalg.inv(sinv + a.conj().T @ a / GAMMA**2)
    mean = cov @ (sinv @ mu.ravel() + a.conj().T @ y.ravel() / GAMMA**2)
    # normalisation the sampler uses: 99th percentile of |MVUE| of the data
    mvue = (maps.conj() * _ifft2c(y)).sum(0) / np.sqrt((np.abs(maps) ** 2).sum(0))
    scale = float(np.quantile(np.abs(mvue), 0.99))
    return dict(maps=maps, mask=mask, mu=mu, sigma_prior=sigma_prior, y=y, mean=mean, cov=cov,
                scale=scale, a=a)


def _gaussian_score(problem: dict):
    """Exact score of the normalised prior smoothed at level sigma: -(Sigma_n + sigma^2 I)^-1 (x - mu_n)."""
    s = problem["scale"]
    evals, evecs = np.linalg.eigh(problem["sigma_prior"] / s**2)
    q = torch.tensor(evecs, dtype=torch.float32)
    lam = torch.tensor(evals, dtype=torch.float32)
    mu_n = torch.tensor(problem["mu"].ravel() / s, dtype=torch.complex64)

    def score(x: torch.Tensor, sigma: float) -> torch.Tensor:
        d = x.reshape(*x.shape[:-2], NPIX) - mu_n
        coef = (d @ q.to(d.dtype)) / (lam + sigma**2)
        return -(coef @ q.T.to(d.dtype)).reshape(x.shape)

    return score


def test_annealed_langevin_samples_the_gaussian_posterior(gaussian_problem: dict) -> None:
    pb = gaussian_problem
    # Ladder from above the prior scale to far below the posterior scales (normalised units:
    # prior sd 0.13..0.62, gamma / s = 0.28); eps = 0.9 sigma_L^2 keeps a * Lipschitz(drift) < 2
    # at every level. Annealing leaves a small deterministic excess variance (the chains lag
    # behind the shrinking target, ~ (1 - r) / (a p) per level with r the ladder ratio, and
    # sigma_L^2 / var_min adds 0.1%): +0.5..0.9% here by the exact moment recursion of this
    # linear-Gaussian chain, budgeted below as a 1% allowance.
    ladder = torch.tensor(np.geomspace(2.0, 0.004, 500))
    cfg = LangevinConfig(step_lr=0.9 * 0.004**2, steps_per_level=3, noise_std=GAMMA, seed=7)
    kspace = torch.tensor(pb["y"], dtype=torch.complex64)[None]
    maps = torch.tensor(pb["maps"], dtype=torch.complex64)[None]
    mask = torch.tensor(pb["mask"])
    x = annealed_langevin(_gaussian_score(pb), kspace, mask, maps, ladder, cfg, n=N_CHAINS)
    assert x.shape == (N_CHAINS, 1, H, W) and x.dtype == torch.complex64
    z = x[:, 0].reshape(N_CHAINS, NPIX).to(torch.complex128).numpy()

    # whiten with the true posterior: w = C^-1/2 (x - m) has real and imaginary parts ~ N(0, I)
    evals, evecs = np.linalg.eigh(pb["cov"])
    whiten = evecs.conj().T / np.sqrt(evals)[:, None]  # rows: posterior eigen-directions
    w = (z - pb["mean"]) @ whiten.T
    n = N_CHAINS

    # mean: n * |mean(w)|^2 summed over real and imaginary parts ~ chi2(2 NPIX)
    wbar = w.mean(0)
    t_mean = n * float(np.sum(wbar.real**2 + wbar.imag**2))
    assert stats.chi2.sf(t_mean, 2 * NPIX) > 1e-4, t_mean

    # variances along each posterior eigen-direction: |w_j|^2 / 2 ~ Exp(1) -> mean 1, sd 1/sqrt(n)
    wc = w - wbar
    var = (np.abs(wc) ** 2).sum(0) / (2 * (n - 1))
    assert np.max(np.abs(var - 1)) * math.sqrt(n) < 4.5, var
    # the well-measured half (smallest posterior variance) and the prior-dominated half
    # separately: each average has sd 1/sqrt(n NPIX/2) (~0.5%); +1% for the annealing bias
    for half in (var[: NPIX // 2], var[NPIX // 2:]):
        assert abs(half.mean() - 1) < 4 / math.sqrt(n * half.size) + 0.01, half.mean()

    # no spurious correlations: 2 n |cov_jk|^2 summed over j < k ~ chi2(2 * pairs)
    cov_w = (wc.T @ wc.conj()) / (2 * (n - 1))
    iu = np.triu_indices(NPIX, 1)
    dof = 2 * iu[0].size
    t_cross = 2 * n * float(np.sum(np.abs(cov_w[iu]) ** 2))
    assert stats.chi2.sf(t_cross, dof) > 1e-4, (t_cross, dof)
    # circularity (real and imaginary parts uncorrelated, of equal variance): E[w w^T] = 0; the
    # real and imaginary parts of mean(w_j w_k) have variance 2/n (j != k) and 4/n (j = k)
    pcov = (wc.T @ wc) / (n - 1)
    t_pseudo = (n / 2 * float(np.sum(np.abs(pcov[iu]) ** 2))
                + n / 4 * float(np.sum(np.abs(np.diag(pcov)) ** 2)))
    assert stats.chi2.sf(t_pseudo, dof + 2 * NPIX) > 1e-4, t_pseudo


def test_annealed_langevin_is_scale_equivariant() -> None:
    """The 99th-percentile normalisation is undone: scaling y (and gamma) scales the samples."""
    torch.manual_seed(0)
    net = NCSNv2(NCSNv2Config(ngf=4, num_classes=6, sigma_begin=1.0, sigma_end=0.05, variant="base"))
    k = torch.randn(1, 2, 16, 12, dtype=torch.complex64)
    mask = torch.zeros(16, 12, dtype=torch.bool)
    mask[:, ::2] = True
    maps = torch.tensor(_smooth_maps(2, 16, 12), dtype=torch.complex64)[None]
    model = ScorePosterior(net, LangevinConfig(steps_per_level=2, noise_std=0.1, seed=3))
    out = model.sample(k, mask, maps, n=2).samples
    c = 3.7
    model_c = ScorePosterior(net, LangevinConfig(steps_per_level=2, noise_std=0.1 * c, seed=3))
    out_c = model_c.sample(c * k, mask, maps, n=2).samples
    torch.testing.assert_close(out_c, c * out, rtol=1e-4, atol=1e-5 * float(out.abs().max()))
    # and the normalisation really is the 99th percentile of the MVUE magnitude
    mvue = (maps[0].numpy().conj() * _ifft2c((k[0] * mask).numpy())).sum(0)
    expected = np.quantile(np.abs(mvue), 0.99)
    assert percentile_scale(k * mask, mask[None], maps).item() == pytest.approx(expected, rel=1e-5)


def test_score_posterior_shapes_dtypes_and_seeding() -> None:
    net = build_ncsnv2(NCSNv2Config(ngf=4, num_classes=5, sigma_begin=1.0, sigma_end=0.1, variant="base"))
    k = torch.randn(2, 3, 13, 10, dtype=torch.complex64)
    mask = torch.zeros(2, 13, 10, dtype=torch.bool)
    mask[:, :, 3:7] = True
    maps = torch.tensor(_smooth_maps(3, 13, 10), dtype=torch.complex64).expand(2, -1, -1, -1)
    model = ScorePosterior(net, LangevinConfig(steps_per_level=1, seed=None, reconstruct_samples=2), chunk=3)
    assert model.is_posterior and model.needs_maps
    g = torch.Generator().manual_seed(5)
    k = k * mask[:, None]
    s = model.sample(k, mask, maps, n=3, generator=g)
    assert s.samples.shape == (3, 2, 13, 10) and s.samples.dtype == torch.float32
    assert s.mean.shape == s.std.shape == (2, 13, 10)
    assert bool(torch.isfinite(s.samples).all())
    s2 = model.sample(k, mask, maps, n=3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(s.samples, s2.samples)
    s3 = model.sample(k, mask, maps, n=3, generator=torch.Generator().manual_seed(6))
    assert not torch.allclose(s.samples, s3.samples)
    rec = model.reconstruct(k, mask, maps)
    assert rec.shape == (2, 13, 10) and rec.dtype == torch.float32
    # chains are independent of how the score evaluations are chunked
    unchunked = ScorePosterior(net, model.langevin)
    s4 = unchunked.sample(k, mask, maps, n=3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(s4.samples, s.samples, rtol=1e-4, atol=1e-5)


def test_langevin_rejects_bad_inputs() -> None:
    score = lambda x, sigma: -x  # noqa: E731
    k = torch.randn(1, 2, 8, 8, dtype=torch.complex64)
    maps = torch.ones(1, 2, 8, 8, dtype=torch.complex64) / math.sqrt(2)
    mask = torch.ones(8, 8, dtype=torch.bool)
    with pytest.raises(InputError, match="maps"):
        annealed_langevin(score, k, mask, None, torch.tensor([1.0, 0.1]))
    with pytest.raises(InputError, match="zero"):
        annealed_langevin(score, torch.zeros_like(k), mask, maps, torch.tensor([1.0, 0.1]))
    with pytest.raises(InputError, match="levels"):
        annealed_langevin(score, k, mask, maps, torch.tensor([1.0, 0.1]), LangevinConfig(start_level=5))
    with pytest.raises(InputError, match="step_lr"):
        LangevinConfig(step_lr=0.0)
    with pytest.raises(InputError, match="end_level"):
        LangevinConfig(start_level=3, end_level=2)


# ------------------------------------------------------------------------------- NCSNv2


def test_sigma_ladder_matches_the_reference_values() -> None:
    cfg = NCSNV2_JALAL2021
    s = sigmas(cfg, dtype=torch.float64).numpy()
    assert s.shape == (2311,)
    assert s[0] == pytest.approx(232.0, rel=1e-12) and s[-1] == pytest.approx(0.0066, rel=1e-12)
    np.testing.assert_allclose(s, np.geomspace(232.0, 0.0066, 2311), rtol=1e-10)
    ratio = s[1:] / s[:-1]
    np.testing.assert_allclose(ratio, (0.0066 / 232.0) ** (1 / 2310), rtol=1e-10)
    assert build_ncsnv2(NCSNv2Config(ngf=2, num_classes=7)).sigmas.dtype == torch.float32


@pytest.mark.parametrize("variant", ["base", "deeper", "deepest"])
def test_ncsnv2_forward_backward_small(variant: str) -> None:
    torch.manual_seed(0)
    cfg = NCSNv2Config(ngf=4, num_classes=10, variant=variant)
    net = NCSNv2(cfg)
    x = torch.rand(2, 2, 30, 22, requires_grad=True)
    labels = torch.tensor([0, 9])
    out = net(x, labels)
    assert out.shape == x.shape
    out.square().mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in net.parameters())
    # unconditional network divided by sigma: forward(x, y) == score(x, sigmas[y])
    with torch.no_grad():
        ref = net.score(x, net.sigmas[labels])
        torch.testing.assert_close(net(x, labels), ref)
        same = net(x[:1].expand(2, -1, -1, -1), labels)
        torch.testing.assert_close(same[0] * net.sigmas[0], same[1] * net.sigmas[9])
        assert not torch.allclose(same[0], same[1])


def test_ncsnv2_reference_layout() -> None:
    """State-dict names of the reference NCSNv2Deepest (so its checkpoints load strictly)."""
    with torch.device("meta"):
        net = NCSNv2(NCSNV2_JALAL2021)
    keys = set(net.state_dict())
    for key in ("sigmas", "begin_conv.weight", "normalizer.alpha", "normalizer.gamma", "normalizer.beta",
                "res2.0.conv2.conv.weight", "res2.0.shortcut.conv.weight", "res31.1.conv1.weight",
                "res4.0.shortcut.weight", "res5.1.normalize2.beta", "refine1.adapt_convs.0.1_1_conv.weight",
                "refine1.crp.convs.1.weight", "refine2.msf.convs.1.bias", "refine31.output_convs.1_2_conv.weight",
                "refine5.output_convs.3_2_conv.weight", "end_conv.bias"):
        assert key in keys, key
    assert "refine1.msf.convs.0.weight" not in keys  # the first refine block has no fusion
    assert net.res4[0].conv1.dilation == (2, 2) and net.res5[0].conv1.dilation == (4, 4)
    assert net.refine2.msf.convs[0].in_channels == 4 * 128 and net.refine2.crp.convs[0].in_channels == 2 * 128


def test_score_posterior_builder_and_presets() -> None:
    assert (LANGEVIN_JALAL2021.step_lr, LANGEVIN_JALAL2021.steps_per_level) == (5e-5, 3)
    assert (NCSNV2_JALAL2021.channels, NCSNV2_JALAL2021.num_classes) == (2, 2311)
    model = build_score_posterior(NCSNV2_TINY, LangevinConfig(steps_per_level=4))
    assert isinstance(model.net, NCSNv2) and model.langevin.steps_per_level == 4
    assert model.net.sigmas.shape == (10,) and model.net.config.ngf == 8
    with pytest.raises(InputError, match="variant"):
        NCSNv2Config(variant="huge")  # type: ignore[arg-type]


def test_score_posterior_on_a_real_scan(brain_kspace: np.ndarray) -> None:
    """Real 8-coil slice (230 x 180): ESPIRiT maps estimated inside, samples in the data's units."""
    k = torch.tensor(brain_kspace)[None]
    mask = torch.zeros(230, 180, dtype=torch.bool)
    mask[:, ::4] = True
    mask[:, 78:102] = True
    k = k * mask
    torch.manual_seed(0)
    net = NCSNv2(NCSNv2Config(ngf=4, num_classes=4, sigma_begin=1.0, sigma_end=0.1, variant="base"))
    model = ScorePosterior(net, LangevinConfig(steps_per_level=1, seed=1))
    s = model.sample(k, mask, n=2)
    assert s.samples.shape == (2, 1, 230, 180) and bool(torch.isfinite(s.samples).all())
    # samples are de-normalised: same order of magnitude as the zero-filled image
    zf = torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho").abs().pow(2).sum(1).sqrt()
    ratio = float(s.samples.median() / zf.median())
    assert 0.2 < ratio < 10, ratio  # the normalising scale here is ~87: forgetting it fails
