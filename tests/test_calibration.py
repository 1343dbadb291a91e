"""Calibration metrics against closed-form Gaussian posteriors (scipy's Student t as the oracle)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from mrizoo.errors import InputError
from mrizoo.metrics.calibration import calibration, calibration_stats, expected_ratio, interval_quantile

pytestmark = pytest.mark.usefixtures("one_thread")


def _posterior(p: int, spread: float = 1.0, bias: float = 0.0, shape: tuple[int, ...] = (2, 192, 256),
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A true Gaussian posterior per pixel (mean mu, std sigma varying over two decades), the
    reference drawn from it, and ``p`` sampler draws with std ``spread * sigma`` and mean
    ``mu + bias * sigma``. Units: data range 1."""
    g = torch.Generator().manual_seed(seed)
    mu = 0.2 + 0.6 * torch.rand(shape, generator=g, dtype=torch.float64)
    sigma = 10 ** (-3 + 2 * torch.rand(shape, generator=g, dtype=torch.float64))
    ref = mu + sigma * torch.randn(shape, generator=g, dtype=torch.float64)
    draws = mu + bias * sigma + spread * sigma * torch.randn((p, *shape), generator=g, dtype=torch.float64)
    return draws, ref


def _coverage_oracle(k: float, spread: float, p: int) -> float:
    """P(|e| <= q_k s sqrt(1 + 1/P)) for an unbiased sampler of std ``spread * sigma``:
    ``e / (s sqrt(1 + spread^2 / P) / spread)`` is t with P - 1 dof."""
    q = stats.t.ppf(0.5 + math.erf(k / math.sqrt(2)) / 2, p - 1)
    x = q * spread * math.sqrt((1 + 1 / p) / (1 + spread**2 / p))
    return float(2 * stats.t.cdf(x, p - 1) - 1)


def test_interval_quantile_is_students_t() -> None:
    for p in (2, 4, 8, 32):
        for k in (1.0, 2.0):
            want = stats.t.ppf(0.5 + math.erf(k / math.sqrt(2)) / 2, p - 1)
            assert interval_quantile(k, p) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("p", [2, 8])
def test_exact_sampler_scores_calibrated(p: int) -> None:
    draws, ref = _posterior(p)
    cal = calibration(draws, ref, maxval=1.0)
    assert cal.samples == p and cal.pixels == ref.numel()
    assert cal.var_error_ratio == pytest.approx(1.0, abs=0.02)
    assert cal.coverage_1sd == pytest.approx(0.6827, abs=0.005)
    assert cal.coverage_2sd == pytest.approx(0.9545, abs=0.004)
    assert cal.prop33_target == pytest.approx(2 * p / (p + 1))
    assert cal.prop33_ratio == pytest.approx(cal.prop33_target, rel=0.02)


@pytest.mark.parametrize(("spread", "p"), [(0.5, 8), (2.0, 8), (0.5, 32)])
def test_wrong_spread_is_measured_in_closed_form(spread: float, p: int) -> None:
    draws, ref = _posterior(p, spread=spread, seed=1)
    cal = calibration(draws, ref, maxval=1.0)
    assert cal.var_error_ratio == pytest.approx(expected_ratio(spread, p), rel=0.03)
    assert cal.coverage_1sd == pytest.approx(_coverage_oracle(1, spread, p), abs=0.006)
    assert cal.coverage_2sd == pytest.approx(_coverage_oracle(2, spread, p), abs=0.006)
    # half the std at P = 8: about a quarter of the variance the error calls for
    if spread == 0.5 and p == 8:
        assert 0.25 < cal.var_error_ratio < 0.30 and cal.coverage_1sd < 0.45 and cal.coverage_2sd < 0.80


