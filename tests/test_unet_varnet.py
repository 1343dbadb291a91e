"""U-Net, NormUnet, E2E-VarNet and the fastMRI checkpoint converter.

Oracle: the ``fastmri`` reference package (same weights loaded both ways, same inputs), numpy
FFTs for the resolution trick, and fastMRI's own mask functions on the real brain k-space.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mrizoo.errors import InputError
from mrizoo.models.base import ReconModel
from mrizoo.models.fastmri_checkpoint import convert_fastmri_checkpoint
from mrizoo.models.image_wrapper import image_domain_reconstruct, standardize_pad, unpad_destandardize
from mrizoo.models.unet import (
    UNET_FASTMRI_LEADERBOARD,
    UNET_LIN2024_LARGE,
    UNET_LIN2024_SMALL,
    NormUnet,
    Unet,
    UnetConfig,
    UnetRecon,
    build_unet,
)
from mrizoo.models.varnet import (
    VARNET_FASTMRI_LEADERBOARD,
    VARNET_LIN2024_SMALL,
    VarNet,
    VarNetConfig,
    build_varnet,
    center_band,
)

SMALL_VARNET = VarNetConfig(num_cascades=2, sens_chans=4, sens_pools=2, chans=4, pools=2)


@pytest.fixture(scope="module")
def fm():
    """fastmri.models (the reference implementation)."""
    return pytest.importorskip("fastmri.models")


def _rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).abs().max() / ref.abs().max())


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _fastmri_varnet(fm, cfg: VarNetConfig):
    return fm.VarNet(cfg.num_cascades, cfg.sens_chans, cfg.sens_pools, cfg.chans, cfg.pools, cfg.mask_center)


def _pair_varnets(fm, cfg: VarNetConfig = SMALL_VARNET, seed: int = 0):
    torch.manual_seed(seed)
    ref = _fastmri_varnet(fm, cfg).eval()
    with torch.no_grad():  # move dc weights away from their initial value 1
        for block in ref.cascades:
            block.dc_weight.uniform_(0.2, 2.0)
    ours = VarNet(cfg).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


@pytest.fixture(scope="module")
def brain_batch(brain_kspace: np.ndarray):
    """Real brain k-space (4 of its 8 coils, to keep the tests fast), batch of two, undersampled
    with fastMRI's equispaced and random masks."""
    pytest.importorskip("fastmri")
    from fastmri.data.subsample import EquiSpacedMaskFunc, RandomMaskFunc

    k = torch.view_as_real(torch.from_numpy(brain_kspace[:4]))  # [C, H, W, 2]
    k = k / k.abs().max()
    masks, lows = [], []
    for func, seed in ((EquiSpacedMaskFunc([0.08], [4]), 3), (RandomMaskFunc([0.06], [6]), 5)):
        m, low = func(k.shape, seed=seed)  # [1, 1, W, 1] float
        masks.append(m[None].bool())
        lows.append(low)
    mask = torch.cat(masks)  # [2, 1, 1, W, 1]
    masked = torch.stack([k, k]) * mask
    return masked, mask, lows


# --------------------------------------------------------------------------- U-Net


def test_unet_matches_fastmri_both_ways_on_odd_sizes(fm):
    torch.manual_seed(0)
    ref = fm.Unet(in_chans=2, out_chans=3, chans=8, num_pool_layers=3).eval()
    ours = Unet(UnetConfig(in_chans=2, out_chans=3, chans=8, num_pool_layers=3)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 2, 37, 29)
    with torch.no_grad():
        assert _rel_err(ours(x), ref(x)) <= 1e-5
        torch.manual_seed(1)
        ours2 = Unet(UnetConfig(in_chans=2, out_chans=3, chans=8, num_pool_layers=3)).eval()
        ref.load_state_dict(ours2.state_dict(), strict=True)
        assert _rel_err(ours2(x), ref(x)) <= 1e-5


