"""Zoo models whose weights ship inside the package: offline loading, sha256 pins, quality on a real scan."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import mrizoo
from mrizoo.demo import demo_scan_path, make_demo_scan
from mrizoo.errors import InputError
from mrizoo.metrics import evaluate_volume
from mrizoo.weights import PackageWeightsError, package_weights_dir
from mrizoo.zoo import REGISTRY

PACKAGE_ENTRIES = [n for n in REGISTRY.names() if REGISTRY.get(n).weights.kind == "package"]


@pytest.fixture
def offline_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network, an empty Hugging Face cache and an empty local zoo."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("MRIZOO_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture(scope="module")
def scan() -> dict:
    """The shipped undersampled scan: k-space [1, C, H, W], mask [H, W], RSS reference [H, W]."""
    from mrizoo.data import FastMRIVolume

    with FastMRIVolume(demo_scan_path()) as vol:
        k = vol.kspace(0)
        lines = vol.mask()
        return {"kspace": k[None], "mask": lines.expand(k.shape[-2], k.shape[-1]), "target": vol.target(0)}


def test_the_demo_models_ship_with_the_package() -> None:
    assert {"varnet-mini-r4", "rcgan-mini-r4"} <= set(PACKAGE_ENTRIES)
    for name in PACKAGE_ENTRIES:
        entry = REGISTRY.get(name)
        assert "demo" in entry.tags and entry.recipe == name
        size = (package_weights_dir() / str(entry.weights.path) / "model.safetensors").stat().st_size
        assert size < 8 * 2**20, f"{name}: {size} bytes is not small"


@pytest.mark.parametrize("name", PACKAGE_ENTRIES)
def test_package_weights_load_offline_with_pinned_sha256(name: str, offline_home: Path) -> None:
    from mrizoo.zoo.resolve import resolve_checkpoint

    resolved = resolve_checkpoint(name)
    assert resolved.origin == "package" and resolved.sha256_pinned
    model = mrizoo.load(name)
    assert not model.training
    doc = json.loads((resolved.folder / "config.json").read_text())
    assert doc["name"] == name and doc["recipe"] == name
    # what the recipe trained is what the entry builds: same config, strict keys and shapes
    fresh = mrizoo.create(name)
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    summary = json.loads((resolved.folder / "training_summary.json").read_text())
    assert summary["recipe"] == name and summary["steps"] > 0
    assert not any((offline_home / "hf").rglob("*.safetensors"))  # nothing downloaded or cached


def _tampered_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    import mrizoo.weights as weights

    copy = tmp_path / "weights"
    shutil.copytree(package_weights_dir(), copy)
    monkeypatch.setattr(weights, "package_weights_dir", lambda: copy)
    return copy / str(REGISTRY.get(name).weights.path)


def test_changed_package_weights_are_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                offline_home: Path) -> None:
    folder = _tampered_copy(tmp_path, monkeypatch, "varnet-mini-r4")
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(PackageWeightsError, match=r"varnet-mini-r4.*model\.safetensors has sha256 .*reinstall"):
        mrizoo.load("varnet-mini-r4")


def test_missing_package_weights_say_reinstall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               offline_home: Path) -> None:
    folder = _tampered_copy(tmp_path, monkeypatch, "varnet-mini-r4")
    (folder / "model.safetensors").unlink()
    with pytest.raises(PackageWeightsError, match="model.safetensors not in .*incomplete: reinstall"):
        mrizoo.load("varnet-mini-r4")


@pytest.mark.parametrize("weights, message", [
    ({"kind": "package", "path": "varnet-mini-r4"}, "package weights need 'path'"),
    ({"kind": "package", "sha256": "a" * 64}, "package weights need 'path'"),
])
def test_package_entries_must_pin_folder_and_sha256(weights: dict, message: str) -> None:
    from mrizoo._dataclass_io import from_dict
    from mrizoo.zoo.entry import WeightsSource

    with pytest.raises((InputError, ValueError), match=message):
        from_dict(WeightsSource, weights, prefix="entry.weights")


def test_package_path_must_be_a_plain_folder_name(tmp_path: Path) -> None:
    from mrizoo.weights import package_checkpoint

    with pytest.raises(InputError, match="plain folder name"):
        package_checkpoint("../hub", "a" * 64, what="x")


def test_locally_trained_weights_still_take_precedence(offline_home: Path) -> None:
    from mrizoo.zoo.local import local_zoo_dir
    from mrizoo.zoo.resolve import resolve_checkpoint

    model = mrizoo.create("varnet-mini-r4")
    model.save_pretrained(local_zoo_dir("varnet-mini-r4"))
    assert resolve_checkpoint("varnet-mini-r4").origin == "local-zoo"
    assert resolve_checkpoint("varnet-mini-r4", prefer_local=False).origin == "package"


def test_varnet_mini_beats_zero_filled_on_the_real_scan(scan: dict, offline_home: Path) -> None:
    """Demo quality, but real: trained on simulated template data, tested on a real scan it never saw."""
    from mrizoo.classical import zero_filled

    model = mrizoo.load("varnet-mini-r4")
    with torch.no_grad():
        out = model.reconstruct(scan["kspace"], scan["mask"])[0]
    zf = zero_filled(scan["kspace"][0]).abs()
    m, m_zf = evaluate_volume(scan["target"][None], out[None]), evaluate_volume(scan["target"][None], zf[None])
    assert m["ssim"] > m_zf["ssim"] + 0.1 and m["psnr"] > m_zf["psnr"] + 3, (m, m_zf)


def test_varnet_mini_refined_by_wavelets_on_the_real_scan(scan: dict, offline_home: Path) -> None:
    """The network as the prior of L1-wavelet CS (VarNet's default refinement of ``adapt``, here without
    adaptation steps) on the real scan: measured 0.813 / 28.91 plain -> 0.858 / 31.97 dB refined;
    L1-wavelet alone 0.638 / 30.13."""
    model = mrizoo.load("varnet-mini-r4")
    refined = model.adapt(scan["kspace"], scan["mask"], steps=0, progress=False)
    assert refined.adaptation.refine == "wavelet"
    with torch.no_grad():
        plain = model.reconstruct(scan["kspace"], scan["mask"])[0]
        out = refined.reconstruct(scan["kspace"], scan["mask"])[0]
    m_plain, m = (evaluate_volume(scan["target"][None], x[None]) for x in (plain, out))
    assert m["psnr"] > m_plain["psnr"] + 2 and m["ssim"] > m_plain["ssim"] + 0.02, (m, m_plain)


def _pooled_corr(a: torch.Tensor, b: torch.Tensor, size: int = 8) -> float:
    """Correlation of two maps averaged over ``size x size`` blocks (pixel maps are noisy)."""
    import torch.nn.functional as F

    pa, pb = (F.avg_pool2d(x[None, None], size).flatten() for x in (a, b))
    return float(torch.corrcoef(torch.stack([pa, pb]))[0, 1])


def test_rcgan_mini_posterior_in_distribution(scan: dict, offline_home: Path) -> None:
    """A simulated coil array on the real image: the posterior spread is of the size of the error (not
    collapsed), and large where the mean is wrong; the mean (of samples projected onto their mean's coil
    profile) beats zero-filling in PSNR and SSIM (this demo-size generator, 2,520 CPU steps, gains little
    more: the card says so)."""
    from mrizoo.data.synthetic import birdcage_maps, simulate_multicoil, smooth_phase
    from mrizoo.physics import ifft2c, rss

    target, mask = scan["target"], scan["mask"]
    image = target * torch.polar(torch.ones_like(target), smooth_phase(tuple(target.shape), 3))
    maps = birdcage_maps(8, tuple(target.shape), radius=1.7, rotation=0.9)
    kspace, _ = simulate_multicoil(image, snr_db=30.0, seed=5, maps=maps)
    kspace = kspace * mask
    model = mrizoo.load("rcgan-mini-r4")
    with torch.no_grad():
        post = model.sample(kspace[None], mask, n=8, generator=torch.Generator().manual_seed(0))
    assert post.samples.shape == (8, 1, *target.shape) and torch.isfinite(post.samples).all()
    from mrizoo.metrics.calibration import calibration

    m = evaluate_volume(target[None], post.mean)
    zf = evaluate_volume(target[None], rss(ifft2c(kspace))[None])
    assert m["psnr"] > zf["psnr"] + 1.0, (m, zf)  # measured: 23.99 vs 21.93 dB
    assert m["ssim"] > zf["ssim"] + 0.03, (m, zf)  # measured: 0.682 vs 0.611
    cal = calibration(post.samples[:, 0], target)
    # measured: variance/error 0.65, 71.4% / 92.7% of pixels within 1 / 2 std (a collapsed sampler: ~0.002, ~9%)
    assert 0.25 < cal.var_error_ratio < 4 and cal.coverage_2sd > 0.8, cal
    corr = _pooled_corr((post.mean[0] - target).abs(), post.std[0])
    assert corr > 0.35  # measured 0.62


def test_rcgan_mini_on_the_real_scan_is_out_of_distribution_but_sane(scan: dict, offline_home: Path) -> None:
    """A real coil array it never saw: samples finite, std positive, the mean no worse than zero-filling."""
    from mrizoo.physics import ifft2c, rss

    model = mrizoo.load("rcgan-mini-r4")
    with torch.no_grad():
        post = model.sample(scan["kspace"], scan["mask"], n=4, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(post.samples).all() and float(post.std.mean()) > 0
    zf = evaluate_volume(scan["target"][None], rss(ifft2c(scan["kspace"][0]))[None])
    assert evaluate_volume(scan["target"][None], post.mean)["psnr"] > zf["psnr"] - 0.5


def test_shipped_scan_is_what_make_demo_scan_writes(realdata: Path, tmp_path: Path) -> None:
    from mrizoo.data import FastMRIVolume

    fresh = make_demo_scan(realdata / "brain_t1_8ch_full.cfl", tmp_path / "scan.h5")
    with FastMRIVolume(fresh) as a, FastMRIVolume(demo_scan_path()) as b:
        assert torch.equal(a.kspace(0), b.kspace(0)) and torch.equal(a.mask(), b.mask())
        assert torch.equal(a.target(0), b.target(0)) and a.attrs == b.attrs
        assert 3.9 < b.attrs["acceleration"] < 4.2 and int(b.mask().sum()) == 44
