"""One definition of every baseline and metric: demo, evaluate and figure captions print the same numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mrizoo.demo import DemoConfig, demo_scan_path, run_demo
from mrizoo.evaluate import EvalSet, evaluate_models
from mrizoo.metrics import caption, score

BASELINE_ROWS = {"zero-filled": "zerofilled", "CG-SENSE": "cgsense", "L1-wavelet": "l1wavelet"}


def _write(path: Path, **datasets: np.ndarray) -> None:
    """A fastMRI-layout file written as another tool would (no mrizoo attributes)."""
    import h5py

    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value)
        f.attrs["max"] = float(datasets["reconstruction_rss"].max())


def _agree(demo: dict[str, float], evaluated: dict[str, float]) -> None:
    for key in ("ssim", "psnr", "nmse"):
        assert demo[key] == pytest.approx(evaluated[key], abs=1e-6, rel=0), key


def test_demo_and_evaluate_agree_on_the_shipped_scan(tmp_path: Path) -> None:
    """Same file, mask and reference: every baseline scores identically in demo and evaluate."""
    res = run_demo(DemoConfig(models=(), output=tmp_path / "demo.png"))
    ev = evaluate_models(["zerofilled", "cgsense", "l1wavelet"], [EvalSet("demo", demo_scan_path())],
                         target="reconstruction_rss")
    for row, label in BASELINE_ROWS.items():
        _agree(res.metrics[row], ev.models[label].volumes[0].metrics)
    # zero-filling is the RSS of the zero-filled coil images (fastMRI's baseline), not a SENSE combination
    assert res.metrics["zero-filled"]["ssim"] == pytest.approx(0.6205, abs=1e-3)


def test_a_posterior_model_scores_the_same_whoever_else_is_evaluated(tmp_path: Path) -> None:
    """rcGAN estimates its own coil maps: evaluating it next to CG-SENSE must not hand it CG-SENSE's maps."""
    alone = evaluate_models(["rcgan-mini-r4"], [EvalSet("demo", demo_scan_path())], target="reconstruction_rss",
                            samples=2).models["rcgan-mini-r4"].volumes[0].metrics
    mixed = evaluate_models(["rcgan-mini-r4", "cgsense"], [EvalSet("demo", demo_scan_path())],
                            target="reconstruction_rss", samples=2).models["rcgan-mini-r4"].volumes[0].metrics
    _agree(alone, mixed)
    res = run_demo(DemoConfig(models=("rcgan-mini-r4",), baselines=False, samples=2, output=tmp_path / "d.png"))
    _agree(res.metrics["rcgan-mini-r4"], alone)


def _oversampled_file(path: Path, brain_kspace: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The real brain with 2x readout oversampling (fastMRI layout): k-space [1, 8, 460, 180], the stored
    reference cropped to the 230 x 180 field of view, a stored equispaced column mask (declared undersampling)."""
    from mrizoo.masks import create_mask
    from mrizoo.physics import fft2c, ifft2c, rss

    coil_images = ifft2c(torch.from_numpy(brain_kspace))  # [8, 230, 180]
    padded = torch.zeros(8, 460, 180, dtype=coil_images.dtype)
    padded[:, 115:345] = coil_images  # the object fills half the readout field of view
    full = fft2c(padded)
    target = rss(ifft2c(full))[115:345][None].numpy()  # [1, 230, 180]
    lines = create_mask("equispaced_fraction", (460, 180), seed=0, acceleration=4, center_fraction=0.08).lines
    under = (full * lines)[None].numpy()
    _write(path, kspace=under.astype(np.complex64), mask=lines.numpy().astype(np.float32),
           reconstruction_rss=target.astype(np.float32))
    return under, target, full[None].numpy()


def test_readout_oversampled_scan_is_scored_on_the_reference_field_of_view(
        tmp_path: Path, brain_kspace: np.ndarray) -> None:
    """Demo and evaluate crop zero-filling to the stored reference (fastMRI's region): they agree with each
    other and with fastmri's own metrics on the cropped image."""
    fastmri_eval = pytest.importorskip("fastmri.evaluate")
    from mrizoo.classical import zero_filled
    from mrizoo.metrics import center_crop

    scan = tmp_path / "oversampled.h5"
    under, target, full_kspace = _oversampled_file(scan, brain_kspace)
    res = run_demo(DemoConfig(input=scan, models=(), baselines=False, output=tmp_path / "demo.png"))
    ev = evaluate_models(["zerofilled"], [EvalSet("o", scan)], target="reconstruction_rss")
    _agree(res.metrics["zero-filled"], ev.models["zerofilled"].volumes[0].metrics)
    zf = zero_filled(torch.from_numpy(under))  # [1, 460, 180]
    cropped = center_crop(zf, (230, 180)).double().numpy()
    assert res.metrics["zero-filled"]["psnr"] == pytest.approx(
        fastmri_eval.psnr(target.astype(np.float64), cropped, maxval=target.max()), abs=1e-6)
    assert res.metrics["zero-filled"]["ssim"] == pytest.approx(
        fastmri_eval.ssim(target.astype(np.float64), cropped, maxval=target.max()), abs=1e-4)
    # the old captions scored the whole oversampled image against the RSS of the whole k-space: flattering
    full = zero_filled(torch.from_numpy(full_kspace))
    assert score(full, zf)["psnr"] > res.metrics["zero-filled"]["psnr"] + 2
    assert caption(res.metrics["zero-filled"]).startswith("SSIM ")


def test_demo_never_undersamples_undersampled_data_again(tmp_path: Path, realdata: Path) -> None:
    """A 2D Poisson scan stored without a mask and with an aliased 'reference': the demo reconstructs what was
    measured (R from the data) and prints no metrics against the fake reference."""
    from mrizoo.physics import ifft2c, rss

    k = np.load(realdata / "brain_t1_8ch_poisson_r8.npy")  # [8, 230, 180], zeros where not sampled
    fake = rss(ifft2c(torch.from_numpy(k)))[None].numpy()  # the aliased zero-filled image
    scan = tmp_path / "poisson.h5"
    _write(scan, kspace=k[None].astype(np.complex64), reconstruction_rss=fake.astype(np.float32))
    res = run_demo(DemoConfig(input=scan, models=(), baselines=False, acceleration=4, output=tmp_path / "d.png"))
    measured = np.abs(k).sum(0) > 0
    assert res.acceleration == pytest.approx(measured.size / measured.sum(), rel=0.2)
    assert res.acceleration > 5  # about 12% sampled, not the 4x of a second undersampling
    assert res.metrics == {}
    assert res.notes and "undersampled" in res.notes[0] and "no metrics" in res.notes[0]