def test_unet_inference_path_matches_training_path_and_fastmri(fm):
    """Inference (eval, no grad, CPU, even sizes) takes the fused channels-last pass; it gives the
    training-path output and fastMRI's, and is as close to a float64 oracle as fastMRI is."""
    from mrizoo.models.unet import _use_fast_path

    torch.manual_seed(0)
    ours = Unet(UnetConfig(in_chans=2, out_chans=2, chans=8, num_pool_layers=3)).eval()
    ref = fm.Unet(2, 2, 8, 3).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(3, 2, 48, 40) * 2.0 + 0.5
    assert not _use_fast_path(ours, x)  # gradients on: the module-by-module path
    plain = ours(x).detach()
    oracle = ref.double()(x.double()).float()
    ref.float()
    with torch.no_grad():
        assert _use_fast_path(ours, x) and not _use_fast_path(ours, x[..., :47, :])  # odd: plain path
        fast = ours(x)
        fast64 = Unet(ours.config).eval().double()
        fast64.load_state_dict(ours.state_dict())
        assert _rel_err(fast64(x.double()).float(), oracle) <= 1e-12 + 1e-6
        assert _rel_err(fast, ref(x)) <= 1e-5 and _rel_err(fast, plain) <= 1e-5
        assert _rel_err(fast, oracle) <= max(3 * _rel_err(ref(x), oracle), 1e-6)
        # deep layers keep a pre-packed weight; new weights (same storage) must be seen
        from mrizoo.models.unet import _PACKED

        assert any(m in _PACKED for m in ours.modules())
        copy.deepcopy(ours)  # the packed weights live outside the model
        torch.manual_seed(5)
        ours.load_state_dict(Unet(ours.config).state_dict())
        ref.load_state_dict(ours.state_dict())
        assert _rel_err(ours(x), ref(x)) <= 1e-5
    ours.train()
    with torch.no_grad():
        assert not _use_fast_path(ours, x)  # dropout / batch statistics: never the fused pass


def test_unet_state_dict_keys_are_fastmri_keys(fm):
    with torch.device("meta"):
        ours = Unet(UnetConfig(chans=8)).state_dict()
        ref = fm.Unet(1, 1, 8, 4).state_dict()
    assert len(ours) == 24
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    assert "up_conv.3.1.bias" in ours and "up_transpose_conv.0.layers.0.weight" in ours


def test_normunet_matches_fastmri(fm):
    torch.manual_seed(0)
    ref = fm.NormUnet(chans=4, num_pools=2).eval()
    ours = NormUnet(chans=4, num_pools=2).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(3, 1, 33, 27, 2) * torch.tensor([2.0, 0.5]) + torch.tensor([1.0, -3.0])
    with torch.no_grad():
        assert _rel_err(ours(x), ref(x)) <= 1e-5


def test_unet_parameter_counts_of_presets(fm):
    with torch.device("meta"):
        small, large, board = (Unet(c) for c in (UNET_LIN2024_SMALL, UNET_LIN2024_LARGE, UNET_FASTMRI_LEADERBOARD))
        ref_board = fm.Unet(1, 1, 256, 4)
    assert _n_params(board) == _n_params(ref_board) == 496_372_225
    assert abs(_n_params(small) - 7.8e6) / 7.8e6 < 0.02
    assert abs(_n_params(large) - 124e6) / 124e6 < 0.02


def test_unet_forward_backward_odd_size():
    torch.manual_seed(0)
    model = Unet(UnetConfig(chans=4, num_pool_layers=2, drop_prob=0.1)).train()
    x = torch.randn(2, 1, 19, 23)
    out = model(x)
    assert out.shape == x.shape
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_standardize_pad_roundtrip_and_statistics():
    torch.manual_seed(0)
    image = torch.rand(3, 1, 37, 50) * torch.tensor([1.0, 5.0, 0.01]).view(3, 1, 1, 1)
    x, state = standardize_pad(image, 16)
    assert x.shape == (3, 1, 48, 64)
    inner = x[..., state.pad_h[0] : state.pad_h[0] + 37, state.pad_w[0] : state.pad_w[0] + 50]
    assert torch.allclose(inner.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(inner.std(dim=(1, 2, 3)), torch.ones(3), atol=1e-4)
    assert float(x[..., : state.pad_h[0], :].abs().max()) == 0.0  # padding is zero
    back = unpad_destandardize(x, state)
    assert torch.allclose(back, image, rtol=1e-5, atol=1e-6 * float(image.abs().max()))


def test_unet_recon_matches_fastmri_unet_pipeline(fm, brain_kspace):
    """reconstruct == fastMRI's U-Net input/output handling (RSS, instance norm, clamp 6) + zero padding."""
    import fastmri
    from fastmri.data import transforms as T

    torch.manual_seed(0)
    k = torch.from_numpy(brain_kspace)[None]  # [1, 8, 230, 180]
    mask = torch.zeros(230, 180, dtype=torch.bool)
    mask[:, ::4] = True
    mask[:, 83:97] = True
    model = UnetRecon(UnetConfig(chans=4, num_pool_layers=3), clamp=6.0).eval()
    ref = fm.Unet(1, 1, 4, 3).eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        ours = model.reconstruct(k, mask)
        masked = torch.view_as_real(k * mask)
        image = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(masked)), dim=1)  # [1, H, W]
        image, mean, std = T.normalize_instance(image, eps=1e-11)
        image = image.clamp(-6, 6)
        padder = fm.NormUnet(4, 3)
        x, pad_sizes = padder.pad(image[None])
        expected = padder.unpad(ref(x), *pad_sizes)[:, 0] * std + mean
    assert ours.shape == (1, 230, 180) and ours.dtype == torch.float32
    assert _rel_err(ours, expected) <= 1e-5


