"""Converters to fastMRI volumes: the registry, the BART converter and the ``mrizoo convert`` CLI."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mrizoo.data.convert as convert_mod
from mrizoo.data.bart import read_cfl, write_cfl
from mrizoo.data.convert import (
    available_converters,
    bart_to_kspace,
    convert_bart,
    convert_to_fastmri,
    get_converter,
    register_converter,
)
from mrizoo.data.fastmri_h5 import FastMRIVolume, HeaderSizes
from mrizoo.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
fastmri = pytest.importorskip("fastmri")
from fastmri.data import transforms as fm_transforms  # noqa: E402


def _fastmri_rss(kspace_chw: np.ndarray) -> np.ndarray:
    """Reference RSS image with the fastMRI package: rss(|ifft2c(k)|) over coils."""
    image = fastmri.ifft2c(fm_transforms.to_tensor(kspace_chw))
    return fastmri.rss(fastmri.complex_abs(image), dim=0).numpy()


@pytest.fixture(scope="module")
def brain_cfl(realdata: Path) -> Path:
    return realdata / "brain_t1_8ch_full"


@pytest.fixture(scope="module")
def brain_chw(brain_cfl: Path) -> np.ndarray:
    return np.ascontiguousarray(np.squeeze(read_cfl(brain_cfl)).transpose(2, 0, 1))


# ----------------------------------------------------------------------------- real brain
def test_bart_brain_slice_matches_direct_rss(tmp_path, brain_cfl, brain_chw):
    out = tmp_path / "brain.h5"
    result = convert_bart(brain_cfl, out, crop=(200, 160), acquisition="AXT1", patient_id="p1")
    assert result.path == out and not result.undersampled and result.kspace_shape == (1, 8, 230, 180)
    reference = fm_transforms.center_crop(torch.from_numpy(_fastmri_rss(brain_chw)), (200, 160)).numpy()
    with FastMRIVolume(out) as vol:
        assert vol.kspace_shape == (1, 8, 230, 180)
        np.testing.assert_array_equal(vol.kspace(0).numpy(), brain_chw)
        target = vol.target(0).numpy()
        assert target.shape == (200, 160)
        np.testing.assert_allclose(target, reference, rtol=1e-4, atol=1e-4 * reference.max())
        attrs = vol.attrs
        assert attrs["max"] == pytest.approx(reference.max(), rel=1e-5)
        assert attrs["norm"] == pytest.approx(np.linalg.norm(reference), rel=1e-5)
        assert attrs["acquisition"] == "AXT1" and attrs["patient_id"] == "p1"
        assert vol.header == HeaderSizes(encoded=(230, 180, 1), recon=(200, 160, 1))
        assert vol.mask() is None


def test_bart_brain_default_is_full_size_and_fastmri_loader_reads_it(tmp_path, brain_cfl, brain_chw):
    mri_data = pytest.importorskip("fastmri.data.mri_data")
    folder = tmp_path / "multicoil_train"
    folder.mkdir()
    convert_to_fastmri("bart", str(brain_cfl) + ".cfl", folder / "brain.h5")  # NAME.cfl works as well as NAME
    kspace, mask, target, attrs, fname, _ = mri_data.SliceDataset(folder, "multicoil")[0]
    np.testing.assert_array_equal(kspace, brain_chw)
    assert mask is None and target.shape == (230, 180)
    ref = _fastmri_rss(brain_chw)
    np.testing.assert_allclose(target, ref, rtol=1e-4, atol=1e-4 * ref.max())
    assert attrs["encoding_size"] == (230, 180, 1) and attrs["recon_size"] == (230, 180, 1)


def test_bart_undersampled_input_stores_the_column_mask(tmp_path, brain_chw):
    columns = np.zeros(180, dtype=bool)
    columns[::4] = True
    columns[80:100] = True
    under = brain_chw * columns
    src = tmp_path / "under"
    write_cfl(src, under.transpose(1, 2, 0)[None])  # BART dims (1, 230, 180, 8), like the real file
    result = convert_bart(src, tmp_path / "under.h5")
    assert result.undersampled and result.sampled_columns == int(columns.sum())
    assert result.target_shape is None and "undersampled" in result.summary()
    with FastMRIVolume(tmp_path / "under.h5") as vol:
        np.testing.assert_array_equal(vol.mask().numpy(), columns)
        np.testing.assert_array_equal(vol.kspace(0).numpy(), under)
        assert vol.target_keys == []
        assert "max" not in vol.attrs


# ----------------------------------------------------------------------------- layouts
def _random_k(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_bart_2d_xy_layout_and_slice_dimension():
    k = _random_k((12, 10, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5))  # x, y, coil, slice
    out = bart_to_kspace(k)
    assert out.shape == (5, 3, 12, 10)
    for s in range(5):
        np.testing.assert_array_equal(out[s], k[:, :, 0, :, 0, 0, 0, 0, 0, 0, 0, 0, 0, s].transpose(2, 0, 1))


def test_bart_3d_volume_is_cut_into_slices_after_a_1d_ifft(tmp_path):
    k3 = _random_k((6, 8, 10, 2), seed=1)  # x, y, z, coil
    src = tmp_path / "vol3d"
    write_cfl(src, k3)
    with pytest.raises(InputError, match="3D k-space") as err:
        convert_bart(src, tmp_path / "a.h5")
    assert "--slice-axis" in str(err.value)
    assert not (tmp_path / "a.h5").exists()
    result = convert_bart(src, tmp_path / "a.h5", slice_axis="x")
    assert result.kspace_shape == (6, 2, 8, 10)
    hybrid = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(k3, axes=0), axis=0, norm="ortho"), axes=0)
    with FastMRIVolume(tmp_path / "a.h5") as vol:
        for s in range(6):
            np.testing.assert_allclose(vol.kspace(s).numpy(), hybrid[s].transpose(2, 0, 1),
                                       rtol=1e-5, atol=1e-5)
    out = bart_to_kspace(k3, slice_axis="z", slice_ifft=False)
    np.testing.assert_array_equal(out, k3.transpose(2, 3, 0, 1))


def test_bart_rejects_unsupported_layouts():
    with pytest.raises(InputError, match="unsupported BART dimensions") as err:
        bart_to_kspace(_random_k((8, 8, 1, 2, 2)))  # two ESPIRiT maps
    assert "map" in str(err.value)
    with pytest.raises(InputError, match="not a 2D image"):
        bart_to_kspace(_random_k((8, 1, 1, 4)))
    with pytest.raises(InputError, match="unknown slice axis"):
        bart_to_kspace(_random_k((8, 8, 8)), slice_axis="t")
    with pytest.raises(InputError, match="must be complex"):
        bart_to_kspace(np.ones((8, 8)))


def test_bart_bad_crop_and_missing_input(tmp_path, brain_cfl):
    with pytest.raises(InputError, match="crop must fit") as err:
        convert_bart(brain_cfl, tmp_path / "x.h5", crop=(320, 320))
    assert "230" in str(err.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="not found"):
        convert_bart(tmp_path / "nothing", tmp_path / "x.h5")


# ----------------------------------------------------------------------------- registry
@pytest.fixture
def isolated_registry(monkeypatch):
    monkeypatch.setattr(convert_mod, "_REGISTRY", dict(convert_mod._REGISTRY))


def test_registry_lists_bart_and_refuses_duplicates(isolated_registry):
    assert "bart" in available_converters()
    assert get_converter("bart").func is convert_bart
    with pytest.raises(InputError, match="already registered"):
        register_converter("bart")(lambda *a, **k: None)
    with pytest.raises(InputError, match="unknown source format") as err:
        get_converter("dicom-ish")
    assert "bart" in str(err.value)
    with pytest.raises(InputError, match="lower-case word"):
        register_converter("Bad Name")


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--coils", type=int, default=2)


def test_a_registered_converter_gets_its_own_cli_subcommand(tmp_path, isolated_registry, capsys):
    """A converter added to the registry is offered by ``convert`` with its own arguments."""
    from mrizoo.cli import convert as cli_convert

    @register_converter("npy", help="numpy k-space [C, H, W]", add_arguments=_demo_arguments)
    def convert_npy(source, dest, *, coils=2, overwrite=False):
        k = np.load(source)[:coils][None]
        return convert_mod.kspace_to_volume(k, dest, overwrite=overwrite)

    np.save(tmp_path / "k.npy", _random_k((4, 8, 6)))
    parser = argparse.ArgumentParser(prog="mrizoo")
    cli_convert.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["convert", "npy", str(tmp_path / "k.npy"), str(tmp_path / "k.h5"), "--coils", "3"]
    )
    assert args.func(args) == 0
    assert "wrote" in capsys.readouterr().out
    with FastMRIVolume(tmp_path / "k.h5") as vol:
        assert vol.kspace_shape == (1, 3, 8, 6)


# ----------------------------------------------------------------------------- CLI
def _main_or_skip():
    """``mrizoo.cli.main`` when the whole command line imports (all command modules present)."""
    from mrizoo import cli

    try:
        cli.build_parser()
    except ImportError as err:
        pytest.skip(f"the mrizoo command line does not import yet: {err}")
    return cli.main


def test_cli_convert_bart_in_process(tmp_path, brain_cfl, capsys):
    main = _main_or_skip()
    out = tmp_path / "brain.h5"
    assert main(["convert", "bart", str(brain_cfl), str(out), "--crop", "200", "160"]) == 0
    assert "wrote" in capsys.readouterr().out
    with FastMRIVolume(out) as vol:
        assert vol.target(0).shape == (200, 160)
    assert main(["convert", "bart", str(brain_cfl), str(out)]) == 2
    err = capsys.readouterr().err
    assert "file exists" in err and "brain.h5" in err
    assert main(["convert", "bart", str(brain_cfl), str(out), "--overwrite"]) == 0
    with FastMRIVolume(out) as vol:
        assert vol.target(0).shape == (230, 180)
    with pytest.raises(SystemExit):
        main(["convert", "no-such-format", "a", "b"])


def test_cli_convert_bart_subprocess(tmp_path, brain_cfl):
    _main_or_skip()
    out = tmp_path / "brain.h5"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "mrizoo", "convert", "bart", str(brain_cfl), str(out), "--crop", "64", "64"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with FastMRIVolume(out) as vol:
        assert vol.header == HeaderSizes((230, 180, 1), (64, 64, 1))
    proc = subprocess.run(
        [sys.executable, "-m", "mrizoo", "convert", "bart", str(tmp_path / "missing"),
         str(tmp_path / "m.h5")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 2 and "mrizoo convert: error:" in proc.stderr and "missing" in proc.stderr
