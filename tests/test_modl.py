"""MoDL: architecture size, exact data consistency against a dense solve, gradients, any size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrizoo.errors import InputError
from mrizoo.models.modl import MODL_JALAL2021, MoDL, MoDLConfig, build_modl

TINY = MoDLConfig(num_unrolls=2, cg_iters=3, chans=8, num_blocks=3)


def _crandn(*shape: int, seed: int, dtype=torch.complex64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


def _problem(b: int, c: int, h: int, w: int, dtype=torch.complex64, seed: int = 0):
    maps = _crandn(b, c, h, w, seed=seed, dtype=dtype)
    maps = maps / torch.sqrt((maps.abs() ** 2).sum(1, keepdim=True))
    g = torch.Generator().manual_seed(seed + 1)
    mask = torch.rand(b, 1, w, generator=g) < 0.5
    mask[..., w // 2] = True
    mask = mask.expand(b, h, w)
    kspace = _crandn(b, c, h, w, seed=seed + 2, dtype=dtype) * mask.unsqueeze(1)
    return kspace, mask, maps


def _set_identity_denoiser(model: MoDL) -> None:
    """Zero the output block's residual branch and skip: then D(x) = x exactly."""
    last = model.denoiser.blocks[-1]
    with torch.no_grad():
        last.conv2.weight.zero_()
        last.skip.weight.zero_()


def _dense_forward(maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Dense ``A = M F S`` for one item, built from numpy's DFT (independent of mrizoo)."""
    c, h, w = maps.shape

    def cdft(n: int) -> np.ndarray:
        eye = np.eye(n)
        return np.fft.fftshift(np.fft.fft(np.fft.ifftshift(eye, axes=0), axis=0, norm="ortho"), axes=0)

    f2 = np.kron(cdft(h), cdft(w))  # row-major vectorised image
    m = np.diag(mask.reshape(-1).astype(float))
    return np.concatenate([m @ f2 @ np.diag(maps[i].reshape(-1)) for i in range(c)], axis=0)


def test_seed_configuration_parameter_count() -> None:
    """Jalal et al. 2021, appendix G.3: the MoDL backbone has about 220,000 parameters."""
    model = build_modl(MODL_JALAL2021)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 220_000) / 220_000 < 0.02, n
    assert MODL_JALAL2021.num_unrolls == 6 and MODL_JALAL2021.cg_iters == 6
    assert model.needs_maps


def test_identity_denoiser_gives_exact_regularised_least_squares() -> None:
    """D = I: every unroll is x <- (A^H A + lam I)^{-1} (A^H y + lam x), checked densely."""
    b, c, h, w = 2, 3, 6, 5
    kspace, mask, maps = _problem(b, c, h, w, dtype=torch.complex128, seed=3)
    cfg = MoDLConfig(num_unrolls=3, cg_iters=h * w + 10, chans=4, num_blocks=2, lam_init=0.3)
    model = MoDL(cfg).double()
    _set_identity_denoiser(model)
    with torch.no_grad():
        out = model(kspace, mask, maps).numpy()
    lam = float(model.lam.detach())
    assert lam == pytest.approx(0.3)
    for i in range(b):
        a = _dense_forward(maps[i].numpy(), mask[i].numpy())
        y = kspace[i].numpy().reshape(-1)
        ahy = a.conj().T @ y
        x = ahy
        system = a.conj().T @ a + lam * np.eye(h * w)
        for _ in range(cfg.num_unrolls):
            x = np.linalg.solve(system, ahy + lam * x)
        np.testing.assert_allclose(out[i].reshape(-1), x, rtol=1e-8, atol=1e-9)


def test_identity_denoiser_with_few_cg_steps_is_not_exact() -> None:
    """The dense comparison above is sensitive: 1 CG step per unroll visibly misses it."""
    kspace, mask, maps = _problem(1, 3, 6, 5, dtype=torch.complex128, seed=3)
    model = MoDL(MoDLConfig(num_unrolls=1, cg_iters=1, chans=4, num_blocks=2, lam_init=0.3)).double()
    _set_identity_denoiser(model)
    a = _dense_forward(maps[0].numpy(), mask[0].numpy())
    ahy = a.conj().T @ kspace[0].numpy().reshape(-1)
    exact = np.linalg.solve(a.conj().T @ a + 0.3 * np.eye(30), 1.3 * ahy)
    with torch.no_grad():
        out = model(kspace, mask, maps)[0].numpy().reshape(-1)
    assert np.linalg.norm(out - exact) > 1e-3 * np.linalg.norm(exact)


@pytest.mark.parametrize("shape", [(1, 4, 32, 24), (2, 3, 33, 23)])
def test_forward_backward_reaches_lam_and_cnn(shape: tuple[int, int, int, int]) -> None:
    torch.manual_seed(0)
    kspace, mask, maps = _problem(*shape, seed=5)
    model = build_modl(TINY)
    out = model(kspace, mask, maps)
    assert out.shape == (shape[0], shape[2], shape[3]) and out.is_complex()
    out.abs().pow(2).mean().backward()
    assert model.lam_raw.grad is not None and model.lam_raw.grad.abs() > 0
    for name, p in model.denoiser.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_reconstruct_magnitude_and_scale_equivariance() -> None:
    """No biases, no batch norm: scaling the k-space scales the reconstruction."""
    torch.manual_seed(0)
    kspace, mask, maps = _problem(2, 4, 32, 24, seed=7)
    model = build_modl(TINY).eval()
    with torch.no_grad():
        out = model.reconstruct(kspace, mask[0], maps)
        scaled = model.reconstruct(kspace * 1e-6, mask[0], maps)
    assert out.shape == (2, 32, 24) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.abs().sum() > 0
    torch.testing.assert_close(scaled * 1e6, out, rtol=1e-4, atol=1e-4 * float(out.abs().max()))


def test_reconstruct_estimates_maps_when_missing() -> None:
    """Without maps the model estimates ESPIRiT maps from the calibration region."""
    torch.manual_seed(0)
    h, w = 32, 28
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    img = ((xx**2 / 0.6 + yy**2 / 0.8) < 1).to(torch.complex64)
    coils = torch.stack([torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2)) for cx, cy in
                         [(-1, -1), (1, -1), (-1, 1), (1, 1)]]).to(torch.complex64)
    from mrizoo.physics import fft2c

    full = fft2c(coils * img)[None]
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[:, ::2] = True
    mask[:, w // 2 - 12 : w // 2 + 12] = True
    model = build_modl(TINY).eval()
    with torch.no_grad():
        out = model.reconstruct(full * mask, mask)
    assert out.shape == (1, h, w) and torch.isfinite(out).all() and out.max() > 0


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(InputError, match="num_blocks"):
        MoDLConfig(num_blocks=1)
    with pytest.raises(InputError, match="lam_init"):
        MoDLConfig(lam_init=0.0)
    with pytest.raises(InputError, match="kernel_size"):
        MoDLConfig(kernel_size=4)
    kspace, mask, maps = _problem(1, 2, 16, 12, seed=0)
    model = build_modl(TINY)
    with pytest.raises(InputError, match="mask"):
        model.reconstruct(kspace, mask[:, :8], maps)
    with pytest.raises(InputError, match="maps"):
        model.reconstruct(kspace, mask, maps[:, :1])