def test_unet_recon_forward_backward_and_interface():
    torch.manual_seed(0)
    model = build_unet(UnetConfig(chans=4, num_pool_layers=2))
    assert isinstance(model, ReconModel) and isinstance(model, Unet)
    k = torch.randn(1, 4, 32, 24, dtype=torch.complex64)
    mask = torch.zeros(32, 24, dtype=torch.bool)
    mask[:, ::2] = True
    out = model.reconstruct(k, mask)
    assert out.shape == (1, 32, 24)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(InputError, match="in_chans/out_chans"):
        UnetRecon(UnetConfig(in_chans=2))
    with pytest.raises(InputError, match="chans"):
        UnetConfig(chans=0)


def test_image_domain_reconstruct_with_identity_is_zero_filled_rss(brain_kspace):
    """Standardize -> identity -> de-standardize returns the zero-filled RSS (numpy oracle)."""
    k = torch.from_numpy(brain_kspace)[None]
    mask = torch.zeros(230, 180, dtype=torch.bool)
    mask[:, ::3] = True
    out = image_domain_reconstruct(lambda x: x, k, mask)
    coil = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(brain_kspace * mask.numpy(), axes=(-2, -1)),
                                        norm="ortho"), axes=(-2, -1))
    expected = np.sqrt((np.abs(coil) ** 2).sum(0))
    assert np.abs(out[0].numpy() - expected).max() <= 1e-5 * expected.max()


def test_zero_filled_rss_odd_and_even_sizes_match_numpy(brain_kspace):
    """The even-size shortcut (shift only the RSS image) and the odd-size path give numpy's RSS."""
    from mrizoo.models.image_wrapper import zero_filled_rss

    for h, w in ((230, 180), (229, 177)):
        k = brain_kspace[:, :h, :w]
        mask = np.zeros((h, w), dtype=bool)
        mask[:, ::3] = True
        coil = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k * mask, axes=(-2, -1)), norm="ortho"),
                               axes=(-2, -1))
        expected = np.sqrt((np.abs(coil) ** 2).sum(0))
        got = zero_filled_rss(torch.from_numpy(k)[None], torch.from_numpy(mask)[None])
        assert got.shape == (1, 1, h, w)
        assert np.abs(got[0, 0].numpy() - expected).max() <= 1e-5 * expected.max()


# --------------------------------------------------------------------------- VarNet


def test_varnet_matches_fastmri_on_real_data(fm, brain_batch):
    masked, mask, lows = brain_batch
    ref, ours = _pair_varnets(fm)
    with torch.no_grad():
        got = ours(masked, mask)
        assert got.shape == (2, 230, 180)
        assert _rel_err(got, ref(masked, mask)) <= 1e-5
        # the number of centre columns given explicitly (as fastMRI's data pipeline does)
        one, one_mask = masked[:1], mask[:1]
        assert _rel_err(ours(one, one_mask, lows[0]), ref(one, one_mask, lows[0])) <= 1e-5
        # and fastMRI's network with our weights
        torch.manual_seed(7)
        ours2 = VarNet(SMALL_VARNET).eval()
        ref.load_state_dict(ours2.state_dict(), strict=True)
        assert _rel_err(ours2(one, one_mask), ref(one, one_mask)) <= 1e-5


def test_varnet_reconstruct_matches_fastmri_forward(fm, brain_batch):
    """The common interface (complex k-space, bool [B, H, W] mask) gives fastMRI's output."""
    masked, mask, _ = brain_batch
    ref, ours = _pair_varnets(fm, seed=1)
    kspace = torch.view_as_complex(masked.contiguous())
    mask2d = mask[:, 0, :, :, 0].expand(-1, 230, -1)
    with torch.no_grad():
        got = ours.reconstruct(kspace, mask2d)
        expected = ref(masked, mask)
        # a column mask given with all its rows ([B, 1, H, W, 1]) is the same mask
        full = ours(masked[1:], mask2d[1:, None, :, :, None])
    assert got.dtype == torch.float32
    assert _rel_err(got, expected) <= 1e-5
    assert _rel_err(full, expected[1:]) <= 1e-5


