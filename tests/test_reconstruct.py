"""``mrizoo reconstruct``: volumes in, fastMRI-convention reconstructions out."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import mrizoo
from mrizoo.data.synthetic import make_test_volume
from mrizoo.errors import InputError
from mrizoo.hub.format import save_pretrained
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


def test_cli_folder(volume, tmp_path, monkeypatch, capsys):
    import mrizoo.cli as cli

    monkeypatch.setattr(cli, "_COMMANDS", (*cli._COMMANDS, "reconstruct"))
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
