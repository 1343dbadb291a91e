"""Synthetic data: phantom, simulated coil maps, smooth phase, noise at a given SNR, test volumes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mrizoo.data.bart import read_cfl
from mrizoo.data.fastmri_h5 import FastMRIVolume, HeaderSizes
from mrizoo.data.synthetic import (
    birdcage_maps,
    ellipse_phantom,
    make_test_volume,
    simulate_multicoil,
    smooth_phase,
)
from mrizoo.errors import InputError

fastmri = pytest.importorskip("fastmri")
from fastmri.data import transforms as fm_transforms  # noqa: E402


def _fastmri_fft2c(x: torch.Tensor) -> torch.Tensor:
    out = fastmri.fft2c(torch.view_as_real(x.to(torch.complex64)))
    return torch.view_as_complex(out.contiguous())


def _fastmri_ifft2c(k: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(fastmri.ifft2c(torch.view_as_real(k.contiguous())).contiguous())


# ----------------------------------------------------------------------------- phantom
def test_phantom_matches_scikit_image_shepp_logan():
    data = pytest.importorskip("skimage.data")
    ref = data.shepp_logan_phantom()  # 400 x 400, modified Shepp-Logan, stored as 8-bit PNG
    ours = ellipse_phantom((400, 400)).numpy()
    assert ours.dtype == np.float32 and ours.min() >= 0 and ours.max() == pytest.approx(1.0)
    assert (np.abs(ours - ref) < 0.01).mean() > 0.99  # only boundary pixels differ
    assert (np.abs(ours[::-1] - ref) < 0.01).mean() < 0.9  # orientation matters


def test_phantom_slices_shrink_away_from_the_centre():
    areas = [(ellipse_phantom((64, 64), z=z) > 0).sum().item() for z in (0.0, 0.4, 0.8)]
    assert areas[0] > areas[1] > areas[2] > 0
    with pytest.raises(InputError, match="slice position"):
        ellipse_phantom((8, 8), z=1.0)


# ----------------------------------------------------------------------------- coil maps
def test_birdcage_maps_are_normalised_and_distinct():
    maps = birdcage_maps(8, (48, 40))
    assert maps.shape == (8, 48, 40) and maps.dtype == torch.complex64
    torch.testing.assert_close((maps.abs() ** 2).sum(0), torch.ones(48, 40), rtol=0, atol=1e-5)
    # eight linearly independent coil profiles
    assert torch.linalg.matrix_rank(maps.reshape(8, -1).to(torch.complex128)).item() == 8


def test_birdcage_map_closed_form():
    """Unnormalised: |S_c| = 1 / distance from the coil; coil 0 sits at (radius, 0), right of centre."""
    h, w, radius = 32, 32, 1.5
    raw = birdcage_maps(4, (h, w), radius=radius, normalize=False)
    # pixel (row 15, col 31): x = (31.5 * 2/32) - 1, y = 1 - 15.5 * 2/32
    x, y = 31.5 * 2 / w - 1, 1 - 15.5 * 2 / h
    for c, (cx, cy) in enumerate([(radius, 0.0), (0.0, radius), (-radius, 0.0), (0.0, -radius)]):
        assert raw[c, 15, 31].abs().item() == pytest.approx(1 / math.hypot(x - cx, y - cy), rel=1e-5)
    mag = raw[0].abs()
    assert mag[:, w // 2 :].mean() > 1.5 * mag[:, : w // 2].mean()  # brighter next to the coil
    assert raw[1, 0].abs().mean() > raw[1, -1].abs().mean()  # coil 1 is at the top (row 0)


def test_birdcage_phase_is_smooth():
    """Neighbouring pixels differ by at most (pixel size / distance to the nearest coil) radians."""
    maps = birdcage_maps(8, (64, 64))
    dphase_x = torch.angle(maps[..., 1:] * maps[..., :-1].conj()).abs().max()
    dphase_y = torch.angle(maps[:, 1:] * maps[:, :-1].conj()).abs().max()
    assert dphase_x < 0.25 and dphase_y < 0.25
    assert torch.angle(maps[:, 16:48, 17:48] * maps[:, 16:48, 16:47].conj()).abs().max() < 0.05


def test_birdcage_rejects_bad_arguments():
    with pytest.raises(InputError, match="positive integer"):
        birdcage_maps(0, (8, 8))
    with pytest.raises(InputError, match="outside the image"):
        birdcage_maps(4, (8, 8), radius=0.5)
    with pytest.raises(InputError, match="two integers"):
        birdcage_maps(4, (8,))


# ----------------------------------------------------------------------------- smooth phase
def test_smooth_phase():
    p = smooth_phase((40, 50), seed=3, order=3, strength=1.2)
    assert p.shape == (40, 50) and p.dtype == torch.float32
    assert p.abs().max().item() == pytest.approx(1.2, rel=1e-5)
    assert torch.equal(p, smooth_phase((40, 50), seed=3, order=3, strength=1.2))
    assert not torch.allclose(p, smooth_phase((40, 50), seed=4, order=3, strength=1.2))
    # a cubic: second differences are tiny next to the range
    d2 = (p[:, 2:] - 2 * p[:, 1:-1] + p[:, :-2]).abs().max()
    assert d2 < 0.01 * 1.2
    # order 1 gives a plane: all second differences vanish
    plane = smooth_phase((20, 20), seed=1, order=1)
    assert (plane[:, 2:] - 2 * plane[:, 1:-1] + plane[:, :-2]).abs().max() < 1e-5
    with pytest.raises(InputError, match="order"):
        smooth_phase((8, 8), order=0)


# ----------------------------------------------------------------------------- simulation
@pytest.fixture(scope="module")
def complex_image() -> torch.Tensor:
    shape = (64, 56)
    return ellipse_phantom(shape) * torch.polar(torch.ones(shape), smooth_phase(shape, seed=5))


def test_noiseless_simulation_matches_fastmri_fft_and_rss_is_the_magnitude(complex_image):
    kspace, maps = simulate_multicoil(complex_image, num_coils=8)
    assert kspace.shape == (8, 64, 56) and kspace.dtype == torch.complex64
    torch.testing.assert_close(kspace, _fastmri_fft2c(maps * complex_image), rtol=1e-4, atol=1e-5)
    coil_images = fm_transforms.to_tensor(kspace.numpy())
    rss = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(coil_images)), dim=0)
    torch.testing.assert_close(rss, complex_image.abs(), rtol=1e-4, atol=1e-5)


def test_real_numpy_image_and_given_maps():
    img = np.random.default_rng(0).random((16, 12))
    maps = birdcage_maps(3, (16, 12))
    kspace, used = simulate_multicoil(img, maps=maps)
    assert used is maps or torch.equal(used, maps)
    torch.testing.assert_close(_fastmri_ifft2c(kspace), maps * torch.from_numpy(img).to(torch.complex64),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(InputError, match="maps do not fit"):
        simulate_multicoil(img, maps=birdcage_maps(3, (16, 16)))
    with pytest.raises(InputError, match="2D"):
        simulate_multicoil(np.ones((2, 16, 12)))
    with pytest.raises(InputError, match="finite"):
        simulate_multicoil(img, snr_db=float("nan"))


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_noise_reaches_the_requested_snr(complex_image, snr_db):
    clean, maps = simulate_multicoil(complex_image, num_coils=8)
    noisy, _ = simulate_multicoil(complex_image, num_coils=8, snr_db=snr_db, seed=11)
    noise = (noisy - clean).to(torch.complex128)
    signal_power = (clean.abs().to(torch.float64) ** 2).mean()
    noise_power = (noise.abs() ** 2).mean()
    measured = 10 * math.log10(signal_power / noise_power)
    assert measured == pytest.approx(snr_db, abs=0.1)  # 28,672 samples: ~0.03 dB standard error
    # circular: real and imaginary parts carry half the power each, uncorrelated, zero mean
    assert noise.real.var().item() == pytest.approx(noise.imag.var().item(), rel=0.05)
    assert abs(torch.corrcoef(torch.stack([noise.real.ravel(), noise.imag.ravel()]))[0, 1].item()) < 0.03
    assert abs(noise.mean().item()) < 0.05 * math.sqrt(noise_power)
    # the orthonormal transform keeps the SNR in image space
    noise_img = _fastmri_ifft2c(noise.to(torch.complex64))
    assert (noise_img.abs() ** 2).mean().item() == pytest.approx(noise_power.item(), rel=1e-3)


def test_simulation_is_reproducible_from_the_seed(complex_image):
    a, _ = simulate_multicoil(complex_image, num_coils=4, snr_db=20.0, seed=1)
    b, _ = simulate_multicoil(complex_image, num_coils=4, snr_db=20.0, seed=1)
    c, _ = simulate_multicoil(complex_image, num_coils=4, snr_db=20.0, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)


# ----------------------------------------------------------------------------- test volumes
def test_make_test_volume_phantom(tmp_path):
    path = make_test_volume(tmp_path / "v.h5", num_slices=3, shape=(40, 36), num_coils=6, seed=4,
                            crop=(32, 32))
    with FastMRIVolume(path) as vol:
        assert vol.kspace_shape == (3, 6, 40, 36)
        assert vol.header == HeaderSizes((40, 36, 1), (32, 32, 1))
        attrs = vol.attrs
        assert attrs["acquisition"] == "SYNTHETIC" and attrs["patient_id"] == "synthetic-4"
        targets = torch.stack([vol.target(i) for i in range(3)])
    # noiseless and sum |S|^2 = 1: the RSS target is the phantom itself
    truth = torch.stack([ellipse_phantom((40, 36), z=z) for z in (-0.6, 0.0, 0.6)])
    torch.testing.assert_close(targets, fm_transforms.center_crop(truth, (32, 32)), rtol=0, atol=1e-4)
    assert attrs["max"] == pytest.approx(targets.max().item())
    assert attrs["norm"] == pytest.approx(torch.linalg.vector_norm(targets.double()).item(), rel=1e-6)
    again = make_test_volume(tmp_path / "w.h5", num_slices=3, shape=(40, 36), num_coils=6, seed=4,
                             crop=(32, 32))
    with FastMRIVolume(path) as a, FastMRIVolume(again) as b:
        assert torch.equal(a.kspace(1), b.kspace(1))
    with pytest.raises(InputError, match="file exists"):
        make_test_volume(path)


def test_make_test_volume_from_the_real_knee(tmp_path, realdata: Path):
    knee = np.squeeze(read_cfl(realdata / "knee_image_1map"))  # complex 288 x 236
    path = make_test_volume(tmp_path / "knee.h5", num_slices=2, num_coils=8, seed=0,
                            source=realdata / "knee_image_1map", snr_db=40.0)
    noiseless = make_test_volume(tmp_path / "knee0.h5", num_slices=1, num_coils=8,
                                 source=realdata / "knee_image_1map", shape=(256, 200))
    with FastMRIVolume(path) as vol:
        assert vol.kspace_shape == (2, 8, 288, 236)
        assert not torch.equal(vol.kspace(0), vol.kspace(1))  # independent noise per slice
        rel = np.linalg.norm(vol.target(0).numpy() - np.abs(knee)) / np.linalg.norm(np.abs(knee))
        assert rel < 0.05  # 40 dB: noise at 1% of the signal amplitude
    with FastMRIVolume(noiseless) as vol:
        expected = fm_transforms.center_crop(torch.from_numpy(np.abs(knee)), (256, 200))
        torch.testing.assert_close(vol.target(0), expected, rtol=1e-4, atol=1e-5 * expected.max().item())
