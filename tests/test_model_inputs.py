"""Every model and classical baseline: the same input checks, every mask layout, 2D masks.

Runs each zoo architecture (small configurations) and the classical reconstructions on the
real 8-coil brain scan (k-space cropped centrally to 64 x 48 to keep the tests fast) with a
fastMRI column mask ``[W]``, a variable-density Poisson-disc mask ``[H, W]`` and a 2D
calibration-block mask (every other column plus a fully sampled centre block), and checks
that bad input is refused with :class:`InputError` before any work.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from mrizoo.classical import CGSenseConfig, L1WaveletConfig, cg_sense, l1_wavelet, zero_filled
from mrizoo.data import read_cfl
from mrizoo.data.convert import bart_to_kspace
from mrizoo.errors import InputError
from mrizoo.masks import create_mask
from mrizoo.models.base import ReconModel, check_inputs
from mrizoo.models.classical import CGSenseRecon, L1WaveletRecon, ZeroFilledConfig, ZeroFilledRecon
from mrizoo.models.langevin import LangevinConfig, ScorePosterior
from mrizoo.models.modl import MoDL, MoDLConfig
from mrizoo.models.ncsnv2 import NCSNv2, NCSNv2Config
from mrizoo.models.rcgan import RCGAN, RCGANConfig
from mrizoo.models.unet import UnetConfig, build_unet
from mrizoo.models.varnet import VarNet, VarNetConfig
from mrizoo.models.vit import ViTConfig, ViTRecon
from mrizoo.physics.espirit import central_block, espirit_maps

BRAIN = Path(__file__).resolve().parent / "data" / "realdata" / "brain_t1_8ch_full.cfl"  # shipped with the tests
H, W = 64, 48


@pytest.fixture(scope="module")
def brain() -> torch.Tensor:
    """The real brain slice's k-space, cropped centrally to ``[1, 8, 64, 48]``."""
    k = torch.from_numpy(bart_to_kspace(read_cfl(BRAIN)))  # [1, 8, 230, 180]
    top, left = (k.shape[-2] - H) // 2, (k.shape[-1] - W) // 2
    return k[..., top : top + H, left : left + W].contiguous()


def _columns() -> torch.Tensor:
    return create_mask("equispaced_fraction", (H, W), seed=0, acceleration=4, center_fraction=0.16).lines


def _poisson() -> torch.Tensor:
    return create_mask("poisson2d", (H, W), seed=0, acceleration=4, calib=12).mask


