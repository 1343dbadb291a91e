"""NIfTI outputs: `reconstruct --format nifti` and `mrizoo export`, read back with nibabel."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

nib = pytest.importorskip("nibabel", reason="nibabel is a dependency of mrizoo; install it")

from mrizoo.cli import main  # noqa: E402
from mrizoo.data.nifti import affine_from_header, export_nifti  # noqa: E402
from mrizoo.demo.scan import demo_scan_path  # noqa: E402
from mrizoo.errors import InputError  # noqa: E402
from mrizoo.reconstruct import reconstruct_file  # noqa: E402

HEADER = """<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>
<encodedSpace><matrixSize><x>480</x><y>180</y><z>1</z></matrixSize>
<fieldOfView_mm><x>480</x><y>216</y><z>5</z></fieldOfView_mm></encodedSpace>
<reconSpace><matrixSize><x>240</x><y>180</y><z>1</z></matrixSize>
<fieldOfView_mm><x>240</x><y>216</y><z>5</z></fieldOfView_mm></reconSpace></encoding></ismrmrdHeader>"""


def _comment(img) -> dict:
    return json.loads(img.header.extensions[0].get_content())


def test_affine_from_header_uses_the_matching_space() -> None:
    enc = affine_from_header(HEADER, (480, 180))  # full readout (oversampled): encoded space
    assert np.allclose(np.diag(enc), [216 / 180, 1.0, 5.0, 1.0])
    rec = affine_from_header(HEADER, (240, 180))
    assert np.allclose(np.diag(rec), [1.2, 1.0, 5.0, 1.0])
    assert np.array_equal(affine_from_header(None, (4, 4)), np.eye(4))
    assert np.array_equal(affine_from_header(b"<not xml", (4, 4)), np.eye(4))


def test_reconstruct_nifti_matches_h5_and_keeps_posterior_volumes(tmp_path: Path) -> None:
    scan = demo_scan_path()
    h5_out, nii_out = tmp_path / "zf.h5", tmp_path / "zf.nii.gz"
    reconstruct_file("zerofilled", scan, h5_out, progress=False)
    assert main(["reconstruct", "zerofilled", str(scan), str(nii_out), "--format", "nifti", "--no-progress"]) == 0
    with h5py.File(h5_out) as f:
        recon = f["reconstruction"][()]  # [1, 230, 180]
        assert "ismrmrd_header" in f.attrs
    img = nib.load(str(nii_out))
    assert img.shape == (180, 230, 1)
    assert np.allclose(np.asarray(img.dataobj), recon.transpose(2, 1, 0))
    assert np.allclose(img.affine, np.eye(4))  # the shipped header: 1 mm voxels (230 mm / 230, 180 mm / 180)
    assert _comment(img)["model"] == "zerofilled"

    post = tmp_path / "rcgan.nii.gz"
    reconstruct_file("rcgan-mini-r4", scan, post, samples=2, save_samples=True, progress=False, format="nifti")
    img = nib.load(str(post))
    assert img.shape == (180, 230, 1, 4)
    assert _comment(img)["volumes"] == ["reconstruction", "std", "sample 0", "sample 1"]
    data = np.asarray(img.dataobj)
    assert np.allclose(data[..., 0], data[..., 2:].mean(-1), atol=1e-4)  # volume 0 is the sample mean
    assert b"std" in bytes(img.header["descrip"])


def test_format_and_name_must_agree(tmp_path: Path, capsys) -> None:
    scan = str(demo_scan_path())
    assert main(["reconstruct", "zerofilled", scan, str(tmp_path / "a.nii.gz"), "--no-progress"]) == 2
    assert "a .nii/.nii.gz output needs --format nifti" in capsys.readouterr().err
    assert main(["reconstruct", "zerofilled", scan, str(tmp_path / "a.h5"), "--format", "nifti"]) == 2
    assert "--format nifti writes a .nii or .nii.gz file" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_export_reads_back_with_header_affine(tmp_path: Path, capsys) -> None:
    src = tmp_path / "out.h5"
    rng = np.random.default_rng(0)
    recon = rng.random((3, 480, 180), dtype=np.float32)
    std = rng.random((3, 480, 180), dtype=np.float32)
    with h5py.File(src, "w") as f:
        f["reconstruction"], f["std"] = recon, std
        f["ismrmrd_header"] = HEADER
        f.attrs["model"] = "m"
    out = tmp_path / "out.nii.gz"
    assert main(["export", str(src), str(out)]) == 0
    assert "shape (180, 480, 3, 2)" in capsys.readouterr().out
    img = nib.load(str(out))
    assert np.allclose(np.diag(img.affine), [1.2, 1.0, 5.0, 1.0])
    data = np.asarray(img.dataobj)
    assert np.array_equal(data[..., 0], recon.transpose(2, 1, 0))
    assert np.array_equal(data[..., 1], std.transpose(2, 1, 0))
    assert img.header.get_xyzt_units()[0] == "mm"


def test_export_bad_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f["kspace"] = np.zeros((1, 4, 4), np.complex64)
    with pytest.raises(InputError, match="no reconstruction in the file"):
        export_nifti(empty, tmp_path / "x.nii.gz")
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(InputError, match="not an HDF5 file"):
        export_nifti(text, tmp_path / "x.nii.gz")
    with pytest.raises(InputError, match="input file not found"):
        export_nifti(tmp_path / "missing.h5", tmp_path / "x.nii.gz")
    with pytest.raises(InputError, match="needs a .nii or .nii.gz name"):
        export_nifti(empty, tmp_path / "x.png")
    (tmp_path / "taken.nii.gz").write_bytes(b"keep")
    with h5py.File(empty, "a") as f:
        f["reconstruction"] = np.zeros((1, 4, 4), np.float32)
    with pytest.raises(InputError, match="output exists"):
        export_nifti(empty, tmp_path / "taken.nii.gz")
    assert (tmp_path / "taken.nii.gz").read_bytes() == b"keep"
    assert not (tmp_path / "x.nii.gz").exists()
