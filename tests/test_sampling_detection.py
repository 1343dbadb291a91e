"""Sampling read from the data, one answer for every converter and reader.

Real fully sampled k-space (the 8-coil brain slice) is undersampled here with 1D, 2D Poisson-disc,
2D calibration-block, partial-Fourier and zero-padding patterns, written
through the ``bart``, ``array`` and ``ismrmrd`` converters (ISMRMRD files made with the
official ``ismrmrd`` package when it is installed); every output must report exactly the
applied mask and the same labels. Real undersampled data, a real image and bad masks follow.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mrizoo import SamplingInfo, detect_sampling, mask_from_any
from mrizoo._atomic import atomic_file
from mrizoo.data.bart import read_cfl, write_cfl
from mrizoo.data.convert import convert_bart, kspace_to_volume
from mrizoo.data.converters.generic import convert_array, convert_fastmri_h5, convert_ismrmrd
from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.data.synthetic import ellipse_phantom, simulate_multicoil
from mrizoo.data.writer import write_volume
from mrizoo.errors import InputError
from mrizoo.masks import create_mask

H, W = 230, 180


# ----------------------------------------------------------------------------- patterns
def _columns(step: int, offset: int, centre: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[:, offset::step] = True
    m[:, W // 2 - centre // 2 : W // 2 - centre // 2 + centre] = True
    return m


def _poisson() -> np.ndarray:
    return create_mask("poisson2d", (H, W), acceleration=6, calib=20, seed=3).mask.numpy()


def _calibration_block() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[:, 1::2] = True  # 2x outside the centre
    m[H // 2 - 12 : H // 2 + 12, W // 2 - 12 : W // 2 + 12] = True  # 24 x 24 calibration block
    return m


def _partial_fourier_cols() -> np.ndarray:
    m = _columns(2, 1, 24)
    m[:, :41] = False  # 41 phase-encode lines never acquired
    return m


def _partial_fourier_rows() -> np.ndarray:
    m = np.ones((H, W), bool)
    m[:50, :] = False  # asymmetric echo: 50 readout samples never acquired
    return m


def _zero_padded() -> np.ndarray:
    m = np.ones((H, W), bool)
    m[:10], m[-10:], m[:, :20], m[:, -20:] = False, False, False, False
    return m


# name -> (pattern, label, separable, partial_fourier, zero_padding, centre shape or None)
PATTERNS = {
    "1d-equispaced": (lambda: _columns(4, 1, 24), "undersampled", True, None, None, (H, 24)),
    "2d-poisson": (_poisson, "undersampled", False, None, None, None),
    "2d-calibration-block": (_calibration_block, "undersampled", False, None, None, (24, 24)),
    "partial-fourier-phase": (_partial_fourier_cols, "undersampled", True, {"W": ("low", 41)}, None, (H, 24)),
    "partial-fourier-readout": (_partial_fourier_rows, "fully_sampled", False, {"H": ("low", 50)}, None, None),
    "zero-padding": (_zero_padded, "fully_sampled", False, None, {"H": (10, 10), "W": (20, 20)}, (H - 20, W - 40)),
}


# ----------------------------------------------------------------------------- writers
def _ismrmrd_header(enc_h: int, enc_w: int) -> str:
    ns = "http://www.ismrm.org/ISMRMRD"
    return (
        f'<?xml version="1.0"?><ismrmrdHeader xmlns="{ns}"><encoding>'
        f"<encodedSpace><matrixSize><x>{enc_h}</x><y>{enc_w}</y><z>1</z></matrixSize>"
        f"<fieldOfView_mm><x>{enc_h}</x><y>{enc_w}</y><z>1</z></fieldOfView_mm></encodedSpace>"
        f"<reconSpace><matrixSize><x>{enc_h}</x><y>{enc_w}</y><z>1</z></matrixSize>"
        f"<fieldOfView_mm><x>{enc_h}</x><y>{enc_w}</y><z>1</z></fieldOfView_mm></reconSpace>"
        f"<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>{enc_w - 1}</maximum>"
        f"<center>{enc_w // 2}</center></kspace_encoding_step_1></encodingLimits>"
        "<trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"
    )


def _write_ismrmrd(path: Path, kspace: np.ndarray) -> None:
    """One acquisition per phase-encode line that holds samples ([coils, readout] each)."""
    lines = [j for j in range(kspace.shape[-1]) if np.any(kspace[..., j] != 0)]
    xml = _ismrmrd_header(kspace.shape[1], kspace.shape[2])
    try:
        import ismrmrd
    except ImportError:  # the file layout written with h5py alone
        from tests.test_converters import _write_ismrmrd as write_h5

        write_h5(path, [{"data": kspace[:, :, j], "kspace_encode_step_1": j} for j in lines], xml)
        return
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dset.write_xml_header(xml)
    for j in lines:
        acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(kspace[:, :, j]))
        acq.idx.kspace_encode_step_1 = j
        dset.append_acquisition(acq)
    dset.close()


def _convert_all(kspace: np.ndarray, tmp: Path) -> dict[str, Path]:
    """The same [C, H, W] k-space through the bart, array and ismrmrd converters."""
    write_cfl(tmp / "scan", np.transpose(kspace, (1, 2, 0))[None])  # BART dims 1 x H x W x C
    np.save(tmp / "scan.npy", kspace)
    _write_ismrmrd(tmp / "scan_ismrmrd.h5", kspace)
    convert_bart(tmp / "scan", tmp / "bart.h5")
    convert_array(tmp / "scan.npy", tmp / "array", axes="cxy")  # no slice axis: one slice
    convert_ismrmrd(tmp / "scan_ismrmrd.h5", tmp / "ismrmrd")
    return {"bart": tmp / "bart.h5", "array": tmp / "array" / "scan.h5",
            "ismrmrd": tmp / "ismrmrd" / "scan_ismrmrd.h5"}


@pytest.mark.parametrize("name", list(PATTERNS))
def test_every_converter_reports_exactly_the_applied_pattern(name, brain_kspace, tmp_path):
    make, label, separable, pf, zp, centre = PATTERNS[name]
    pattern = make()
    kspace = (brain_kspace * pattern[None]).astype(np.complex64)
    outputs = _convert_all(kspace, tmp_path)
    region = np.ones((H, W), bool)
    if pf and "W" in pf:
        region[:, : pf["W"][1]] = False
    if pf and "H" in pf:
        region[: pf["H"][1]] = False
    if zp:
        region[: zp["H"][0]], region[H - zp["H"][1] :] = False, False
        region[:, : zp["W"][0]], region[:, W - zp["W"][1] :] = False, False
    acceleration = 1.0 if label == "fully_sampled" else region.sum() / pattern.sum()
    for converter, path in outputs.items():
        with FastMRIVolume(path) as vol:
            info = vol.sampling_info()
            assert torch.equal(info.mask, torch.from_numpy(pattern)), converter
            assert (info.sampling, info.separable, info.partial_fourier, info.zero_padding) == (
                label, separable, pf, zp), converter
            assert info.acceleration == pytest.approx(acceleration), converter
            if centre is not None:
                assert info.center_shape == centre, converter
            attrs = vol.attrs
            assert attrs["sampling"] == label and attrs["acceleration"] == pytest.approx(acceleration)
            assert tuple(attrs["center_shape"]) == info.center_shape
            stored = vol.mask()
            assert stored is not None and tuple(stored.shape) == ((W,) if separable else (H, W))
            assert ("reconstruction_rss" in vol.keys) == (label == "fully_sampled"), converter
            # what the file holds, detected again from its k-space, is the same answer
            again = detect_sampling(vol.kspace(0))
            assert torch.equal(again.mask, info.mask) and again.sampling == label
            np.testing.assert_array_equal(vol.kspace(0).numpy(), kspace)


def test_real_poisson_scan_is_undersampled_with_a_2d_mask_and_no_target(realdata, tmp_path):
    kspace = np.load(realdata / "brain_t1_8ch_poisson_r8.npy")
    measured = np.any(kspace != 0, axis=0)
    result = convert_array(realdata / "brain_t1_8ch_poisson_r8.npy", tmp_path / "out", axes="cxy")
    path = result.outcomes[0].path
    with FastMRIVolume(path) as vol:
        info = vol.sampling_info()
        assert info.sampling == "undersampled" and not info.separable
        assert torch.equal(info.mask, torch.from_numpy(measured))
        assert info.acceleration == pytest.approx(measured.size / measured.sum())
        assert 7 < info.acceleration < 9 and info.center_shape[0] >= 16 and info.center_shape[1] >= 16
        assert vol.mask().shape == (H, W) and "reconstruction_rss" not in vol.keys and "max" not in vol.attrs
    again = convert_array(realdata / "brain_t1_8ch_poisson_r8.npy", tmp_path / "out", axes="cxy")
    assert [o.status for o in again.outcomes] == ["skipped"]  # a finished undersampled volume is complete
    assert "undersampled 8.04x (2D pattern" in result.outcomes[0].sampling
    # the bart converter and a direct call give the same answer for the same array
    write_cfl(tmp_path / "p", np.transpose(kspace, (1, 2, 0))[None])
    bart = convert_bart(tmp_path / "p", tmp_path / "p.h5")
    assert bart.undersampled and bart.target_shape is None and torch.equal(bart.sampling_info.mask, info.mask)
    assert "undersampled 8.04x (2D pattern" in bart.summary()


def test_a_reconstructed_image_is_refused_and_nothing_is_written(realdata, tmp_path):
    with pytest.raises(InputError, match="looks like an image, not k-space") as err:
        convert_bart(realdata / "knee_image_1map", tmp_path / "knee.h5")
    assert "knee_image_1map.cfl" in str(err.value)
    assert not list(tmp_path.iterdir())


def test_real_and_synthetic_kspace_are_accepted(brain_kspace):
    assert detect_sampling(brain_kspace).fully_sampled
    image = ellipse_phantom((96, 80)).to(torch.complex64)
    kspace, _ = simulate_multicoil(image, num_coils=4, snr_db=25, seed=1)
    assert detect_sampling(kspace).fully_sampled
    with pytest.raises(InputError, match="looks like an image"):  # the phantom's coil images themselves
        detect_sampling(torch.fft.ifftshift(torch.fft.ifft2(torch.fft.fftshift(kspace, dim=(-2, -1))),
                                            dim=(-2, -1)))
    noise = np.random.default_rng(0).standard_normal((4, 32, 32)) * (1 + 1j)
    assert detect_sampling(noise).fully_sampled  # no structure either way: not refused


def test_bad_kspace_is_refused():
    with pytest.raises(InputError, match="all zeros"):
        detect_sampling(np.zeros((2, 8, 8), np.complex64))
    bad = np.ones((2, 8, 8), np.complex64)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        detect_sampling(bad)
    with pytest.raises(InputError, match="at least two dimensions"):
        detect_sampling(np.ones(8, np.complex64))


def test_mask_from_any_accepts_every_layout_and_refuses_bad_masks():
    cols = np.zeros(12, bool)
    cols[[1, 5, 6, 9]] = True
    full = np.broadcast_to(cols, (10, 12))
    for layout in (cols, cols.astype(np.float32), torch.from_numpy(cols)[None, None],
                   torch.from_numpy(cols)[None, None, :, None].float(), full, full.astype(np.uint8)):
        assert torch.equal(mask_from_any(layout, (10, 12)), torch.from_numpy(full.copy()))
    batch = mask_from_any(np.stack([full, ~full]), (10, 12))
    assert batch.shape == (2, 10, 12)
    assert mask_from_any(torch.from_numpy(cols)[None, None, None, :, None].expand(3, 1, 1, 12, 1), (10, 12)).shape == (3, 10, 12)
    with pytest.raises(InputError, match="0 or 1"):
        mask_from_any(cols * 0.5, (10, 12))
    with pytest.raises(InputError, match="samples nothing"):
        mask_from_any(np.zeros(12), (10, 12))
    with pytest.raises(InputError, match="samples nothing"):
        mask_from_any(np.stack([full, np.zeros_like(full)]), (10, 12))
    with pytest.raises(InputError, match="does not fit") as err:
        mask_from_any(np.ones(11), (10, 12), path="scan.h5")
    assert "scan.h5" in str(err.value) and "[12]" in str(err.value)


def test_volume_sampling_info_from_data_stored_attrs_and_disagreements(brain_kspace, tmp_path):
    pattern = _calibration_block()
    kspace = (brain_kspace * pattern[None])[None].astype(np.complex64)
    # a file from elsewhere (no sampling attribute): read from the data, cached
    write_volume(tmp_path / "foreign.h5", kspace=kspace)
    with FastMRIVolume(tmp_path / "foreign.h5") as vol:
        info = vol.sampling_info()
        assert isinstance(info, SamplingInfo) and info is vol.sampling_info()
        assert torch.equal(info.mask, torch.from_numpy(pattern)) and info.center_shape == (24, 24)
    # a column mask that misses measured samples is refused
    write_volume(tmp_path / "lying.h5", kspace=kspace, mask=np.ones(W, bool) & (np.arange(W) % 2 == 1))
    with FastMRIVolume(tmp_path / "lying.h5") as vol, pytest.raises(InputError, match="where the stored mask says"):
        vol.sampling_info()
    # a sampling attribute that disagrees with the stored mask is refused
    write_volume(tmp_path / "label.h5", kspace=kspace, mask=pattern, attrs={"sampling": "fully_sampled"})
    with FastMRIVolume(tmp_path / "label.h5") as vol, pytest.raises(InputError, match="disagrees with the stored mask"):
        vol.sampling_info()


def test_same_array_same_answer_with_88_zero_columns(brain_kspace, tmp_path):
    """Zero columns at both edges (zero padding) read alike by bart, array and a direct call."""
    padded = np.zeros((8, H, 268), np.complex64)
    padded[:, :, 44:224] = brain_kspace
    write_cfl(tmp_path / "z", np.transpose(padded, (1, 2, 0))[None])
    np.save(tmp_path / "z.npy", padded)
    bart = convert_bart(tmp_path / "z", tmp_path / "z.h5").sampling_info
    convert_array(tmp_path / "z.npy", tmp_path / "arr", axes="cxy")
    with FastMRIVolume(tmp_path / "arr" / "z.h5") as vol:
        array = vol.sampling_info()
    direct = kspace_to_volume(padded[None], tmp_path / "direct.h5").sampling_info
    for info in (bart, array, direct):
        assert info.fully_sampled and info.zero_padding == {"W": (44, 44)} and info.acceleration == 1.0


def test_image_space_steps_keep_exact_zeros(brain_kspace, tmp_path):
    """A flipped view is transformed through image space; unmeasured samples stay exact zeros."""
    pattern = _calibration_block()
    np.save(tmp_path / "s.npy", (brain_kspace * pattern[None]).astype(np.complex64))
    convert_array(tmp_path / "s.npy", tmp_path / "out", axes="cxy", flip_rows=True, flip_cols=True)
    with FastMRIVolume(tmp_path / "out" / "s.h5") as vol:
        info = vol.sampling_info()
    flipped = pattern[(H - np.arange(H)) % H][:, (W - np.arange(W)) % W]  # centred k-space mirror
    assert torch.equal(info.mask, torch.from_numpy(flipped)) and info.sampling == "undersampled"


def test_array_without_the_default_slice_axis_and_a_wrong_one(brain_kspace, tmp_path):
    np.save(tmp_path / "b.npy", brain_kspace)
    convert_array(tmp_path / "b.npy", tmp_path / "out", axes="cxy")
    with FastMRIVolume(tmp_path / "out" / "b.h5") as vol:
        assert vol.kspace_shape == (1, 8, H, W) and vol.sampling_info().fully_sampled
    with pytest.raises(InputError, match="--slice-axis z"):
        convert_array(tmp_path / "b.npy", tmp_path / "out2", axes="cxy", slice_axis="z")


def test_outputs_never_replace_an_input(brain_kspace, tmp_path):
    from tests.test_converters import _cli

    write_cfl(tmp_path / "X", np.transpose(brain_kspace, (1, 2, 0))[None])
    before = (tmp_path / "X.cfl").read_bytes()
    for dest in ("X.cfl", "X.hdr"):
        with pytest.raises(InputError, match="would replace an input file"):
            _cli(["convert", "bart", str(tmp_path / "X"), str(tmp_path / dest), "--overwrite"])
    assert (tmp_path / "X.cfl").read_bytes() == before and read_cfl(tmp_path / "X").shape == (1, H, W, 8)
    kspace_to_volume(brain_kspace[None], tmp_path / "v.h5")
    with pytest.raises(InputError, match="would replace an input file"):
        convert_fastmri_h5(tmp_path / "v.h5", tmp_path, overwrite=True)
    with FastMRIVolume(tmp_path / "v.h5") as vol:
        assert vol.sampling_info().fully_sampled


def test_outputs_get_the_users_umask(brain_kspace, tmp_path):
    old = os.umask(0o027)
    try:
        path = kspace_to_volume(brain_kspace[None], tmp_path / "v.h5").path
        with atomic_file(tmp_path / "t.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "t.txt").stat().st_mode) == 0o640
    with h5py.File(path) as f:
        assert f.attrs["sampling"] == "fully_sampled"