def _calib_block() -> torch.Tensor:
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[:, ::2] = True
    mask[H // 2 - 8 : H // 2 + 8, W // 2 - 8 : W // 2 + 8] = True
    return mask


MASKS: dict[str, Callable[[], torch.Tensor]] = {"columns": _columns, "poisson": _poisson, "calib_block": _calib_block}


def _models() -> dict[str, Callable[[], ReconModel]]:
    torch.manual_seed(0)
    return {
        "unet": lambda: build_unet(UnetConfig(chans=4, num_pool_layers=2)),
        "vit": lambda: ViTRecon(ViTConfig(patch_size=8, embed_dim=24, depth=1, num_heads=3, avg_image_size=48)),
        "varnet": lambda: VarNet(VarNetConfig(num_cascades=2, sens_chans=4, sens_pools=2, chans=4, pools=2)),
        "modl": lambda: MoDL(MoDLConfig(num_unrolls=2, cg_iters=3, chans=8, num_blocks=3)),
        "rcgan": lambda: RCGAN(RCGANConfig(chans=4, depth=2, disc_input_size=None, reconstruct_samples=2)),
        "langevin": lambda: ScorePosterior(
            NCSNv2(NCSNv2Config(ngf=4, num_classes=3, sigma_begin=1.0, sigma_end=0.1, variant="base")),
            LangevinConfig(steps_per_level=1, seed=3, reconstruct_samples=2)),
        "zerofilled": lambda: ZeroFilledRecon(),
        "zerofilled_sense": lambda: ZeroFilledRecon(ZeroFilledConfig(combine="sense")),
        "cgsense": lambda: CGSenseRecon(CGSenseConfig(max_iter=5)),
        "l1wavelet": lambda: L1WaveletRecon(L1WaveletConfig(max_iter=5, levels=2)),
    }


MODELS = _models()


def _build(name: str) -> ReconModel:
    torch.manual_seed(0)
    return MODELS[name]().eval()


def _run(model: ReconModel, kspace: torch.Tensor, mask: object) -> torch.Tensor:
    with torch.no_grad():
        if isinstance(model, RCGAN):
            return model.reconstruct(kspace, mask, generator=torch.Generator().manual_seed(1))
        return model.reconstruct(kspace, mask)


# ----------------------------------------------------------------------------- masks


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_reconstructs_real_scan_with_every_mask(brain: torch.Tensor, name: str, mask_name: str) -> None:
    """Finite output of the input's size; full and pre-masked k-space give the same image."""
    mask = MASKS[mask_name]()
    full2d = mask.expand(H, W) if mask.ndim == 1 else mask
    model = _build(name)
    out = _run(model, brain, mask)
    assert out.shape == (1, H, W) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.abs().amax() > 0
    # nothing unmeasured is used (the ESPIRiT maps included): the unmasked k-space gives the same
    measured = brain * full2d
    torch.testing.assert_close(_run(model, measured, mask), out, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(MODELS))
def test_column_mask_layouts_give_identical_results(brain: torch.Tensor, name: str) -> None:
    """fastMRI's ``(W,)`` mask (bool, float32 0/1, numpy, ``[1, 1, W, 1]``) equals the ``[H, W]`` mask."""
    lines = _columns()
    model = _build(name)
    ref = _run(model, brain, lines.expand(H, W).clone())
    for layout in (lines, lines.float(), lines.numpy().astype(np.float32), lines.int().view(1, 1, W, 1),
                   lines.view(1, 1, 1, W, 1), lines.view(1, W), lines[None].expand(H, W)[None]):
        torch.testing.assert_close(_run(model, brain, layout), ref, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["varnet", "modl", "zerofilled", "rcgan"])
def test_batched_column_masks_per_item(brain: torch.Tensor, name: str) -> None:
    """``[B, W]`` and fastMRI's ``[B, 1, 1, W, 1]`` hold one column mask per item."""
    a, b = _columns(), _columns().roll(1)
    b[W // 2 - 4 : W // 2 + 4] = True
    kspace = torch.cat([brain, 2 * brain])
    model = _build(name)
    ref = _run(model, kspace, torch.stack([a.expand(H, W), b.expand(H, W)]))
    torch.testing.assert_close(_run(model, kspace, torch.stack([a, b])), ref, rtol=0, atol=0)
    torch.testing.assert_close(_run(model, kspace, torch.stack([a, b]).view(2, 1, 1, W, 1).float()), ref,
                               rtol=0, atol=0)


@pytest.mark.parametrize("mask_name", ["poisson", "calib_block"])
def test_rcgan_keeps_the_measured_samples(brain: torch.Tensor, mask_name: str) -> None:
    """rcGAN's hard data consistency returns the measured samples exactly, for 2D masks too."""
    mask = MASKS[mask_name]()
    model = _build("rcgan")
    k = model.sample_kspace(brain, mask, n=2, generator=torch.Generator().manual_seed(0))
    assert k.shape == (2, *brain.shape)
    m = mask.expand(2, 1, 8, H, W)
    torch.testing.assert_close(k[m], brain.expand(2, -1, -1, -1, -1)[m], rtol=0, atol=0)
    assert (k[~m] != 0).float().mean() > 0.9  # the unmeasured samples are filled in


@pytest.mark.parametrize("mask_name", ["poisson", "calib_block"])
def test_varnet_soft_data_consistency_uses_only_the_measured_set(brain: torch.Tensor, mask_name: str) -> None:
    """Without cascades VarNet's output is the RSS of the measured data (nothing zeroed or added)."""
    mask = MASKS[mask_name]()
    model = VarNet(VarNetConfig(num_cascades=0, sens_chans=4, sens_pools=2)).eval()
    with torch.no_grad():
        out = model.reconstruct(brain, mask)
    torch.testing.assert_close(out, zero_filled(brain, mask).float(), rtol=1e-4, atol=1e-6 * float(out.max()))


@pytest.mark.parametrize("mask_name", list(MASKS))
def test_calibration_region_of_2d_masks(mask_name: str) -> None:
    """ESPIRiT and VarNet's sensitivity network both calibrate on the fully sampled centre block."""
    mask = MASKS[mask_name]()
    full2d = mask.expand(H, W) if mask.ndim == 1 else mask
    rows, cols = central_block(full2d)
    assert bool(full2d[rows, cols].all())
    assert rows.stop - rows.start >= 12 and cols.stop - cols.start >= 8
    if mask_name == "calib_block":  # the 16 x 16 block (plus a neighbouring sampled column)
        assert (rows.start, rows.stop) == (H // 2 - 8, H // 2 + 8)
        assert cols.start <= W // 2 - 8 and cols.stop >= W // 2 + 8
    region = VarNet(VarNetConfig(num_cascades=0, sens_chans=4, sens_pools=2)).sens_net.center_mask(full2d[None])
    assert bool(full2d[region[0, 0]].all())  # only measured samples reach the maps
    assert int(region.sum()) >= 8 * 8


def test_espirit_from_a_poisson_mask_matches_the_column_mask_maps(brain: torch.Tensor) -> None:
    """ESPIRiT finds the 2D calibration block of a Poisson mask (the whole block, not one line)."""
    mask = _poisson()
    maps = espirit_maps(brain * mask)
    ref = espirit_maps(brain * _calib_block())
    inside = (maps.abs().sum(1) > 0) & (ref.abs().sum(1) > 0)
    assert inside.float().mean() > 0.3
    corr = (maps.conj() * ref).sum(1).abs()[inside]
    assert float(corr.mean()) > 0.9


# ----------------------------------------------------------------------------- bad input

def _nan_kspace(k: torch.Tensor, how: str) -> torch.Tensor:
    out = k.clone()
    if how == "all_zero":
        return torch.zeros_like(k)
    out[0, 1, 5, 7] = complex("nan") if how == "nan" else complex("inf")
    return out


@pytest.mark.parametrize("how", ["nan", "inf", "all_zero"])
@pytest.mark.parametrize("name", list(MODELS))
def test_bad_kspace_is_refused(brain: torch.Tensor, name: str, how: str) -> None:
    model = _build(name)
    bad = _nan_kspace(brain, how)
    message = "k-space is all zeros" if how == "all_zero" else r"k-space holds non-finite values \(NaN or Inf\)"
    with pytest.raises(InputError, match=message):
        model.reconstruct(bad, _columns())
    if model.is_posterior:
        with pytest.raises(InputError, match=message):
            model.sample(bad, _poisson(), n=2)


@pytest.mark.parametrize("name", list(MODELS))
def test_bad_masks_are_refused(brain: torch.Tensor, name: str) -> None:
    model = _build(name)
    cases = [
        (torch.zeros(W, dtype=torch.bool), "mask samples nothing"),
        (torch.zeros(H, W), "mask samples nothing"),
        (_columns().float() * 0.5, r"mask values must be 0 or 1 \(got values \[0.5\]\)"),
        (_poisson().int() * 2, r"mask values must be 0 or 1 \(got values \[2.0\]\)"),
        (torch.full((W,), float("nan")), "mask values must be 0 or 1"),
        (_columns().to(torch.complex64), "mask must be real 0/1 values"),
        (torch.ones(W + 1, dtype=torch.bool), "mask does not fit the k-space"),
        (torch.ones(3, H, W, dtype=torch.bool), "mask does not fit the k-space"),
        ("columns", "mask must be a tensor"),
        (None, "mask must be a tensor"),
    ]
    for mask, message in cases:
        with pytest.raises(InputError, match=message):
            model.reconstruct(brain, mask)
        if model.is_posterior:
            with pytest.raises(InputError, match=message):
                model.sample(brain, mask, n=2)


def test_mask_outside_the_data_is_refused(brain: torch.Tensor) -> None:
    """A mask that samples only locations where the k-space is zero gives no data at all."""
    kspace = brain * _calib_block()
    outside = ~_calib_block()
    for name in ("varnet", "modl", "zerofilled"):
        with pytest.raises(InputError, match="k-space is zero at every sampled location"):
            _build(name).reconstruct(kspace, outside)


def test_zero_one_int_and_float_masks_equal_bool(brain: torch.Tensor) -> None:
    mask = _poisson()
    model = _build("modl")
    ref = _run(model, brain, mask)
    for dtype in (torch.uint8, torch.int64, torch.float32, torch.float64):
        torch.testing.assert_close(_run(model, brain, mask.to(dtype)), ref, rtol=0, atol=0)


def test_bad_batch_items_are_named(brain: torch.Tensor) -> None:
    kspace = torch.cat([brain, torch.zeros_like(brain)])
    with pytest.raises(InputError, match=r"k-space is all zeros .*image 1 of 2"):
        check_inputs(kspace, _columns())
    mask = torch.stack([_poisson(), torch.zeros(H, W, dtype=torch.bool)])
    with pytest.raises(InputError, match="mask samples nothing"):
        check_inputs(torch.cat([brain, brain]), mask)


def test_bad_maps_and_kspace_layouts_are_refused(brain: torch.Tensor) -> None:
    maps = torch.ones_like(brain)
    maps[0, 0, 0, 0] = complex("nan")
    with pytest.raises(InputError, match="maps hold non-finite values"):
        _build("cgsense").reconstruct(brain, _columns(), maps)
    with pytest.raises(InputError, match="maps do not fit the k-space"):
        _build("modl").reconstruct(brain, _columns(), maps[:, :4])
    with pytest.raises(InputError, match=r"complex tensor \[B, C, H, W\]"):
        _build("varnet").reconstruct(brain[0], _columns())
    with pytest.raises(InputError, match=r"complex tensor \[B, C, H, W\]"):
        _build("unet").reconstruct(brain.abs(), _columns())


@pytest.mark.parametrize("how", ["nan", "all_zero"])
def test_classical_functions_check_their_inputs(brain: torch.Tensor, how: str) -> None:
    """``zero_filled``, ``cg_sense`` and ``l1_wavelet`` take k-space directly and check it too."""
    bad = _nan_kspace(brain, how)
    message = "k-space is all zeros" if how == "all_zero" else "non-finite values"
    for fn in (lambda k, m: zero_filled(k, m), lambda k, m: cg_sense(k, m),
               lambda k, m: l1_wavelet(k, m, config=L1WaveletConfig(max_iter=2, levels=2))):
        with pytest.raises(InputError, match=message):
            fn(bad, _columns())
        with pytest.raises(InputError, match="mask samples nothing"):
            fn(brain, torch.zeros(W))
        with pytest.raises(InputError, match="mask values must be 0 or 1"):
            fn(brain, _columns() * 3.0)


def test_classical_functions_take_every_mask_layout(brain: torch.Tensor) -> None:
    lines = _columns()
    for fn in (zero_filled, lambda k, m: cg_sense(k, m, config=CGSenseConfig(max_iter=3))):
        ref = fn(brain, lines.expand(H, W))
        for layout in (lines, lines.numpy().astype(np.float32), lines.view(1, 1, W, 1)):
            torch.testing.assert_close(fn(brain, layout), ref, rtol=0, atol=0)
        # maps are estimated from the measured samples only
        torch.testing.assert_close(fn(brain * lines, lines), ref, rtol=0, atol=0)
