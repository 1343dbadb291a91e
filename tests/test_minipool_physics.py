"""Acquisition physics of the mini-pool: coil arrays, correlated noise, phase, placement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mrizoo.pools.coil_sim import (
    Acquisition,
    background_phase,
    coil_array,
    draw_acquisition,
    noise_covariance,
    simulate_slices,
)
from mrizoo.pools.minipool_sources import place_slab


def test_noise_covariance_is_a_valid_correlated_covariance() -> None:
    cov = noise_covariance(12, np.random.default_rng(0))
    np.testing.assert_allclose(cov, cov.conj().T, atol=1e-12)
    assert np.linalg.eigvalsh(cov).min() > 0
    assert np.real(np.trace(cov)) == pytest.approx(12)
    d = np.sqrt(np.real(np.diag(cov)))
    corr = np.abs(cov) / np.outer(d, d)
    off = corr[~np.eye(12, dtype=bool)]
    assert 0.02 < off.mean() < 0.5  # correlated, as real arrays are, but not degenerate


def test_simulated_noise_has_the_drawn_covariance() -> None:
    """k-space of an empty object is pure noise: its sample covariance across coils matches sigma^2 Psi."""
    rng = np.random.default_rng(1)
    c = 6
    cov = noise_covariance(c, rng)
    acq = Acquisition(np.ones((c, 64, 64), np.complex64), np.linalg.cholesky(cov), 0.03, 0)
    k = simulate_slices(np.zeros((4, 64, 64), np.float32), acq, seed=3).numpy()
    samples = k.transpose(1, 0, 2, 3).reshape(c, -1)
    got = samples @ samples.conj().T / samples.shape[1]
    sigma2 = (0.03 / math.sqrt(c)) ** 2  # empty image: reference level 1
    np.testing.assert_allclose(got / sigma2, cov, atol=0.06)


def test_coil_arrays_are_smooth_distinct_and_nearly_flat_in_rss() -> None:
    rng = np.random.default_rng(2)
    maps = coil_array(16, (96, 80), 2.0, rng)
    assert maps.shape == (16, 96, 80) and maps.dtype == np.complex64
    sos = np.sqrt((np.abs(maps) ** 2).sum(0))
    centre = sos[24:72, 20:60]
    assert centre.mean() == pytest.approx(1.0, rel=0.05)
    assert 1.0 < sos.max() / sos.min() < 30  # mild shading, no holes
    # smooth over the object (an ellipse filling 90 % of the field of view): no coil inside it,
    # neighbouring pixels differ little in magnitude and phase
    yy, xx = np.mgrid[:96, :80]
    inside = ((yy - 47.5) / 43.2) ** 2 + ((xx - 39.5) / 36.0) ** 2 < 1
    both = inside[:, 1:] & inside[:, :-1]
    dphase = np.abs(np.angle(maps[..., 1:] * np.conj(maps[..., :-1])))[:, both]
    dmag = np.abs(np.diff(np.abs(maps), axis=-1))[:, both] / np.abs(maps).max()
    assert dphase.max() < 0.3 and dmag.max() < 0.1
    # each coil sees a different region
    peaks = {tuple(np.unravel_index(np.abs(m).argmax(), m.shape)) for m in maps}
    assert len(peaks) > 8


def test_acquisition_draws_counts_in_range_and_is_reproducible() -> None:
    counts = [draw_acquisition((32, 32), 1.0, (4, 32), (0.02, 0.04), np.random.default_rng(s)).maps.shape[0]
              for s in range(60)]
    assert min(counts) >= 4 and max(counts) <= 32 and len(set(counts)) > 15
    a = draw_acquisition((32, 32), 1.0, (4, 32), (0.02, 0.04), np.random.default_rng(5))
    b = draw_acquisition((32, 32), 1.0, (4, 32), (0.02, 0.04), np.random.default_rng(5))
    np.testing.assert_array_equal(a.maps, b.maps)
    assert 0.02 <= a.background <= 0.04


def test_background_level_matches_the_request(one_thread: None) -> None:
    """The RSS background, relative to the bright object, is the acquisition's level (within 30 %)."""
    from mrizoo.physics.fft import ifft2c

    img = np.zeros((2, 96, 96), np.float32)
    yy, xx = np.mgrid[:96, :96]
    img[:, (yy - 48) ** 2 + (xx - 48) ** 2 < 30 ** 2] = 1.0
    rng = np.random.default_rng(4)
    acq = draw_acquisition((96, 96), 1.0, (8, 8), (0.04, 0.04), rng)
    k = simulate_slices(img, acq, seed=0)
    rss = ifft2c(k[0]).abs().pow(2).sum(0).sqrt().numpy()
    bright = np.quantile(rss[rss > 0.05 * rss.max()], 0.99)
    corner = np.concatenate([rss[:10, :10].ravel(), rss[-10:, -10:].ravel()])
    assert corner.mean() / bright == pytest.approx(0.04, rel=0.3)


def test_background_phase_is_smooth_but_not_flat() -> None:
    phi = background_phase((128, 96), np.random.default_rng(7))
    assert np.ptp(phi) > 0.5
    assert max(np.abs(np.diff(phi, axis=0)).max(), np.abs(np.diff(phi, axis=1)).max()) < 0.35


def test_place_slab_keeps_proportions_and_fills_the_matrix() -> None:
    """A 100 x 50 mm box on 1 mm pixels, filled to 80 % of a 160 x 160 matrix: 80 x 40 pixels."""
    slab = np.zeros((1, 140, 90), np.float32)
    slab[0, 20:120, 20:70] = 1.0
    out, pix = place_slab(slab, (1.0, 1.0), (160, 160), fill=0.8, angle=0.0, flip=False, shift=(0.0, 0.0))
    assert pix == pytest.approx(100 / 128)
    rows, cols = np.flatnonzero(out[0].max(1) > 0.5), np.flatnonzero(out[0].max(0) > 0.5)
    assert len(rows) == pytest.approx(128, abs=2) and len(cols) == pytest.approx(64, abs=2)
    # 0.5 mm source pixels give the same picture
    fine = np.zeros((1, 280, 180), np.float32)
    fine[0, 40:240, 40:140] = 1.0
    out2, pix2 = place_slab(fine, (0.5, 0.5), (160, 160), fill=0.8, angle=0.0, flip=False, shift=(0.0, 0.0))
    assert pix2 == pytest.approx(pix)
    assert np.abs(out2 - out).mean() < 0.02
    assert torch.tensor(out2).isfinite().all()
