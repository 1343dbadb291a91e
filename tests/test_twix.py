"""Siemens twix raw data -> fastMRI volumes (``mrizoo convert twix``).

The real single-channel 7T file is converted and checked sample by sample against the raw
lines as twixtools' low-level reader returns them, and its target against the fastMRI RSS
oracle. A multi-coil, multi-slice, two-average file is made here with twixtools' own writer
from the real lines, so the expected k-space of every slice and coil is known.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from mrizoo.data.converters.twix import convert_twix, read_twix_kspace
from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.errors import InputError

twixtools = pytest.importorskip("twixtools")
fastmri = pytest.importorskip("fastmri")
from fastmri.data import transforms as fm_transforms  # noqa: E402


@pytest.fixture(scope="module")
def twix_file(realdata: Path) -> Path:
    return realdata / "siemens_7t_gre_1ch.dat"


def _raw_scan(path: Path) -> dict:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return twixtools.read_twix(str(path), verbose=False)[-1]


def test_real_twix_file_keeps_oversampling_and_reports_the_asymmetric_echo(twix_file, tmp_path):
    from tests.test_converters import _cli

    assert _cli(["convert", "twix", str(twix_file), str(tmp_path / "gre.h5")]) == 0
    lines = [m for m in _raw_scan(twix_file)["mdb"] if m.is_image_scan()]
    samples = lines[0].data.shape[-1]
    centre = lines[0].mdh.CenterCol
    full = 2 * (samples - centre)  # the echo sits at the centre of the full readout
    with FastMRIVolume(tmp_path / "gre.h5") as vol:
        kspace = vol.kspace(0).numpy()
        assert kspace.shape == (1, full, 256) and full == 512
        start = full // 2 - centre
        expected = np.zeros((1, full, 256), np.complex64)
        for m in lines:
            expected[:, start : start + samples, m.cLin] = m.data
        np.testing.assert_array_equal(kspace, expected)
        info = vol.sampling_info()
        assert info.fully_sampled and info.partial_fourier == {"H": ("low", start)} and start == 84
        assert info.mask[start:].all() and not info.mask[:start].any()
        # target: the RSS image with the 2x readout oversampling cropped away (fastMRI oracle)
        image = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(fm_transforms.to_tensor(kspace))), dim=0)
        oracle = fm_transforms.center_crop(image, (256, 256)).numpy()
        np.testing.assert_allclose(vol.target(0).numpy(), oracle, rtol=1e-4, atol=1e-4 * oracle.max())
        assert vol.header.recon == (256, 256, 1) and vol.header.encoded == (512, 256, 1)
        attrs = vol.attrs
        assert attrs["acquisition"] == "localizer" and attrs["readout_oversampling"] == 2.0
        assert "patient_id" not in attrs and attrs["sampling"] == "fully_sampled"


def test_multicoil_slices_and_averages_from_a_written_twix_file(twix_file, tmp_path):
    scan = _raw_scan(twix_file)
    lines = [m for m in scan["mdb"] if m.is_image_scan()]
    made = []
    for m in lines:
        for sli in range(2):
            for ave in range(2):  # average 1 differs: the mean is what a scanner's average gives
                local = m.convert_to_local()
                d = m.data
                local.data = np.concatenate([d * (1 + sli) * (1 + 0.5 * ave), 1j * d * (1 + sli) * (1 - 0.5 * ave)])
                local.mdh.Counter.Sli, local.mdh.Counter.Ave = sli, ave
                made.append(local)
    made += [m.convert_to_local() for m in scan["mdb"] if not m.is_image_scan()]
    with contextlib.redirect_stdout(io.StringIO()):
        twixtools.write_twix([{**scan, "mdb": made}], str(tmp_path / "multi.dat"))
    single, _ = read_twix_kspace(twix_file)
    result = convert_twix(tmp_path / "multi.dat", tmp_path / "multi.h5")
    assert result.kspace_shape == (2, 2, 512, 256) and result.target_shape == (2, 256, 256)
    with FastMRIVolume(tmp_path / "multi.h5") as vol:
        for sli in range(2):
            k = vol.kspace(sli).numpy()
            np.testing.assert_allclose(k[0], (1 + sli) * 1.25 * single[0, 0], rtol=1e-5, atol=1e-9)
            np.testing.assert_allclose(k[1], (1 + sli) * 0.75j * single[0, 0], rtol=1e-5, atol=1e-9)
        assert torch.equal(vol.sampling_info().mask, result.sampling_info.mask)


def test_twix_input_errors(twix_file, tmp_path):
    (tmp_path / "notes.dat").write_text("not raw data\n" * 100)
    with pytest.raises(InputError, match="not a readable Siemens raw-data") as err:
        convert_twix(tmp_path / "notes.dat", tmp_path / "a.h5")
    assert "notes.dat" in str(err.value)
    with pytest.raises(InputError, match="source file not found"):
        convert_twix(tmp_path / "missing.dat", tmp_path / "a.h5")
    with pytest.raises(InputError, match="would replace an input file"):
        convert_twix(tmp_path / "notes.dat", tmp_path / "notes.dat", overwrite=True)
    with pytest.raises(InputError, match="cannot select these dimensions"):
        convert_twix(twix_file, tmp_path / "a.h5", select={"Lin": 0})
    with pytest.raises(InputError, match="a selection is DIM=INDEX"):
        convert_twix(twix_file, tmp_path / "a.h5", select=["Eco"])
    with pytest.raises(InputError, match="measurement index out of range"):
        convert_twix(twix_file, tmp_path / "a.h5", measurement=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.dat"]
