"""Transforms, coil combination, forward model and CG, checked against fastMRI and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrizoo.physics import (
    MultiCoilOperator,
    adjoint_op,
    coil_compress,
    conjugate_gradient,
    fft2c,
    forward_op,
    ifft2c,
    rss,
    sense_combine,
    sense_expand,
    to_complex,
    to_real,
)

fastmri = pytest.importorskip("fastmri", reason="the fastmri package is the parity oracle")


def _crandn(*shape: int, seed: int = 0, dtype=torch.complex64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


def _normalized_maps(c: int, h: int, w: int, seed: int = 1) -> torch.Tensor:
    s = _crandn(c, h, w, seed=seed)
    return s / torch.sqrt((s.abs() ** 2).sum(0, keepdim=True))


@pytest.mark.parametrize("shape", [(8, 230, 180), (3, 17, 33), (2, 4, 64, 63)])
def test_fft_matches_fastmri(shape: tuple[int, ...]) -> None:
    x = _crandn(*shape)
    ours = fft2c(x)
    ref = fastmri.fft2c(to_real(x))
    torch.testing.assert_close(to_real(ours), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(to_real(ifft2c(x)), fastmri.ifft2c(to_real(x)), rtol=1e-5, atol=1e-5)


def test_fft_real_brain_matches_fastmri_and_is_unitary(brain_kspace: np.ndarray) -> None:
    k = torch.from_numpy(brain_kspace)
    img = ifft2c(k)
    torch.testing.assert_close(to_real(img), fastmri.ifft2c(to_real(k)), rtol=1e-4, atol=1e-3)
    # Parseval: orthonormal transform keeps energy; inverse undoes forward
    assert torch.allclose((img.abs() ** 2).sum(), (k.abs() ** 2).sum(), rtol=1e-4)
    torch.testing.assert_close(fft2c(img), k, rtol=1e-4, atol=1e-2)
    # RSS equals fastmri's rss of the complex absolute value
    ref = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(to_real(k))), dim=0)
    torch.testing.assert_close(rss(img), ref, rtol=1e-4, atol=1e-3)


def test_fft_rejects_real_input() -> None:
    with pytest.raises(TypeError, match="complex"):
        fft2c(torch.zeros(4, 4))
    with pytest.raises(TypeError, match="last axis"):
        to_complex(torch.zeros(4, 3))


def test_real_complex_round_trip_is_a_view() -> None:
    x = _crandn(2, 5, 6)
    r = to_real(x)
    assert r.shape == (2, 5, 6, 2)
    assert torch.equal(to_complex(r), x)
    r[0, 0, 0, 0] = 42.0  # a view: writes through
    assert x[0, 0, 0].real == 42.0


def test_sense_combine_recovers_image_with_normalized_maps() -> None:
    maps = _normalized_maps(6, 20, 24)
    image = _crandn(20, 24, seed=3)
    coil_images = sense_expand(image, maps)
    torch.testing.assert_close(sense_combine(coil_images, maps), image, rtol=1e-5, atol=1e-5)
    # and RSS equals |image| when sum |S|^2 = 1
    torch.testing.assert_close(rss(coil_images), image.abs(), rtol=1e-5, atol=1e-5)


def test_sense_combine_is_zero_outside_support() -> None:
    maps = _normalized_maps(4, 8, 8)
    maps[:, :2] = 0
    out = sense_combine(sense_expand(_crandn(8, 8), maps), maps)
    assert torch.count_nonzero(out[:2]) == 0
    with pytest.raises(ValueError, match="same shape"):
        sense_combine(_crandn(4, 8, 8), _crandn(3, 8, 8))


def test_coil_compression_is_lossless_for_low_rank_coils_and_preserves_rss_at_full_rank(
    brain_kspace: np.ndarray,
) -> None:
    k = torch.from_numpy(brain_kspace)
    # full rank: a per-pixel unitary transform keeps RSS exactly
    full = coil_compress(k, 8)
    torch.testing.assert_close(rss(ifft2c(full)), rss(ifft2c(k)), rtol=1e-4, atol=1e-2)
    # rank-3 coils (8 physical coils mixing 3 sources): compressing to 3 loses nothing
    mix = _crandn(8, 3, seed=5)
    low = torch.einsum("cv,vhw->chw", mix, k[:3])
    comp = coil_compress(low, 3)
    torch.testing.assert_close(rss(ifft2c(comp)), rss(ifft2c(low)), rtol=1e-4, atol=1e-2)
    # real data: 4 virtual coils keep most of the energy, more than any 4 physical coils
    four = coil_compress(k, 4)
    kept = (four.abs() ** 2).sum() / (k.abs() ** 2).sum()
    best_physical = (k.abs() ** 2).sum((1, 2)).sort(descending=True).values[:4].sum() / (k.abs() ** 2).sum()
    assert kept > best_physical
    assert kept > 0.9


def test_coil_compression_batched_and_errors(brain_kspace: np.ndarray) -> None:
    k = torch.from_numpy(brain_kspace)
    batch = torch.stack([k, 2 * k])
    out = coil_compress(batch, 5)
    assert out.shape == (2, 5, 230, 180)
    torch.testing.assert_close(out[1].abs(), 2 * coil_compress(k, 5).abs(), rtol=1e-4, atol=1e-2)
    with pytest.raises(ValueError, match="num_virtual"):
        coil_compress(k, 9)


def test_forward_adjoint_are_adjoint() -> None:
    maps = _crandn(2, 5, 16, 12, seed=7)
    mask = torch.rand(16, 12, generator=torch.Generator().manual_seed(0)) > 0.5
    x = _crandn(2, 16, 12, seed=8)
    y = _crandn(2, 5, 16, 12, seed=9)
    lhs = torch.vdot(forward_op(x, maps, mask).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), adjoint_op(y, maps, mask).flatten())
    torch.testing.assert_close(lhs, rhs, rtol=1e-4, atol=1e-4)
    # a [W] line mask broadcasts like the full [H, W] mask
    lines = mask[0]
    torch.testing.assert_close(forward_op(x, maps, lines), forward_op(x, maps, lines.expand(16, 12)))


def test_forward_matches_fastmri_sens_expand() -> None:
    maps = _normalized_maps(4, 16, 12)
    x = _crandn(16, 12, seed=2)
    ref = fastmri.fft2c(fastmri.complex_mul(to_real(x)[None], to_real(maps)))
    torch.testing.assert_close(to_real(forward_op(x, maps)), ref, rtol=1e-5, atol=1e-5)


def test_cg_matches_direct_solve_batched() -> None:
    g = torch.Generator().manual_seed(0)
    n = 12
    mats = []
    for i in range(3):
        a = torch.randn(n, n, dtype=torch.complex128, generator=g)
        mats.append(a.conj().T @ a + (i + 0.1) * torch.eye(n, dtype=torch.complex128))
    mat = torch.stack(mats)  # [3, n, n] Hermitian positive definite
    b = torch.randn(3, n, dtype=torch.complex128, generator=g)
    x, info = conjugate_gradient(
        lambda v: (mat @ v.unsqueeze(-1)).squeeze(-1), b, max_iter=200, tol=1e-12, system_ndim=1, return_info=True
    )
    torch.testing.assert_close(x, torch.linalg.solve(mat, b), rtol=1e-8, atol=1e-8)
    assert info.relative_residual.shape == (3,)
    assert bool((info.relative_residual < 1e-10).all())


def test_cg_sense_system_fully_sampled_recovers_image() -> None:
    maps = _normalized_maps(4, 16, 16)
    image = _crandn(16, 16, seed=4)
    op = MultiCoilOperator(maps, torch.ones(16, 16, dtype=torch.bool))
    x = conjugate_gradient(op.normal, op.adjoint(op(image)), max_iter=5)
    torch.testing.assert_close(x, image, rtol=1e-4, atol=1e-4)


def test_cg_is_differentiable_through_unrolled_iterations() -> None:
    maps = _normalized_maps(3, 8, 8)
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:, ::2] = True
    op = MultiCoilOperator(maps, mask)
    lam = torch.tensor(0.5, requires_grad=True)
    b = _crandn(8, 8, seed=11)
    x = conjugate_gradient(lambda v: op.normal(v) + lam * v, b, max_iter=4)
    x.abs().sum().backward()
    assert lam.grad is not None and torch.isfinite(lam.grad) and lam.grad != 0


def test_cg_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_iter"):
        conjugate_gradient(lambda v: v, torch.ones(3, 3), max_iter=-1)
    with pytest.raises(ValueError, match="system_ndim"):
        conjugate_gradient(lambda v: v, torch.ones(3, 3), system_ndim=3)