def test_collapsed_and_biased_samplers() -> None:
    draws, ref = _posterior(8, spread=0.02, seed=2)
    collapsed = calibration(draws, ref, maxval=1.0)
    assert collapsed.var_error_ratio < 1e-3 and collapsed.coverage_2sd < 0.05
    assert collapsed.prop33_ratio == pytest.approx(1.0, abs=0.01)  # one sample is as good as the mean
    # right spread, mean off by one posterior std: E[e^2] = sigma^2 (1 + 1/P) + sigma^2
    draws, ref = _posterior(8, bias=1.0, seed=3)
    biased = calibration(draws, ref, maxval=1.0)
    assert biased.var_error_ratio == pytest.approx((1 + 1 / 8) / (2 + 1 / 8), rel=0.03)


def test_prop33_ratio_and_variance_ratio_are_tied_exactly() -> None:
    """``mean_i (x_i - x)^2 = e^2 + (P - 1) s^2 / P`` pixel by pixel."""
    for spread in (0.3, 1.0, 3.0):
        draws, ref = _posterior(8, spread=spread, bias=0.5, shape=(40, 30), seed=4)
        cal = calibration(draws, ref, maxval=1.0)
        assert cal.prop33_ratio == pytest.approx(1 + 7 / 9 * cal.var_error_ratio, rel=1e-12)


def test_curve_follows_the_identity_when_calibrated_and_not_when_collapsed() -> None:
    draws, ref = _posterior(32, seed=5)
    cal = calibration(draws, ref, maxval=1.0)
    assert sum(cal.curve_count) == cal.pixels
    for pred, obs, n in zip(cal.curve_std, cal.curve_error, cal.curve_count):
        if n > 5000 and 3e-3 < pred < 3e-2:  # inner bins: little regression to the mean
            assert obs == pytest.approx(pred, rel=0.15), (pred, obs, n)
    draws, ref = _posterior(32, spread=0.25, seed=5)
    low = calibration(draws, ref, maxval=1.0)
    big = [(s, e) for s, e, n in zip(low.curve_std, low.curve_error, low.curve_count) if n > 5000]
    assert big and all(e > 2.5 * s for s, e in big)


def test_volumes_pool_exactly_and_region_and_range_follow_score() -> None:
    draws, ref = _posterior(4, shape=(2, 40, 30), seed=6)
    whole = calibration_stats(draws, ref, maxval=1.0)
    parts = calibration_stats(draws[:, :1], ref[:1], maxval=1.0).merge(calibration_stats(draws[:, 1:], ref[1:], maxval=1.0))
    a, b = whole.summary(), parts.summary()
    assert (a.pixels, a.coverage_1sd, a.coverage_2sd, a.curve_count) == (b.pixels, b.coverage_1sd, b.coverage_2sd, b.curve_count)
    assert a.var_error_ratio == pytest.approx(b.var_error_ratio, rel=1e-12)
    # samples larger than the reference are centre-cropped to it; the default data range is the
    # reference maximum, so scaling everything by 10 changes nothing
    big = torch.nn.functional.pad(draws, (3, 3, 5, 5), value=7.0)
    cropped = calibration(big, ref)
    assert cropped.pixels == ref.numel()
    assert cropped.var_error_ratio == pytest.approx(calibration(10 * draws, 10 * ref).var_error_ratio, rel=1e-12)
    assert cropped.rmse == pytest.approx(calibration(draws, ref, maxval=float(ref.max())).rmse, rel=1e-12)
    with pytest.raises(InputError, match="pool"):
        whole.merge(calibration_stats(draws[:2], ref, maxval=1.0))


def test_bad_input_is_refused() -> None:
    draws, ref = _posterior(4, shape=(8, 8))
    with pytest.raises(InputError, match="at least 2 samples"):
        calibration(draws[:1], ref)
    with pytest.raises(InputError, match="do not fit"):
        calibration(draws, ref[None])
    with pytest.raises(InputError, match="complex"):
        calibration(draws.to(torch.complex128), ref)
    with pytest.raises(InputError, match="data range"):
        calibration(draws, torch.zeros_like(ref))