def test_varnet_without_center_masking_matches_fastmri(fm):
    cfg = VarNetConfig(num_cascades=2, sens_chans=2, sens_pools=2, chans=4, pools=2, mask_center=False)
    ref, ours = _pair_varnets(fm, cfg, seed=2)
    torch.manual_seed(0)
    mask = torch.rand(2, 1, 1, 27, 1) < 0.4
    k = torch.randn(2, 3, 33, 27, 2) * mask
    with torch.no_grad():
        assert _rel_err(ours(k, mask), ref(k, mask)) <= 1e-5


def test_varnet_state_dict_keys_and_parameter_counts(fm):
    with torch.device("meta"):
        ours = VarNet(VARNET_FASTMRI_LEADERBOARD)
        ref = _fastmri_varnet(fm, VARNET_FASTMRI_LEADERBOARD)
        small = VarNet(VARNET_LIN2024_SMALL)
        ref_small = _fastmri_varnet(fm, VARNET_LIN2024_SMALL)
    sd = ours.state_dict()
    assert len(sd) == 324
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert tuple(sd["cascades.11.dc_weight"].shape) == (1,)
    assert _n_params(ours) == 29_936_966
    assert _n_params(small) == _n_params(ref_small)
    assert len(small.cascades) == 8 and small.cascades[0].model.unet.config.chans == 12


def test_center_band_matches_fastmri_rule(fm):
    from fastmri.data.subsample import EquiSpacedMaskFunc, RandomMaskFunc

    sens = fm.VarNet(1, 2, 1, 2, 1).sens_net
    masks = []
    for i, func in enumerate([RandomMaskFunc([0.08, 0.04], [4, 8]), EquiSpacedMaskFunc([0.08, 0.04], [4, 8])]):
        for seed in range(6):
            for w in (180, 181, 368):
                m, _ = func((1, 16, w, 2), seed=seed + 10 * i)
                masks.append(m.view(1, 1, 1, w, 1))
    edge = torch.ones(1, 1, 1, 20, 1)
    edge[..., :3, :] = 0  # right half sampled up to the edge
    masks.append(edge)
    for m in masks:
        pad, num = sens.get_pad_and_num_low_freqs(m)
        start, n = center_band(m[:, 0, 0, :, 0])
        assert int(start) == int(pad) and int(n) == int(num)
    start, n = center_band(torch.ones(1, 20, dtype=torch.bool), fastmri_rule=False)
    assert (int(start), int(n)) == (0, 20)


def test_varnet_2d_mask_calibration_region():
    """A 2D mask: the calibration region is its fully sampled central block."""
    torch.manual_seed(0)
    h, w = 40, 30
    mask = torch.rand(1, h, w) < 0.2
    mask[:, 14:26, 10:20] = True  # 12 x 10 block centred on (20, 15)
    mask[:, 13, 15] = False  # the centre column stops just above the block
    mask[:, 26, 15] = False
    mask[:, 20, 9] = False  # the centre row stops just left of the block
    mask[:, 20, 20] = False
    model = VarNet(SMALL_VARNET)
    region = model.sens_net.center_mask(mask)[0, 0]
    expected = torch.zeros(h, w, dtype=torch.bool)
    expected[14:26, 10:20] = True
    assert torch.equal(region, expected)
    k = torch.randn(2, 3, h, w, dtype=torch.complex64)
    out = model.reconstruct(k, torch.cat([mask, mask]))
    assert out.shape == (2, h, w) and torch.isfinite(out).all()


def test_varnet_forward_backward_small_and_odd():
    torch.manual_seed(0)
    model = build_varnet(SMALL_VARNET).train()
    k = torch.randn(1, 4, 32, 24, dtype=torch.complex64)
    mask = torch.zeros(1, 32, 24, dtype=torch.bool)
    mask[..., ::3] = True
    mask[..., 10:14] = True
    out = model.reconstruct(k, mask)
    assert out.shape == (1, 32, 24)
    out.mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        # the first cascade starts from the measured k-space: its data-consistency term is 0
        assert name == "cascades.0.dc_weight" or p.grad.abs().sum() > 0, name
    # odd, non-multiple-of-16 size through the native call
    k = torch.randn(1, 3, 21, 17, 2)
    m = torch.zeros(1, 1, 1, 17, 1, dtype=torch.bool)
    m[..., 6:11, :] = True
    assert model(k * m, m).shape == (1, 21, 17)


