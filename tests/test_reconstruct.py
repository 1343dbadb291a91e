"""``mrizoo reconstruct``: volumes in, fastMRI-convention reconstructions out."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import mrizoo
from mrizoo.data.synthetic import make_test_volume
from mrizoo.errors import InputError
from mrizoo.models.checkpoint import save_pretrained
from mrizoo.reconstruct import reconstruct_file, reconstruct_path

SHAPE = (32, 32)


def _ifft2c_np(k: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=axes), axes=axes, norm="ortho"), axes=axes)


def _rss_np(k: np.ndarray) -> np.ndarray:
    """RSS image [slices, H, W] of k-space [slices, coils, H, W]."""
    return np.sqrt((np.abs(_ifft2c_np(k)) ** 2).sum(axis=1))


def _fastmri_mask(name: str, w: int, acceleration: int, center_fraction: float) -> np.ndarray:
    from fastmri.data.subsample import EquiSpacedMaskFunc

    func = EquiSpacedMaskFunc([center_fraction], [acceleration])
    mask, _ = func((1, w, 1), seed=tuple(ord(c) for c in name))
    return mask.numpy().reshape(w).astype(bool)


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vol")
    return make_test_volume(folder / "file_brain_001.h5", num_slices=3, shape=SHAPE, num_coils=4,
                            snr_db=40.0, crop=(24, 24))


@pytest.fixture(scope="module")
def varnet_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = mrizoo.create("varnet-fastmri-brain", num_cascades=2, sens_chans=4, sens_pools=2, chans=4, pools=2)
    return save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "varnet")


@pytest.fixture(scope="module")
def rcgan_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = mrizoo.create("rcgan-brain-r4", chans=8, depth=2, in_coils=4, disc_input_size=None,
                          coil_combine="rss")
    return save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "rcgan")


def test_zerofilled_is_rss_of_fastmri_masked_kspace(volume, tmp_path):
    out = tmp_path / "zf.h5"
    res = reconstruct_file("zerofilled", volume, out, acceleration=4, center_fraction=0.08,
                           mask="equispaced", progress=False)
    with h5py.File(volume) as f:
        kspace = f["kspace"][()]
        attrs_in = dict(f.attrs)
    lines = _fastmri_mask(volume.name, SHAPE[1], 4, 0.08)  # fastMRI's mask, seeded from the file name
    expected = _rss_np(kspace * lines)
    with h5py.File(out) as f:
        recon = f["reconstruction"][()]
        attrs = dict(f.attrs)
    assert recon.dtype == np.float32 and recon.shape == (3, *SHAPE)
    np.testing.assert_allclose(recon, expected, rtol=1e-4, atol=1e-6 * expected.max())
    assert attrs["acquisition"] == attrs_in["acquisition"]
    assert attrs["max"] == attrs_in["max"]
    assert attrs["model"] == "zerofilled" and attrs["mask"] == "equispaced"
    assert attrs["acceleration"] == 4.0 and attrs["center_fraction"] == pytest.approx(round(SHAPE[1] * 0.08) / SHAPE[1])
    assert attrs["mrizoo_version"] == mrizoo.__version__
    assert not attrs["acceleration_outside_training"]
    assert res.num_slices == 3 and res.output == out


def test_fastmri_evaluate_reads_the_output(volume, tmp_path):
    from fastmri.data.transforms import center_crop
    from fastmri.evaluate import nmse, psnr, ssim

    out = reconstruct_file("zerofilled", volume, tmp_path / "zf.h5", progress=False).output
    with h5py.File(volume) as tf, h5py.File(out) as rf:
        target = tf["reconstruction_rss"][()]
        maxval = rf.attrs["max"]
        recon = center_crop(rf["reconstruction"][()], (target.shape[-1], target.shape[-2]))
        kspace = tf["kspace"][()]
    # centre crop of the RSS of the whole k-space is the stored target
    full = center_crop(_rss_np(kspace), target.shape[-2:])
    np.testing.assert_allclose(full, target, rtol=1e-4, atol=1e-6)
    scores = {"nmse": nmse(target, recon), "psnr": psnr(target, recon, maxval), "ssim": ssim(target, recon, maxval)}
    assert 0 < scores["nmse"] < 0.5 and 10 < scores["psnr"] < 60 and 0 < scores["ssim"] < 1
    # the same scores as the zero-filled image computed here from fastMRI's own mask
    oracle = center_crop(_rss_np(kspace * _fastmri_mask(volume.name, SHAPE[1], 4, 0.08)), target.shape[-2:])
    assert scores["ssim"] == pytest.approx(ssim(target, oracle, maxval), rel=1e-4)
    assert scores["psnr"] == pytest.approx(psnr(target, oracle, maxval), rel=1e-4)


def test_stored_mask_is_used(volume, tmp_path):
    with h5py.File(volume) as f:
        kspace = f["kspace"][()]
    lines = np.zeros(SHAPE[1], bool)
    lines[::4] = True
    lines[14:18] = True
    src = mrizoo.write_volume(tmp_path / "under.h5", kspace=kspace * lines, mask=lines,
                              attrs={"acquisition": "X"})
    out = reconstruct_file("zerofilled", src, tmp_path / "o.h5", progress=False)
    with h5py.File(out.output) as f:
        np.testing.assert_allclose(f["reconstruction"][()], _rss_np(kspace * lines), rtol=1e-4, atol=1e-6)
        assert f.attrs["mask"] == "stored"
        assert f.attrs["acceleration"] == pytest.approx(SHAPE[1] / lines.sum())
        assert f.attrs["center_fraction"] == pytest.approx(4 / 32)
        assert "max" not in f.attrs


def test_bad_inputs_are_reported(volume, tmp_path, varnet_dir):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(InputError, match="HDF5"):
        reconstruct_file("zerofilled", text, tmp_path / "a.h5", progress=False)

    with h5py.File(volume) as f:
        kspace = f["kspace"][()]
    bad = tmp_path / "badmask.h5"
    with h5py.File(bad, "w") as f:
        f["kspace"] = kspace
        f["mask"] = np.ones(SHAPE[1] + 2, dtype=bool)
    with pytest.raises(InputError, match="mask does not fit") as err:
        reconstruct_file("zerofilled", bad, tmp_path / "b.h5", progress=False)
    assert err.value.field == "mask"

    single = mrizoo.write_volume(tmp_path / "single.h5", kspace=kspace[:, 0])
    with pytest.raises(InputError, match="multi-coil"):
        reconstruct_file(varnet_dir, single, tmp_path / "c.h5", progress=False)
    # zero-filling needs no coils: a single-coil file gives |ifft2c(masked k-space)|
    res = reconstruct_file("zerofilled", single, tmp_path / "d.h5", progress=False)
    lines = _fastmri_mask(single.name, SHAPE[1], 4, 0.08)
    with h5py.File(res.output) as f:
        np.testing.assert_allclose(f["reconstruction"][()], np.abs(_ifft2c_np(kspace[:, 0] * lines)),
                                   rtol=1e-4, atol=1e-6)

    with pytest.raises(InputError, match="not a posterior"):
        reconstruct_file("zerofilled", volume, tmp_path / "e.h5", samples=4, progress=False)
    with pytest.raises(InputError, match="upsampling"):
        reconstruct_file("zerofilled", volume, tmp_path / "f.h5", upsample=2, progress=False)
    assert not any(tmp_path.glob("[a-c,e-f].h5"))


def test_existing_output_is_left_untouched(volume, tmp_path):
    out = tmp_path / "exists.h5"
    out.write_bytes(b"precious")
    with pytest.raises(InputError, match="exists"):
        reconstruct_file("zerofilled", volume, out, progress=False)
    assert out.read_bytes() == b"precious"
    reconstruct_file("zerofilled", volume, out, overwrite=True, progress=False)
    with h5py.File(out) as f:
        assert f["reconstruction"].shape == (3, *SHAPE)
    assert [p.name for p in tmp_path.iterdir()] == ["exists.h5"]  # no temporary left behind


def test_varnet_checkpoint_acceleration_and_upsample(volume, tmp_path, varnet_dir):
    res = reconstruct_file(varnet_dir, volume, tmp_path / "r4.h5", acceleration=4, progress=False, batch_size=2)
    assert not res.acceleration_outside_training
    with pytest.warns(UserWarning, match="outside"):
        res = reconstruct_file(varnet_dir, volume, tmp_path / "r6.h5", acceleration=6, progress=False)
    with h5py.File(res.output) as f:
        assert bool(f.attrs["acceleration_outside_training"]) is True
        assert list(f.attrs["trained_accelerations"]) == [4.0, 8.0]
        assert np.isfinite(f["reconstruction"][()]).all()

    res = reconstruct_file(varnet_dir, volume, tmp_path / "up.h5", acceleration=4, upsample=2, progress=False)
    model = mrizoo.load(varnet_dir)
    with h5py.File(volume) as f:
        kspace = torch.from_numpy(f["kspace"][()])
    lines = torch.from_numpy(_fastmri_mask(volume.name, SHAPE[1], 4, 0.08))
    with torch.no_grad():
        direct = model.reconstruct(kspace * lines, lines.expand(*SHAPE), upsample=2)
    with h5py.File(res.output) as f:
        assert f.attrs["upsample"] == 2
        np.testing.assert_allclose(f["reconstruction"][()], direct.numpy(), rtol=1e-4, atol=1e-5)


def test_out_of_memory_halves_the_batch(volume, tmp_path, caplog):
    model = mrizoo.create("zerofilled")
    plain = model.reconstruct

    def fragile(kspace, mask, maps=None):
        if kspace.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return plain(kspace, mask, maps)

    model.reconstruct = fragile
    with caplog.at_level(logging.WARNING, logger="mrizoo.reconstruct"):
        res = reconstruct_file(model, volume, tmp_path / "oom.h5", batch_size=4, progress=False)
    assert res.batch_size == 1 and len(res.notes) == 2
    assert "out of memory" in caplog.text and "batch size 1" in caplog.text
    ref = reconstruct_file("zerofilled", volume, tmp_path / "ref.h5", progress=False)
    with h5py.File(res.output) as a, h5py.File(ref.output) as b:
        np.testing.assert_array_equal(a["reconstruction"][()], b["reconstruction"][()])
        assert a.attrs["batch_size"] == 1 and a.attrs["oom_batch_halvings"] == 2
        assert a.attrs["batch_size_requested"] == 4


def test_posterior_samples_mean_std(volume, tmp_path, rcgan_dir):
    out = tmp_path / "post.h5"
    fig = tmp_path / "post.png"
    reconstruct_file(rcgan_dir, volume, out, mask="equispaced", acceleration=4, samples=3,
                     save_samples=True, figure=fig, figure_slice=1, progress=False)
    with h5py.File(out) as f:
        recon, std, samples = f["reconstruction"][()], f["std"][()], f["samples"][()]
        assert f.attrs["num_samples"] == 3
    assert samples.shape == (3, 3, *SHAPE) and std.shape == recon.shape == (3, *SHAPE)
    np.testing.assert_allclose(recon, samples.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, samples.std(0), rtol=1e-4, atol=1e-6)
    assert std.max() > 0
    import matplotlib.image

    assert matplotlib.image.imread(fig).ndim == 3

    # without --save-samples only mean and std are stored
    reconstruct_file(rcgan_dir, volume, tmp_path / "p2.h5", mask="equispaced", samples=2, progress=False)
    with h5py.File(tmp_path / "p2.h5") as f:
        assert set(f.keys()) == {"reconstruction", "std"}


def test_cli_folder(volume, tmp_path, capsys):
    import mrizoo.cli as cli

    src = tmp_path / "in"
    src.mkdir()
    make_test_volume(src / "a.h5", num_slices=2, shape=SHAPE, num_coils=4, seed=1)
    make_test_volume(src / "b.h5", num_slices=2, shape=SHAPE, num_coils=4, seed=2)
    dst = tmp_path / "out"
    argv = ["reconstruct", "zerofilled", str(src), str(dst), "--acceleration", "8", "--batch-size", "1",
            "--figure", str(tmp_path / "figs"), "--no-progress"]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["a.h5", "b.h5"]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["a.png", "b.png"]
    masks = []
    for name in ("a.h5", "b.h5"):
        with h5py.File(src / name) as f:
            kspace = f["kspace"][()]
        lines = _fastmri_mask(name, SHAPE[1], 8, 0.04)  # seeded per file name
        masks.append(lines)
        with h5py.File(dst / name) as f:
            np.testing.assert_allclose(f["reconstruction"][()], _rss_np(kspace * lines), rtol=1e-4, atol=1e-6)
            assert f.attrs["acceleration"] == 8.0
    assert not np.array_equal(*masks)
    assert "a.h5" in capsys.readouterr().out
    # a second run refuses to overwrite (exit code 2, message names the outputs)
    before = (dst / "a.h5").read_bytes()
    assert cli.main(argv) == 2
    assert "exist" in capsys.readouterr().err
    assert (dst / "a.h5").read_bytes() == before
    with pytest.raises(InputError, match="no .h5"):
        reconstruct_path("zerofilled", tmp_path / "figs", tmp_path / "x")


def test_real_brain_slice_random_mask(brain_kspace, tmp_path):
    from fastmri.data.subsample import RandomMaskFunc

    src = mrizoo.write_volume(tmp_path / "file_brain_AXT1_0001.h5", kspace=brain_kspace[None],
                              attrs={"acquisition": "AXT1", "max": 1.0})
    res = reconstruct_file("zerofilled", src, tmp_path / "r.h5", mask="random", acceleration=4,
                           center_fraction=0.08, progress=False)
    fm_mask, num_low = RandomMaskFunc([0.08], [4])((1, brain_kspace.shape[-1], 1), seed=tuple(map(ord, src.name)))
    lines = fm_mask.numpy().reshape(-1).astype(bool)
    with h5py.File(res.output) as f:
        recon = f["reconstruction"][()]
        assert f.attrs["center_fraction"] == pytest.approx(num_low / brain_kspace.shape[-1])
        assert f.attrs["acquisition"] == "AXT1"
    expected = _rss_np(brain_kspace[None] * lines)
    np.testing.assert_allclose(recon, expected, rtol=1e-4, atol=1e-6 * expected.max())


# ------------------------------------------------------------------- sampling read from the data
def _old_style_file(path: Path, kspace: np.ndarray, mask: np.ndarray | None = None, **targets: np.ndarray) -> Path:
    """A volume as files written before the sampling attributes existed: no ``sampling`` attr."""
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace.astype(np.complex64)
        if mask is not None:
            f["mask"] = mask
        for key, value in targets.items():
            f[key] = value.astype(np.float32)
        f.attrs["acquisition"] = "AXT1"
    return path


def test_undersampled_real_scan_is_never_undersampled_again(realdata, tmp_path):
    """The real 2D Poisson scan (about 12% sampled), labelled fully sampled with an aliased 'reference'."""
    under = np.load(realdata / "brain_t1_8ch_poisson_r8.npy")[None]  # [1, 8, 230, 180]
    aliased = _rss_np(under)
    src = _old_style_file(tmp_path / "poisson.h5", under, reconstruction_rss=aliased)
    measured = np.abs(under[0]).sum(0) > 0
    with pytest.warns(UserWarning, match="already undersampled"):
        res = reconstruct_file("zerofilled", src, tmp_path / "r.h5", acceleration=4, figure=tmp_path / "r.png",
                               progress=False)
    with h5py.File(res.output) as f:
        # zero-filling of exactly the measured samples: no second mask was applied
        np.testing.assert_allclose(f["reconstruction"][()], aliased, rtol=1e-4, atol=1e-6 * aliased.max())
        assert f.attrs["input_sampling"] == "undersampled" and not f.attrs["retrospective_undersampling"]
        assert f.attrs["mask"] == "measured"
        assert f.attrs["acceleration"] == pytest.approx(measured.size / measured.sum(), rel=1e-6)
        assert "max" not in f.attrs
    assert res.sampling == "undersampled" and "already undersampled" in res.summary()
    assert res.acceleration > 6  # about 12% of k-space
    assert res.figure is not None and res.figure.exists()

    # evaluate scores nothing against the aliased image: a clear error before any model runs
    from mrizoo.evaluate import EvalSet, evaluate_models

    for target in ("rss", "reconstruction_rss"):
        with pytest.raises(InputError, match="undersampled .* no fully sampled reference") as err:
            evaluate_models(["zerofilled"], [EvalSet("p", [src])], target=target)
        assert err.value.path == os.fspath(src)


def test_calibration_block_is_read_from_the_data_not_the_column_mask(brain_kspace, tmp_path):
    """2x with a 24 x 24 fully sampled centre, stored with a column mask claiming whole centre columns."""
    h, w = brain_kspace.shape[-2:]
    measured = np.zeros((h, w), bool)
    measured[:, ::2] = True
    measured[h // 2 - 12 : h // 2 + 12, w // 2 - 12 : w // 2 + 12] = True
    columns = measured.any(axis=0)  # the wrong 1D mask: every centre column "fully" sampled
    src = _old_style_file(tmp_path / "calib.h5", (brain_kspace * measured)[None], mask=columns)
    res = reconstruct_file("zerofilled", src, tmp_path / "r.h5", progress=False)
    with h5py.File(res.output) as f:
        assert f.attrs["mask"] == "measured" and f.attrs["input_sampling"] == "undersampled"
        assert f.attrs["acceleration"] == pytest.approx(h * w / measured.sum(), rel=1e-6)
    # the block's 24 columns plus the fully sampled even column 102 next to it
    assert res.center_fraction == pytest.approx(25 / w)


def test_fully_sampled_real_scan_figure_captions_use_the_shared_metrics(brain_kspace, tmp_path, monkeypatch):
    import mrizoo.figures as figures
    from mrizoo.classical import zero_filled
    from mrizoo.metrics import captions

    src = mrizoo.write_volume(tmp_path / "file_brain_AXT1_0002.h5", kspace=brain_kspace[None],
                              attrs={"acquisition": "AXT1"})
    seen = {}
    real = figures.save_panels

    def spy(path, panels, **kw):
        seen.update(panels=panels, captions=kw.get("captions"))
        return real(path, panels, **kw)

    monkeypatch.setattr(figures, "save_panels", spy)
    res = reconstruct_file("zerofilled", src, tmp_path / "r.h5", acceleration=4, figure=tmp_path / "r.png",
                           progress=False)
    with h5py.File(res.output) as f:
        recon = torch.from_numpy(f["reconstruction"][0])
        assert f.attrs["input_sampling"] == "fully_sampled" and f.attrs["retrospective_undersampling"]
    target = torch.from_numpy(_rss_np(brain_kspace[None])[0]).float()
    mask = torch.from_numpy(_fastmri_mask(src.name, brain_kspace.shape[-1], 4, 0.08))
    zf = zero_filled(torch.from_numpy(brain_kspace), mask)
    torch.testing.assert_close(recon, zf, rtol=1e-4, atol=1e-6 * float(zf.max()))
    assert seen["captions"] == captions(target, {"zero-filled": zf, "reconstruction": recon})
    assert set(seen["panels"]) == {"target", "zero-filled", "reconstruction", "error x5"}
