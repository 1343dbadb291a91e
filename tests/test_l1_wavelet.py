"""Orthogonal wavelets (parity with PyWavelets) and L1-wavelet FISTA (closed form, KKT, real scan)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from mrizoo.classical.l1_wavelet import L1WaveletConfig, l1_wavelet, soft_threshold
from mrizoo.errors import InputError
from mrizoo.physics import MultiCoilOperator, ifft2c, sense_combine
from mrizoo.physics.wavelets import WaveletTransform, daubechies_filter, dwt2, idwt2

try:
    import pywt
except ImportError:  # pragma: no cover - PyWavelets comes with sigpy (test extra)
    pywt = None
needs_pywt = pytest.mark.skipif(pywt is None, reason="PyWavelets is the parity oracle")


def _crandn(*shape: int, seed: int, dtype=torch.complex128) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


def _pywt_packed(x: np.ndarray, wavelet: str, levels: int) -> np.ndarray:
    """pywt.wavedec2 (periodization) of every [H, W] slice, packed with coeffs_to_array."""
    def one(a: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "level too high" for small sizes is expected
            coeffs = pywt.wavedec2(a, wavelet, mode="periodization", level=levels)
        return pywt.coeffs_to_array(coeffs)[0]

    flat = x.reshape(-1, *x.shape[-2:])
    if np.iscomplexobj(x):
        out = [one(a.real) + 1j * one(a.imag) for a in flat]
    else:
        out = [one(a) for a in flat]
    return np.stack(out).reshape(x.shape)


def _pywt_inverse(c: np.ndarray, like: np.ndarray, wavelet: str, levels: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        template = pywt.wavedec2(np.zeros(like.shape), wavelet, mode="periodization", level=levels)
        _, slices = pywt.coeffs_to_array(template)

        def inv(a: np.ndarray) -> np.ndarray:
            coeffs = pywt.array_to_coeffs(a, slices, output_format="wavedec2")
            return pywt.waverec2(coeffs, wavelet, mode="periodization")

        return inv(c.real) + 1j * inv(c.imag)


# ---------------------------------------------------------------------------- wavelets


@needs_pywt
@pytest.mark.parametrize("order", range(1, 11))
def test_daubechies_filters_match_pywavelets(order: int) -> None:
    lo, hi = daubechies_filter(f"db{order}")
    ref = pywt.Wavelet(f"db{order}")
    np.testing.assert_allclose(lo, ref.rec_lo, atol=1e-11)
    np.testing.assert_allclose(hi, ref.rec_hi, atol=1e-11)
    assert daubechies_filter("haar") == daubechies_filter("db1")


@needs_pywt
@pytest.mark.parametrize("wavelet", ["haar", "db2", "db4"])
@pytest.mark.parametrize("levels", [1, 2, 4])
def test_dwt2_matches_pywavelets_periodization(wavelet: str, levels: int) -> None:
    x = _crandn(2, 3, 64, 48, seed=levels)  # batched, complex
    ours = dwt2(x, wavelet, levels).numpy()
    np.testing.assert_allclose(ours, _pywt_packed(x.numpy(), wavelet, levels), atol=1e-12)
    real = x.real.contiguous()
    np.testing.assert_allclose(dwt2(real, wavelet, levels).numpy(), _pywt_packed(real.numpy(), wavelet, levels),
                               atol=1e-12)
    # the inverse agrees with pywt.waverec2 on the same coefficients
    back = idwt2(torch.from_numpy(ours), wavelet, levels).numpy()
    np.testing.assert_allclose(back[0, 0], _pywt_inverse(ours[0, 0], back[0, 0], wavelet, levels), atol=1e-12)


@pytest.mark.parametrize("shape", [(37, 53), (230, 180), (16, 16), (2, 4)])
@pytest.mark.parametrize("wavelet", ["haar", "db4"])
def test_perfect_reconstruction_and_energy_any_size(shape: tuple[int, int], wavelet: str) -> None:
    x = _crandn(3, *shape, seed=1, dtype=torch.complex64)
    wav = WaveletTransform(wavelet, levels=4)
    c = wav(x)
    assert c.shape[-2:] == wav.padded_shape(shape) and all(s % 16 == 0 for s in c.shape[-2:])
    torch.testing.assert_close(wav.inverse(c, shape), x, rtol=1e-5, atol=1e-5)
    energy = (x.abs() ** 2).sum(dim=(-2, -1))
    torch.testing.assert_close((c.abs() ** 2).sum(dim=(-2, -1)), energy, rtol=1e-5, atol=0)


def test_inverse_is_the_adjoint() -> None:
    """<W x, c> = <x, W^H c> for the padded transform (W^H = crop after inverse)."""
    shape = (30, 21)
    wav = WaveletTransform("db4", levels=3)
    x = _crandn(2, *shape, seed=2)
    c = _crandn(2, *wav.padded_shape(shape), seed=3)
    lhs = torch.sum(wav(x).conj() * c)
    rhs = torch.sum(x.conj() * wav.inverse(c, shape))
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_wavelet_input_errors() -> None:
    with pytest.raises(InputError, match="wavelet"):
        WaveletTransform("sym4")
    with pytest.raises(InputError, match="levels"):
        WaveletTransform("db4", levels=-1)
    with pytest.raises(InputError, match="multiples"):
        dwt2(torch.zeros(30, 32), "haar", 2)


# ------------------------------------------------------------------------- L1-wavelet


@needs_pywt
@pytest.mark.parametrize("penalize_approx", [True, False])
def test_unitary_forward_model_gives_closed_form(penalize_approx: bool) -> None:
    """One coil, unit map, full mask: A = F is unitary, so x* = W^H soft(W F^H y, lam)."""
    h, w, levels = 32, 48, 3
    y = _crandn(1, h, w, seed=4)
    maps = torch.ones(1, h, w, dtype=torch.complex128)
    mask = torch.ones(h, w, dtype=torch.bool)
    cfg = L1WaveletConfig(lam=0.3, max_iter=5, wavelet="db2", levels=levels, penalize_approx=penalize_approx)
    ours, info = l1_wavelet(y, mask, maps, cfg, return_info=True)

    image = ifft2c(y)[0].numpy()
    lam_abs = 0.3 * np.abs(image).max()
    c = _pywt_packed(image, "db2", levels)
    mag = np.abs(c)
    shrunk = c * np.maximum(mag - lam_abs, 0) / np.where(mag > 0, mag, 1)
    if not penalize_approx:
        shrunk[: h >> levels, : w >> levels] = c[: h >> levels, : w >> levels]
    expected = _pywt_inverse(shrunk, image, "db2", levels)
    assert ours.shape == (h, w)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-10)
    assert float(info.lipschitz) == pytest.approx(1.0)
    assert np.count_nonzero(np.abs(shrunk) == 0) > 0.3 * shrunk.size  # the threshold is active


def test_soft_threshold_complex() -> None:
    c = torch.tensor([3 + 4j, 0.3 + 0.4j, 0j], dtype=torch.complex64)
    out = soft_threshold(c, 1.0)
    torch.testing.assert_close(out, torch.tensor([2.4 + 3.2j, 0j, 0j], dtype=torch.complex64))


def _tiny_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c, h, w = 3, 32, 32
    maps = torch.randn(c, h, w, dtype=torch.complex128, generator=g)
    maps = maps / torch.sqrt((maps.abs() ** 2).sum(0))
    mask = (torch.rand(1, w, generator=g) < 0.4).expand(h, w)
    img = torch.zeros(h, w, dtype=torch.complex128)
    img[8:24, 10:20] = 1 + 0.5j
    img[12:16, 4:28] += 2
    op = MultiCoilOperator(maps, mask)
    y = op(img) + 0.05 * torch.randn(c, h, w, dtype=torch.complex128, generator=g) * mask
    return y, mask, maps, op


def test_fista_reaches_the_optimum_kkt() -> None:
    """Optimality of min 0.5||Ax - y||^2 + lam ||Wx||_1, checked coefficient by coefficient.

    With g = W A^H (A x - y) and c = W x: g = -lam c/|c| where c != 0, |g| <= lam where c = 0.
    """
    y, mask, maps, op = _tiny_problem()
    cfg = L1WaveletConfig(lam=0.02, max_iter=200, levels=3)
    x, info = l1_wavelet(y, mask, maps, cfg, return_info=True)
    lam = float(info.lam)
    c = dwt2(x, "db4", 3)
    g = dwt2(op.adjoint(op(x) - y), "db4", 3)
    nz = c.abs() > 1e-9 * c.abs().max()
    assert 0.05 < nz.float().mean() < 0.9  # a genuinely sparse solution
    assert (g[nz] + lam * c[nz] / c[nz].abs()).abs().max() < 1e-4 * lam
    assert g[~nz].abs().max() <= lam * (1 + 1e-6)

    obj = info.objective
    assert obj.shape == (201,)
    assert obj[-1] < 0.5 * obj[0]
    # FISTA is not monotone, but it never strays far above the best value reached so far
    best = torch.cummin(obj, 0).values
    assert torch.all(obj <= best + 1e-3 * (obj[0] - obj[-1]))
    assert obj[50] - obj[-1] < 1e-3 * (obj[0] - obj[-1])


def test_power_iteration_matches_dense_eigenvalue_and_bound() -> None:
    y, mask, maps, op = _tiny_problem(seed=1)
    maps = maps * 1.7  # not normalised: ||A^H A|| != 1
    cols = []
    basis = torch.eye(32 * 32, dtype=torch.complex128).reshape(-1, 32, 32)
    for chunk in basis.split(256):
        cols.append(MultiCoilOperator(maps, mask).normal(chunk).reshape(chunk.shape[0], -1))
    dense = torch.cat(cols).T
    top = torch.linalg.eigvalsh(dense).max().item()
    _, info = l1_wavelet(y, mask, maps, L1WaveletConfig(max_iter=1, lipschitz="power", power_iters=50),
                         return_info=True)
    # a Rayleigh-quotient estimate (times 1.01): close to, but not guaranteed above, the top
    assert float(info.lipschitz) == pytest.approx(top, rel=0.03)
    _, info = l1_wavelet(y, mask, maps, L1WaveletConfig(max_iter=1), return_info=True)
    assert float(info.lipschitz) >= top and float(info.lipschitz) == pytest.approx(1.7**2)


def test_lam_is_relative_to_the_data_scale() -> None:
    y, mask, maps, _ = _tiny_problem(seed=2)
    cfg = L1WaveletConfig(lam=0.02, max_iter=30, levels=3)
    a = l1_wavelet(y, mask, maps, cfg)
    b = l1_wavelet(y * 1e4, mask, maps, cfg)
    torch.testing.assert_close(b / 1e4, a, rtol=1e-8, atol=1e-10)


def test_config_errors() -> None:
    with pytest.raises(InputError, match="lam"):
        L1WaveletConfig(lam=-1.0)
    with pytest.raises(InputError, match="lipschitz"):
        L1WaveletConfig(lipschitz="guess")
    with pytest.raises(InputError, match="wavelet"):
        L1WaveletConfig(wavelet="coif3")
    with pytest.raises(InputError, match="maps"):
        l1_wavelet(torch.ones(2, 8, 8, dtype=torch.complex64), torch.ones(8, 8, dtype=torch.bool),
                   torch.zeros(3, 8, 8, dtype=torch.complex64))


def _equispaced_mask(width: int, acceleration: int = 4, center_fraction: float = 0.08) -> torch.Tensor:
    """fastMRI-style equispaced columns: a centre block plus lines at the adjusted spacing."""
    num_low = round(width * center_fraction)
    mask = torch.zeros(width, dtype=torch.bool)
    start = width // 2 - num_low // 2
    mask[start : start + num_low] = True
    spacing = acceleration * (num_low - width) / (num_low * acceleration - width)
    mask[np.round(np.arange(1, width - 1, spacing)).astype(int)] = True
    return mask


def test_beats_zero_filled_on_real_brain(brain_kspace: np.ndarray) -> None:
    """4x equispaced (8% centre) on the real 8-coil brain: SSIM (scikit-image) of the magnitude
    against the fully sampled SENSE image, both with ESPIRiT maps from the 14 centre lines."""
    from skimage.metrics import structural_similarity

    from mrizoo.classical.zero_filled import zero_filled
    from mrizoo.physics.espirit import espirit_maps

    full = torch.from_numpy(brain_kspace)
    c, h, w = full.shape
    mask = _equispaced_mask(w).expand(h, w)
    assert 3.7 < w / int(mask[0].sum()) < 4.3
    under = full * mask
    maps = espirit_maps(under, calib_width=round(0.08 * w))
    target = sense_combine(ifft2c(full), maps).abs().numpy()

    def ssim(img: np.ndarray) -> float:
        return structural_similarity(target, img, data_range=float(target.max()))

    zf = ssim(zero_filled(under, mask, maps).abs().numpy())
    l1 = ssim(l1_wavelet(under, mask, maps, L1WaveletConfig(max_iter=30)).abs().numpy())
    # measured: zero-filled 0.71, L1-wavelet 0.885
    assert l1 > zf + 0.1, (l1, zf)
    assert l1 > 0.83


def test_estimates_maps_from_the_calibration_lines() -> None:
    """Without maps, ESPIRiT is calibrated on the contiguous fully sampled centre columns."""
    from mrizoo.physics import fft2c
    from mrizoo.physics.espirit import espirit_maps

    h, w = 48, 40
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    obj = ((xx**2 / 0.7 + yy**2 / 0.9) < 1).to(torch.complex64) * (1 + 0.3 * xx)
    centres = [(-1, -1), (1, -1), (-1, 1), (1, 1)]
    coils = torch.stack([torch.exp(-((xx - a) ** 2 + (yy - b) ** 2) + 1j * (a * xx + b * yy)) for a, b in centres])
    mask = torch.zeros(w, dtype=torch.bool)
    mask[w // 2 - 6 : w // 2 + 6] = True  # 12 centre columns, neighbours unsampled
    mask[1::4] = True
    mask[w // 2 - 7] = mask[w // 2 + 6] = False
    mask2 = mask.expand(h, w)
    under = fft2c(coils.to(torch.complex64) * obj) * mask2
    cfg = L1WaveletConfig(max_iter=10, levels=3)
    auto = l1_wavelet(under, mask2, None, cfg)
    explicit = l1_wavelet(under, mask2, espirit_maps(under), cfg)
    torch.testing.assert_close(auto, explicit)
    wide = l1_wavelet(under, mask2, espirit_maps(under, fit_to_acs=False), cfg)
    assert (wide - explicit).abs().max() > 1e-3 * explicit.abs().max()


def test_prior_without_sparsity_gives_the_closed_form() -> None:
    """lam = 0, one coil, unit map: A^H A = F^H M F is diagonal in k-space, so the minimiser of
    0.5 ||M F x - y||^2 + 0.5 mu ||x - p||^2 is F^H ((M y + mu F p) / (M + mu))."""
    h, w, mu = 16, 24, 0.3
    y = _crandn(1, h, w, seed=7)
    prior = _crandn(h, w, seed=8)
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[:, ::3] = True
    mask[:, 10:14] = True
    maps = torch.ones(1, h, w, dtype=torch.complex128)
    cfg = L1WaveletConfig(lam=0.0, max_iter=300, wavelet="db2", levels=2, prior_weight=mu, crop_to_maps=False)
    ours, info = l1_wavelet(y, mask, maps, cfg, prior=prior, return_info=True)
    from mrizoo.physics import fft2c

    m = mask.to(torch.float64)
    expected = ifft2c(((m * y[0]) + mu * fft2c(prior)) / (m + mu))
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), atol=1e-8)
    assert float(info.lipschitz) == pytest.approx(1.0 + mu)
    assert float(info.objective[-1]) < float(info.objective[0])  # the objective includes the prior term


def test_prior_pulls_the_solution_and_is_checked() -> None:
    """A large weight returns (nearly) the prior; weight 0 with a prior reaches the plain optimum."""
    h, w = 16, 16
    y = _crandn(2, h, w, seed=9)
    maps = torch.ones(2, h, w, dtype=torch.complex128) / 2**0.5
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[:, ::2] = True
    prior = _crandn(h, w, seed=10)
    far = l1_wavelet(y, mask, maps, L1WaveletConfig(lam=1e-2, max_iter=200, prior_weight=1e4, wavelet="db2",
                                                    levels=2), prior=prior)
    assert float((far - prior).abs().max()) < 1e-3 * float(prior.abs().max())
    base = L1WaveletConfig(lam=1e-2, max_iter=300, wavelet="db2", levels=2)
    _, plain = l1_wavelet(y, mask, maps, base, return_info=True)
    # prior_weight 0: the prior is only the starting point, and the optimum value is the same
    _, started = l1_wavelet(y, mask, maps, base, prior=prior, return_info=True)
    assert float(started.objective[0]) > 1.5 * float(plain.objective[-1])  # it starts elsewhere
    assert float(started.objective[-1]) == pytest.approx(float(plain.objective[-1]), rel=1e-5)
    with pytest.raises(InputError, match="prior image does not fit"):
        l1_wavelet(y, mask, maps, base, prior=prior[:-1])
    with pytest.raises(InputError, match="non-negative"):
        L1WaveletConfig(prior_weight=-1.0)