def test_checkpointed_cascades_give_identical_gradients():
    torch.manual_seed(0)
    k = torch.randn(1, 3, 24, 20, dtype=torch.complex64)
    mask = torch.zeros(1, 24, 20, dtype=torch.bool)
    mask[..., ::2] = True
    mask[..., 8:12] = True
    results = {}
    for ckpt in (False, True):
        torch.manual_seed(1)
        model = VarNet(VarNetConfig(num_cascades=2, sens_chans=2, sens_pools=1, chans=4, pools=2,
                                    checkpoint_cascades=ckpt))
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            out = model.reconstruct(k, mask)
        out.square().sum().backward()
        results[ckpt] = (out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, sum(saved))
    (out0, g0, saved0), (out1, g1, saved1) = results[False], results[True]
    assert torch.equal(out0, out1)
    assert g0.keys() == g1.keys() and all(torch.equal(g0[n], g1[n]) for n in g0)
    assert saved1 < saved0 / 2  # activations of the cascades were not kept


def test_varnet_upsample_trick_matches_numpy():
    """With no cascades the output is the RSS image; check the repeat-interleave + crop against numpy."""
    torch.manual_seed(0)
    model = VarNet(VarNetConfig(num_cascades=0, sens_chans=2, sens_pools=1)).eval()
    k = torch.randn(1, 3, 20, 18, dtype=torch.complex64)
    mask = torch.zeros(20, 18, dtype=torch.bool)
    mask[:, ::2] = True
    mask[:, 7:11] = True
    with torch.no_grad():
        out = model.reconstruct(k, mask, upsample=2)
    kn = (k * mask).numpy()[0].repeat(2, axis=-2).repeat(2, axis=-1)
    coil = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kn, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    expected = np.sqrt((np.abs(coil) ** 2).sum(0))[10:30, 9:27]
    assert out.shape == (1, 20, 18)
    assert np.abs(out[0].numpy() - expected).max() <= 1e-5 * expected.max()
    with pytest.raises(InputError, match="upsample"):
        model.reconstruct(k, mask, upsample=0)


def test_varnet_rejects_bad_inputs():
    model = VarNet(SMALL_VARNET)
    with pytest.raises(InputError, match="mask"):
        model(torch.zeros(1, 2, 16, 16, 2), torch.ones(1, 16, dtype=torch.bool))
    with pytest.raises(InputError, match="masked_kspace"):
        model(torch.zeros(1, 2, 16, 16), torch.ones(1, 1, 1, 16, 1, dtype=torch.bool))
    with pytest.raises(InputError, match="num_cascades"):
        VarNetConfig(num_cascades=-1)


# --------------------------------------------------------------------------- checkpoint converter


def _no_temp_files(folder: Path) -> bool:
    return not any(p.name.endswith(".tmp") for p in folder.iterdir())


def test_convert_varnet_checkpoint_roundtrip(fm, tmp_path, brain_batch):
    from safetensors import safe_open
    from safetensors.torch import load_file

    masked, mask, _ = brain_batch
    cfg = VarNetConfig(num_cascades=3, sens_chans=2, sens_pools=2, chans=4, pools=3)
    ref, _ = _pair_varnets(fm, cfg, seed=3)
    src, dst = tmp_path / "varnet.pt", tmp_path / "varnet.safetensors"
    torch.save(ref.state_dict(), src)
    inferred = convert_fastmri_checkpoint(src, dst, arch="varnet")
    assert VarNetConfig(**inferred) == cfg
    with safe_open(str(dst), "pt") as f:
        meta = f.metadata()
    assert meta["arch"] == "varnet" and json.loads(meta["config"]) == inferred
    model = build_varnet(VarNetConfig(**inferred)).eval()
    model.load_state_dict(load_file(str(dst)), strict=True)
    with torch.no_grad():
        assert _rel_err(model(masked, mask), ref(masked, mask)) <= 1e-5
    assert _no_temp_files(tmp_path)


