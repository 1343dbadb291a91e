"""ESPIRiT maps: against sigpy on the real brain slice, and against known simulated maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mrizoo.errors import InputError
from mrizoo.physics.coils import sense_combine
from mrizoo.physics.espirit import EspiritConfig, espirit_maps
from mrizoo.physics.fft import fft2c, ifft2c

# sigpy's defaults, also the settings asked of the oracle below.
SIGPY_ARGS = dict(calib_width=24, thresh=0.02, kernel_width=6, crop=0.95)


def _sigpy_maps(kspace: np.ndarray, **kwargs: float) -> torch.Tensor:
    app = pytest.importorskip("sigpy.mri.app", reason="sigpy is the reference ESPIRiT")
    return torch.from_numpy(app.EspiritCalib(kspace, show_pbar=False, **kwargs).run())


@pytest.fixture(scope="module")
def sigpy_brain_maps(brain_kspace: np.ndarray) -> torch.Tensor:
    return _sigpy_maps(brain_kspace, **SIGPY_ARGS)


def _support(maps: torch.Tensor) -> torch.Tensor:
    return maps.abs().pow(2).sum(-3) > 0.5


def _assert_matches_reference(
    ours: torch.Tensor, ref: torch.Tensor, kspace: torch.Tensor
) -> None:
    """Phase-invariant agreement of two sets of maps (tolerances ~100x the measured error)."""
    assert ours.shape == ref.shape and ours.dtype == torch.complex64
    keep, keep_ref = _support(ours), _support(ref)
    assert keep_ref.float().mean() > 0.3  # the oracle kept the head, so the comparison means something
    mismatch = (keep ^ keep_ref).float().mean().item()
    assert mismatch <= 1e-3, f"support masks differ on {mismatch:.2%} of pixels"
    both = keep & keep_ref
    overlap = (ours.conj() * ref).sum(-3).abs()[both]
    assert overlap.min() > 0.9999, f"min |<S, S_ref>| = {overlap.min():.6f}"
    # Kept maps have unit norm per pixel, cropped ones are exactly zero.
    norm = ours.abs().pow(2).sum(-3)
    torch.testing.assert_close(norm[keep], torch.ones_like(norm[keep]), atol=1e-4, rtol=0)
    assert torch.all(ours.abs().sum(-3)[~keep] == 0)
    # SENSE-combined images agree in magnitude.
    coils = ifft2c(kspace)
    a, b = sense_combine(coils, ours).abs(), sense_combine(coils, ref).abs()
    assert ((a - b).norm() / b.norm()).item() < 1e-5
    # Same phase convention (relative to coil 0) as the reference, so the maps agree as they are.
    assert ((ours - ref).norm() / ref.norm()).item() < 1e-4


@pytest.mark.parametrize("solver", ["auto", "power"])
def test_matches_sigpy_on_real_brain(brain_kspace, sigpy_brain_maps, solver):
    kspace = torch.from_numpy(brain_kspace)
    maps = espirit_maps(kspace, solver=solver)
    _assert_matches_reference(maps, sigpy_brain_maps, kspace)


def test_matches_sigpy_odd_sizes_and_other_settings(brain_kspace):
    # Odd image sides and an odd kernel exercise the centring conventions.
    kspace = np.ascontiguousarray(brain_kspace[:, 1:, :-1])
    ref = _sigpy_maps(kspace, calib_width=20, thresh=0.05, kernel_width=5, crop=0.7)
    maps = espirit_maps(
        torch.from_numpy(kspace), calib_width=20, kernel_width=5, threshold=0.05, crop=0.7
    )
    _assert_matches_reference(maps, ref, torch.from_numpy(kspace))


def _phantom_coils(h: int, w: int, coils: int = 8, seed: int = 0):
    """Smooth coil maps with ``sum |S|^2 = 1``, a Shepp-Logan object with smooth phase, its mask."""
    skd = pytest.importorskip("skimage.data")
    skt = pytest.importorskip("skimage.transform")
    phantom = skt.resize(skd.shepp_logan_phantom(), (h, w), anti_aliasing=True)
    obj = torch.from_numpy(phantom).float()
    y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    image = obj * torch.exp(1j * (0.8 * x - 0.5 * y + 0.3 * x * y + seed))
    maps = []
    for i in range(coils):
        a = 2 * math.pi * i / coils + 0.3 * seed
        mag = torch.exp(-((y - 1.3 * math.sin(a)) ** 2 + (x - 1.3 * math.cos(a)) ** 2) / 1.5)
        maps.append(mag * torch.exp(1j * (a + 0.7 * math.cos(a) * y + 0.7 * math.sin(a) * x)))
    maps_t = torch.stack(maps)
    maps_t = (maps_t / maps_t.abs().pow(2).sum(0).sqrt()).to(torch.complex64)
    return maps_t, image.to(torch.complex64), obj > 0.05 * obj.max()


@pytest.mark.parametrize("shape", [(128, 112), (127, 101)])
def test_recovers_known_maps(shape):
    true, image, inside = _phantom_coils(*shape)
    maps = espirit_maps(fft2c(true * image))
    keep = _support(maps)
    assert torch.all(keep[inside]), "maps cropped inside the object"
    overlap = (maps.conj() * true).sum(0).abs()[inside]
    # Measured: min 0.9992, mean 1 - 1.6e-5.
    assert overlap.min() > 0.995
    assert (1 - overlap).mean() < 2e-4


def test_phase_is_relative_to_first_coil():
    true, image, _ = _phantom_coils(96, 80)
    maps = espirit_maps(fft2c(true * image))
    first = maps[0][_support(maps)]
    assert first.imag.abs().max() < 1e-5 and first.real.min() >= 0


def test_batched_equals_per_item():
    items = [fft2c(t * im) for t, im, _ in (_phantom_coils(64, 56, seed=s) for s in range(4))]
    items[1] = items[1] * 30.0  # scale must not matter
    batch = torch.stack(items).reshape(2, 2, 8, 64, 56)
    maps = espirit_maps(batch, calib_width=16, kernel_width=5)
    assert maps.shape == batch.shape and maps.dtype == torch.complex64
    flat = maps.reshape(4, 8, 64, 56)
    for i, item in enumerate(items):
        single = espirit_maps(item, calib_width=16, kernel_width=5)
        torch.testing.assert_close(flat[i], single, atol=1e-5, rtol=0)


def test_config_and_overrides_agree_and_dtype():
    true, image, _ = _phantom_coils(64, 64)
    ksp = fft2c(true * image)
    a = espirit_maps(ksp.to(torch.complex128), EspiritConfig(calib_width=16, crop=0.8))
    b = espirit_maps(ksp, calib_width=16, crop=0.8)
    assert a.dtype == torch.complex64
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="unknown"):
        espirit_maps(ksp, calib=16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("solver", ["eigh", "power"])
def test_cuda_matches_cpu(solver):
    true, image, _ = _phantom_coils(128, 112)
    ksp = fft2c(true * image)
    cpu = espirit_maps(ksp, solver=solver)
    gpu = espirit_maps(ksp.cuda(), solver=solver)
    assert gpu.device.type == "cuda" and gpu.dtype == torch.complex64
    keep = _support(cpu) & _support(gpu.cpu())
    assert (_support(cpu) ^ _support(gpu.cpu())).float().mean() < 1e-3
    assert (cpu.conj() * gpu.cpu()).sum(0).abs()[keep].min() > 0.9999


_K = torch.zeros(8, 32, 32, dtype=torch.complex64)


@pytest.mark.parametrize(
    ("kspace", "kwargs", "match"),
    [
        (_K.real, {}, "complex"),
        (_K[0], {}, r"\[\.\.\., C, H, W\]"),
        (_K, {"calib_width": 40}, "larger than the image"),
        (_K, {"calib_width": 8, "kernel_width": 10}, "wider than the calibration"),
        (_K, {"kernel_width": 0}, "positive"),
        (_K, {"calib_width": -4}, "positive"),
        (_K, {"threshold": 0.0}, "threshold"),
        (_K, {"threshold": float("nan")}, "finite"),
        (_K, {"crop": 1.5}, "crop"),
        (_K, {"max_iter": 0}, "positive"),
        (_K, {"solver": "qr"}, "solver"),
        (torch.full((8, 32, 32), complex("nan+0j")), {}, "NaN or Inf"),
        (torch.full((8, 32, 32), complex("inf+0j")), {}, "NaN or Inf"),
        (torch.zeros(0, 32, 32, dtype=torch.complex64), {}, "empty"),
        (_K, {"calib_width": 16}, "all zero"),
    ],
)
def test_bad_input_raises(kspace, kwargs, match):
    with pytest.raises(InputError, match=match):
        espirit_maps(kspace, **kwargs)


def test_non_tensor_input_is_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        espirit_maps(np.zeros((8, 32, 32), dtype=np.complex64))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="EspiritConfig"):
        espirit_maps(_K, config={"calib_width": 16})  # type: ignore[arg-type]


def _equispaced_columns(w: int, acs: int, step: int = 4) -> torch.Tensor:
    cols = torch.zeros(w, dtype=torch.bool)
    cols[::step] = True
    cols[w // 2 - acs // 2 : w // 2 - acs // 2 + acs] = True
    return cols


def test_fit_to_acs_calibrates_only_on_sampled_lines(brain_kspace):
    """A 4x mask keeps 14 central columns, fewer than calib_width 24: the block must shrink.

    Reference: maps calibrated on the fully sampled data restricted to the same 14 central
    columns (everything else zeroed), which is what the undersampled data can know.
    """
    k = torch.from_numpy(brain_kspace)
    cols = _equispaced_columns(k.shape[-1], 14)
    under = k * cols
    acs_only = torch.zeros_like(k)
    sl = slice(k.shape[-1] // 2 - 7, k.shape[-1] // 2 + 7)
    acs_only[..., sl] = k[..., sl]
    ref = espirit_maps(acs_only, calib_width=24)  # rows 24, columns shrink to the 14 ACS lines
    fitted = espirit_maps(under)
    naive = espirit_maps(under, fit_to_acs=False)
    both = (ref.abs().sum(0) > 0) & (fitted.abs().sum(0) > 0)
    overlap = (ref.conj() * fitted).sum(0).abs()[both]
    assert float(overlap.min()) > 0.9999
    assert torch.equal(ref.abs().sum(0) > 0, fitted.abs().sum(0) > 0)
    # calibrating on zero-filled columns gives different maps and a different support
    # (measured: min overlap 0.87, 1% quantile 0.96; support 34158 vs 28388 pixels)
    naive_both = (ref.abs().sum(0) > 0) & (naive.abs().sum(0) > 0)
    assert float((ref.conj() * naive).sum(0).abs()[naive_both].min()) < 0.95
    assert not torch.equal(ref.abs().sum(0) > 0, naive.abs().sum(0) > 0)


def test_fit_to_acs_changes_nothing_when_fully_sampled(brain_kspace):
    k = torch.from_numpy(brain_kspace)
    torch.testing.assert_close(espirit_maps(k), espirit_maps(k, fit_to_acs=False))


def test_acs_narrower_than_kernel_is_a_clear_error(brain_kspace):
    k = torch.from_numpy(brain_kspace)
    under = k * _equispaced_columns(k.shape[-1], 4)
    with pytest.raises(InputError, match="ACS"):
        espirit_maps(under)