def test_convert_unet_checkpoint_and_wrapped_checkpoint(fm, tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    ref = fm.Unet(1, 1, 4, 3).eval()
    torch.save(ref.state_dict(), tmp_path / "bare.pt")
    bare = convert_fastmri_checkpoint(tmp_path / "bare.pt", tmp_path / "bare.safetensors", arch="unet")
    assert UnetConfig(**bare) == UnetConfig(chans=4, num_pool_layers=3)
    src = tmp_path / "unet.pt"
    # a training checkpoint: {"state_dict": {"unet.<key>": tensor}}
    torch.save({"state_dict": {f"unet.{k}": v for k, v in ref.state_dict().items()}, "epoch": 3}, src)
    inferred = convert_fastmri_checkpoint(src, tmp_path / "unet.safetensors", arch="unet")
    assert UnetConfig(**inferred) == UnetConfig(chans=4, num_pool_layers=3)
    model = UnetRecon(UnetConfig(**inferred)).eval()
    model.load_state_dict(load_file(str(tmp_path / "unet.safetensors")), strict=True)
    x = torch.randn(1, 1, 24, 40)
    with torch.no_grad():
        assert _rel_err(model(x), ref(x)) <= 1e-5


def test_convert_shared_tensors(fm, tmp_path):
    from safetensors.torch import load_file

    sd = _fastmri_varnet(fm, SMALL_VARNET).state_dict()
    sd["cascades.1.dc_weight"] = sd["cascades.0.dc_weight"]  # same storage
    torch.save(sd, tmp_path / "shared.pt")
    convert_fastmri_checkpoint(tmp_path / "shared.pt", tmp_path / "shared.safetensors")
    loaded = load_file(str(tmp_path / "shared.safetensors"))
    assert torch.equal(loaded["cascades.1.dc_weight"], sd["cascades.0.dc_weight"])


def test_convert_rejects_corrupted_and_mismatched_files(fm, tmp_path):
    dst = tmp_path / "out.safetensors"
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint" * 10)
    with pytest.raises(InputError, match="corrupt.pt"):
        convert_fastmri_checkpoint(bad, dst)
    assert not dst.exists() and _no_temp_files(tmp_path)

    unet = tmp_path / "unet.pt"
    torch.save(fm.Unet(1, 1, 4, 2).state_dict(), unet)
    with pytest.raises(InputError, match="missing keys: cascades.0.dc_weight") as err:
        convert_fastmri_checkpoint(unet, dst, arch="varnet")
    assert "unet.pt" in str(err.value) and "unexpected keys: conv.layers.0.weight" in str(err.value)

    sd = _fastmri_varnet(fm, SMALL_VARNET).state_dict()
    del sd["cascades.1.model.unet.conv.layers.4.weight"]
    sd["cascades.0.extra"] = torch.zeros(1)
    partial = tmp_path / "partial.pt"
    torch.save(sd, partial)
    with pytest.raises(InputError) as err:
        convert_fastmri_checkpoint(partial, dst)
    assert "missing keys: cascades.1.model.unet.conv.layers.4.weight" in str(err.value)
    assert "unexpected keys: cascades.0.extra" in str(err.value)

    sd = _fastmri_varnet(fm, SMALL_VARNET).state_dict()
    sd["cascades.1.model.unet.down_sample_layers.0.layers.4.weight"] = torch.zeros(4, 4, 5, 5)
    torch.save(sd, partial)
    with pytest.raises(InputError, match=r"shapes .*down_sample_layers.0.layers.4.weight \(4, 4, 5, 5\)"):
        convert_fastmri_checkpoint(partial, dst)

    torch.save([1, 2, 3], partial)
    with pytest.raises(InputError, match="state dict"):
        convert_fastmri_checkpoint(partial, dst)
    with pytest.raises(InputError, match="arch"):
        convert_fastmri_checkpoint(unet, dst, arch="resnet")  # type: ignore[arg-type]
    assert not dst.exists() and _no_temp_files(tmp_path)


def test_convert_failure_while_writing_leaves_nothing(fm, tmp_path):
    """The destination is a folder: writing succeeds, the final rename fails, no temp file stays."""
    src = tmp_path / "varnet.pt"
    torch.save(_fastmri_varnet(fm, SMALL_VARNET).state_dict(), src)
    dst = tmp_path / "taken"
    dst.mkdir()
    (dst / "keep").write_text("x")
    with pytest.raises(OSError):
        convert_fastmri_checkpoint(src, dst)
    assert dst.is_dir() and (dst / "keep").exists() and _no_temp_files(tmp_path)
