"""Folder converters to fastMRI volumes: 3D views, hybrid and multi-echo arrays, ISMRMRD, MAT,
fastMRI pass-through, the catalog settings, resumability and parallel runs.

Every synthetic source is made from known complex coil images by forward FFTs written here,
so a converted ``reconstruction_rss`` must equal the RSS of those images after the
documented view cut, dropped slices, flips and scale; the stored k-space is checked against
its target with the fastMRI package.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mrizoo.data.convert import available_converters, get_converter
from mrizoo.data.converters import ConversionFailedError, ConversionSpec, ViewGeometry, convert_folder
from mrizoo.data.converters.batch import OutputView, output_state
from mrizoo.data.converters.catalog_converters import convert_dataset
from mrizoo.data.converters.generic import convert_array, convert_fastmri_h5, convert_ismrmrd
from mrizoo.data.fastmri_h5 import FastMRIVolume, HeaderSizes
from mrizoo.data.writer import make_ismrmrd_header, write_volume
from mrizoo.errors import InputError

fastmri = pytest.importorskip("fastmri")
from fastmri.data import transforms as fm_transforms  # noqa: E402

RNG = np.random.default_rng(7)


# ----------------------------------------------------------------------------- oracles
def _fft_centred(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Centred orthonormal forward FFT (image -> k-space), written out here as the reference."""
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(a, axes=axes), axes=axes, norm="ortho"), axes=axes)


def _images(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(np.complex64)


def _rss(images: np.ndarray, coil_axis: int) -> np.ndarray:
    return np.sqrt((np.abs(images) ** 2).sum(axis=coil_axis))


def _fastmri_rss(kspace_chw: np.ndarray) -> np.ndarray:
    image = fastmri.ifft2c(fm_transforms.to_tensor(np.ascontiguousarray(kspace_chw)))
    return fastmri.rss(fastmri.complex_abs(image), dim=0).numpy()


def _crop(x: np.ndarray, h: int, w: int) -> np.ndarray:
    return fm_transforms.center_crop(torch.from_numpy(np.ascontiguousarray(x)), (h, w)).numpy()


def _expected_view(coil_images: np.ndarray, axes: str, slice_axis: str, rows: str, cols: str, *,
                   drop: tuple[int, int] = (0, 0), flip_rows: bool = False, flip_cols: bool = False,
                   scale: float = 1.0) -> np.ndarray:
    """RSS of known coil images ``[..]`` (letters ``axes``, incl. ``c``) cut as a view."""
    rss = _rss(coil_images, axes.index("c"))
    rest = axes.replace("c", "")
    rss = np.transpose(rss, [rest.index(a) for a in (slice_axis, rows, cols)])
    rss = rss[drop[0] : rss.shape[0] - drop[1]]
    if flip_rows:
        rss = rss[:, ::-1, :]
    if flip_cols:
        rss = rss[:, :, ::-1]
    return rss * scale


def _check_volume(path: Path, expected: np.ndarray, *, rtol: float = 2e-4) -> None:
    """Target equals ``expected``; each stored k-space slice reproduces its target (fastMRI oracle)."""
    with FastMRIVolume(path) as vol:
        assert vol.num_slices == expected.shape[0]
        target = np.stack([vol.target(i).numpy() for i in range(vol.num_slices)])
        np.testing.assert_allclose(target, expected, rtol=rtol, atol=rtol * expected.max())
        h, w = vol.kspace_shape[-2:]
        assert vol.header.encoded == (h, w, 1)
        assert vol.header.recon == (target.shape[-2], target.shape[-1], 1)
        for i in (0, vol.num_slices - 1):
            full = _fastmri_rss(vol.kspace(i).numpy())
            np.testing.assert_allclose(_crop(full, *target.shape[-2:]), target[i], rtol=rtol,
                                       atol=rtol * expected.max())
        assert vol.attrs["max"] == pytest.approx(float(target.max()), rel=1e-6)


# ----------------------------------------------------------------------------- ISMRMRD files
_IDX = np.dtype([(n, "<u2") for n in ("kspace_encode_step_1", "kspace_encode_step_2", "average", "slice",
                                      "contrast", "phase", "repetition", "set", "segment")] + [("user", "<u2", (8,))])
_HEAD = np.dtype([
    ("version", "<u2"), ("flags", "<u8"), ("measurement_uid", "<u4"), ("scan_counter", "<u4"),
    ("acquisition_time_stamp", "<u4"), ("physiology_time_stamp", "<u4", (3,)), ("number_of_samples", "<u2"),
    ("available_channels", "<u2"), ("active_channels", "<u2"), ("channel_mask", "<u8", (16,)),
    ("discard_pre", "<u2"), ("discard_post", "<u2"), ("center_sample", "<u2"), ("encoding_space_ref", "<u2"),
    ("trajectory_dimensions", "<u2"), ("sample_time_us", "<f4"), ("position", "<f4", (3,)),
    ("read_dir", "<f4", (3,)), ("phase_dir", "<f4", (3,)), ("slice_dir", "<f4", (3,)),
    ("patient_table_position", "<f4", (3,)), ("idx", _IDX), ("user_int", "<i4", (8,)), ("user_float", "<f4", (8,)),
])
_NOISE_FLAG = 1 << 18  # ISMRMRD_ACQ_IS_NOISE_MEASUREMENT = bit 19


def _ismrmrd_xml(enc: tuple[int, int, int], recon: tuple[int, int, int], *, center_y: int, extra: str = "") -> str:
    ns = "http://www.ismrm.org/ISMRMRD"
    return (
        f'<?xml version="1.0"?><ismrmrdHeader xmlns="{ns}">{extra}<encoding>'
        f"<encodedSpace><matrixSize><x>{enc[0]}</x><y>{enc[1]}</y><z>{enc[2]}</z></matrixSize></encodedSpace>"
        f"<reconSpace><matrixSize><x>{recon[0]}</x><y>{recon[1]}</y><z>{recon[2]}</z></matrixSize></reconSpace>"
        f"<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>{enc[1] - 1}</maximum>"
        f"<center>{center_y}</center></kspace_encoding_step_1>"
        f"<kspace_encoding_step_2><minimum>0</minimum><maximum>{enc[2] - 1}</maximum>"
        f"<center>{enc[2] // 2}</center></kspace_encoding_step_2></encodingLimits>"
        "<trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"
    )


def _write_ismrmrd(path: Path, lines: list[dict], xml: str) -> None:
    """An ISMRMRD-layout file: group 'dataset' with 'xml' and the compound 'data' of acquisitions."""
    acq = np.dtype([("head", _HEAD), ("traj", h5py.vlen_dtype(np.float32)), ("data", h5py.vlen_dtype(np.float32))])
    table = np.zeros(len(lines), dtype=acq)
    for i, line in enumerate(lines):
        data = np.ascontiguousarray(line["data"], dtype=np.complex64)  # [coils, samples]
        head = table[i]["head"]
        head["flags"] = line.get("flags", 0)
        head["number_of_samples"], head["active_channels"] = data.shape[1], data.shape[0]
        head["available_channels"] = data.shape[0]
        for key in ("kspace_encode_step_1", "kspace_encode_step_2", "average", "slice", "contrast"):
            head["idx"][key] = line.get(key, 0)
        table[i]["head"] = head
        table["traj"][i] = np.zeros(0, np.float32)
        table["data"][i] = data.view(np.float32).ravel()
    with h5py.File(path, "w") as f:
        grp = f.create_group("dataset")
        grp.create_dataset("xml", data=np.array([xml.encode()], dtype=h5py.string_dtype()))
        grp.create_dataset("data", data=table)


# ----------------------------------------------------------------------------- 3D views
def test_3d_kspace_array_gives_each_view_with_drops_flips_and_scale(tmp_path):
    img = _images(3, 10, 8, 6)  # [c, x, y, z]
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "vol.npy", _fft_centred(img, (1, 2, 3)))
    cases = [
        dict(slice_axis="z", rows="x", cols="y", drop_first=1, drop_last=1, flip_rows=True),
        dict(slice_axis="x", rows="y", cols="z", drop_first=2, flip_cols=True),
        dict(slice_axis="y", rows="z", cols="x", drop_last=3, flip_rows=True, flip_cols=True),
    ]
    for i, case in enumerate(cases):
        out = tmp_path / f"out{i}"
        result = convert_array(src, out, axes="cxyz", scale=2.5, **case)
        assert [o.status for o in result.outcomes] == ["written"]
        expected = _expected_view(img, "cxyz", case["slice_axis"], case["rows"], case["cols"],
                                  drop=(case.get("drop_first", 0), case.get("drop_last", 0)),
                                  flip_rows=case.get("flip_rows", False), flip_cols=case.get("flip_cols", False),
                                  scale=2.5)
        _check_volume(out / "vol.h5", expected)
        with FastMRIVolume(out / "vol.h5") as vol:
            assert vol.attrs["view"] == f"{case['slice_axis']}-slices"
            assert list(vol.attrs["dropped_slices"]) == [case.get("drop_first", 0), case.get("drop_last", 0)]


def test_cc359_layout_interleaved_hybrid_recentred_all_views(tmp_path):
    """CC-359 files: [x, ky, kz, 2*coils] floats, x in image space, k-space centred for origin 0."""
    img = _images(56, 44, 36, 2)  # [x, y, z, c]; sizes allow the catalog's dropped slices
    k = np.fft.fftshift(np.fft.fftn(img, axes=(1, 2), norm="ortho"), axes=(1, 2)) * 1e10
    stored = np.empty(k.shape[:3] + (4,), np.float32)
    stored[..., 0::2], stored[..., 1::2] = k.real, k.imag
    src = tmp_path / "raw" / "train"
    src.mkdir(parents=True)
    with h5py.File(src / "e1.h5", "w") as f:
        f.create_dataset("kspace", data=stored)
    result = convert_dataset("cc359", tmp_path / "raw", tmp_path / "out", view="all")
    assert sorted(o.view for o in result.outcomes) == ["axial", "coronal", "sagittal"]
    views = {"axial": ("x", "y", "z", (50, 0)), "coronal": ("y", "x", "z", (25, 15)),
             "sagittal": ("z", "x", "y", (15, 15))}
    for name, (sl, rows, cols, drop) in views.items():
        path = tmp_path / "out" / name / "train" / "e1.h5"
        expected = _expected_view(img, "xyzc", sl, rows, cols, drop=drop, flip_rows=True)
        _check_volume(path, expected)
        with FastMRIVolume(path) as vol:
            assert vol.attrs["dataset"] == f"cc359_{name}" and vol.attrs["view"] == name
            assert vol.attrs["catalog_dataset"] == "cc359" and vol.attrs["vendor"] == "GE"
            assert vol.attrs["field_strength"] == 3.0 and vol.attrs["contrast"] == "GRE"
            assert vol.attrs["source_file"] == "train/e1.h5"
            assert vol.attrs["scale"] == pytest.approx(1e-10)
    with FastMRIVolume(tmp_path / "out" / "sagittal" / "train" / "e1.h5") as vol:
        assert vol.kspace_shape == (6, 2, 56, 44)


def test_skm_tea_echoes_become_separate_volumes(tmp_path):
    img = _images(12, 10, 8, 2, 3)  # [x, y, z, echo, coil]
    k = _fft_centred(img, (1, 2)) * 1e11  # readout x stays in image space
    with h5py.File(tmp_path / "MTR_001.h5", "w") as f:
        f.create_dataset("kspace", data=k.astype(np.complex64))
        f.create_dataset("maps", data=np.zeros(3))
    result = convert_dataset("skm-tea", tmp_path / "MTR_001.h5", tmp_path / "out")
    assert sorted(o.path.name for o in result.outcomes) == ["MTR_001_echo1.h5", "MTR_001_echo2.h5"]
    for echo in (1, 2):
        path = tmp_path / "out" / f"MTR_001_echo{echo}.h5"
        _check_volume(path, _expected_view(img[:, :, :, echo - 1], "xyzc", "z", "y", "x", flip_rows=True))
        with FastMRIVolume(path) as vol:
            assert vol.attrs["echo"] == echo and vol.attrs["padding_left"] == 48
            assert vol.attrs["acquisition"] == "qDESS"


# ----------------------------------------------------------------------------- ISMRMRD
def test_ismrmrd_2d_averages_noise_lines_and_stanford2d_settings(tmp_path):
    img = _images(2, 3, 12, 10)  # [slice, coil, x, y]
    k = _fft_centred(img, (2, 3)) * 1e8
    lines = [{"data": RNG.standard_normal((3, 12)).astype(np.complex64) * 1e9, "flags": _NOISE_FLAG}]
    for s in range(2):
        for y in range(10):
            jitter = _images(3, 12) * 1e6
            lines.append({"data": k[s, :, :, y] + jitter, "slice": s, "kspace_encode_step_1": y, "average": 0})
            lines.append({"data": k[s, :, :, y] - jitter, "slice": s, "kspace_encode_step_1": y, "average": 1})
    protocol = "<measurementInformation><protocolName>AX_FSE_TEST</protocolName></measurementInformation>"
    xml = _ismrmrd_xml((12, 10, 1), (8, 10, 1), center_y=5, extra=protocol)
    _write_ismrmrd(tmp_path / "scan.h5", lines, xml)
    convert_dataset("stanford2d", tmp_path / "scan.h5", tmp_path / "out")
    expected = _expected_view(img, "scxy", "s", "x", "y", flip_rows=True)
    _check_volume(tmp_path / "out" / "scan.h5", _crop(expected, 8, 10))
    with h5py.File(tmp_path / "out" / "scan.h5", "r") as f:
        header = f["ismrmrd_header"][()].decode()
        assert f.attrs["ismrmrd_skipped_acquisitions"] == 1
    assert "AX_FSE_TEST" in header  # the source header is kept, only sizes are rewritten


def test_ismrmrd_3d_with_contrasts_cut_along_the_second_phase_encode(tmp_path):
    img = _images(2, 2, 8, 6, 5)  # [contrast, coil, x, y, z]
    k = _fft_centred(img, (2, 3, 4))
    lines = [{"data": k[e, :, :, y, z], "contrast": e, "kspace_encode_step_1": y, "kspace_encode_step_2": z}
             for e in range(2) for z in range(5) for y in range(6)]
    _write_ismrmrd(tmp_path / "brain.h5", lines[::-1], _ismrmrd_xml((8, 6, 5), (8, 6, 5), center_y=3))
    convert_ismrmrd(tmp_path / "brain.h5", tmp_path / "out", slice_axis="z", rows="y", cols="x",
                    drop_first=1, drop_last=1)
    for e in range(2):
        expected = _expected_view(img[e], "cxyz", "z", "y", "x", drop=(1, 1))
        _check_volume(tmp_path / "out" / f"brain_echo{e + 1}.h5", expected)


def test_stanford3d_views_from_sign_alternated_slices(tmp_path):
    """Stanford 3D files: slices (image space, (-1)^n modulated) x ky lines x readout."""
    img = _images(64, 2, 12, 84)  # [s, coil, x, y]
    k = _fft_centred(img, (2, 3)) * 1e7
    sign = np.where(np.arange(64) % 2 == 0, 1, -1)[:, None, None, None]
    stored = k * sign
    lines = [{"data": stored[s, :, :, y], "slice": s, "kspace_encode_step_1": y}
             for s in range(64) for y in range(84)]
    _write_ismrmrd(tmp_path / "knee.h5", lines, _ismrmrd_xml((12, 84, 1), (12, 84, 1), center_y=42))
    convert_dataset("stanford3d", tmp_path, tmp_path / "out", view="all")
    views = {"axial": ("x", "y", "s", (5, 5)), "coronal": ("y", "x", "s", (40, 40)),
             "sagittal": ("s", "x", "y", (30, 30))}
    for name, (sl, rows, cols, drop) in views.items():
        expected = _expected_view(img, "scxy", sl, rows, cols, drop=drop, flip_rows=True)
        _check_volume(tmp_path / "out" / name / "knee.h5", expected)
    # the sign alternation along the slices is removed: the axial k-space is centred, not rolled by half
    axial = np.transpose(img, (2, 1, 3, 0))[5:7, :, ::-1, :] * 1.0  # [x, c, y, s], flipped rows
    reference = fastmri.fft2c(fm_transforms.to_tensor(np.ascontiguousarray(axial)))
    with FastMRIVolume(tmp_path / "out" / "axial" / "knee.h5") as vol:
        for i in range(2):
            np.testing.assert_allclose(vol.kspace(i).numpy(), fm_transforms.tensor_to_complex_np(reference[i]),
                                       atol=2e-4 * float(np.abs(axial).max()))


# ----------------------------------------------------------------------------- fastMRI sources
def _fastmri_source(path: Path, kspace: np.ndarray, crop: tuple[int, int], **attrs) -> np.ndarray:
    target = np.stack([_crop(_fastmri_rss(kspace[s]), *crop) for s in range(kspace.shape[0])])
    h, w = kspace.shape[-2:]
    write_volume(path, kspace=kspace, targets={"reconstruction_rss": target},
                 attrs={"max": float(target.max()), **attrs},
                 header=make_ismrmrd_header((h, w, 1), (crop[0], crop[1], 1)))
    return target


def test_fastmri_knee_passes_through_unchanged(tmp_path):
    k = _fft_centred(_images(3, 4, 16, 12), (2, 3))
    (tmp_path / "src").mkdir()
    target = _fastmri_source(tmp_path / "src" / "file1000.h5", k, (8, 8), acquisition="CORPD_FBK", patient_id="p9")
    result = convert_dataset("fastmri-knee", tmp_path / "src", tmp_path / "out")
    assert result.count("written") == 1
    with h5py.File(tmp_path / "src" / "file1000.h5", "r") as a, h5py.File(tmp_path / "out" / "file1000.h5", "r") as b:
        np.testing.assert_array_equal(b["kspace"][()], a["kspace"][()])
        np.testing.assert_array_equal(b["reconstruction_rss"][()], target)
        assert b["ismrmrd_header"][()] == a["ismrmrd_header"][()]
        assert b.attrs["acquisition"] == "CORPD_FBK" and b.attrs["patient_id"] == "p9"
    with FastMRIVolume(tmp_path / "out" / "file1000.h5") as vol:
        assert vol.header == HeaderSizes((16, 12, 1), (8, 8, 1))


def test_fastmri_h5_without_target_computes_it(tmp_path):
    k = _fft_centred(_images(2, 3, 10, 8), (2, 3))
    write_volume(tmp_path / "a.h5", kspace=k)
    convert_fastmri_h5(tmp_path / "a.h5", tmp_path / "out", scale=3.0)
    expected = np.stack([_fastmri_rss(k[s]) for s in range(2)]) * 3.0
    _check_volume(tmp_path / "out" / "a.h5", expected)


def test_prostate_averages_parity_and_header_padding(tmp_path):
    full = _fft_centred(_images(2, 2, 16, 10), (2, 3))  # [slice, coil, H, W]
    avgs = np.zeros((3, *full.shape), np.complex64)
    noise = _images(2, 2, 16, 10) * 0.1
    avgs[0][..., 1::2] = (full + noise)[..., 1::2]
    avgs[2][..., 1::2] = (full - noise)[..., 1::2]
    avgs[1][..., 0::2] = full[..., 0::2]
    header = _ismrmrd_xml((16, 14, 1), (16, 14, 1), center_y=5)  # 10 lines placed at columns 2..11
    with h5py.File(tmp_path / "file_prostate_AXT2_001.h5", "w") as f:
        f.create_dataset("kspace", data=avgs)
        f.create_dataset("ismrmrd_header", data=np.bytes_(header.encode()))
        f.attrs["acquisition"] = "AXT2"
    convert_dataset("fastmri-prostate", tmp_path, tmp_path / "out")
    padded = np.pad(full, [(0, 0), (0, 0), (0, 0), (2, 2)])
    with FastMRIVolume(tmp_path / "out" / "file_prostate_AXT2_001.h5") as vol:
        np.testing.assert_allclose(np.stack([vol.kspace(i).numpy() for i in range(2)]), padded, atol=1e-5)
        assert vol.attrs["acquisition"] == "AXT2"
    expected = np.stack([_fastmri_rss(padded[s]) for s in range(2)])  # crop 320 x 320 clamps to 16 x 14
    _check_volume(tmp_path / "out" / "file_prostate_AXT2_001.h5", expected)


def test_m4raw_gre_is_recentred_and_rotated(tmp_path):
    k = _fft_centred(_images(2, 2, 12, 50), (2, 3))
    with h5py.File(tmp_path / "2022_GRE01.h5", "w") as f:
        f.create_dataset("kspace", data=k)
        f.create_dataset("ismrmrd_header", data=np.bytes_(make_ismrmrd_header((12, 50, 1), (12, 50, 1)).encode()))
    with h5py.File(tmp_path / "2022_T101.h5", "w") as f:  # not a GRE file: left out
        f.create_dataset("kspace", data=k)
    convert_dataset("m4raw-gre", tmp_path, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["2022_GRE01.h5"]
    rolled = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(np.roll(k, -45, axis=-1), axes=(-2, -1)), norm="ortho"),
                             axes=(-2, -1))
    expected = _expected_view(rolled, "scxy", "s", "y", "x", flip_cols=True)
    _check_volume(tmp_path / "out" / "2022_GRE01.h5", expected)


# ----------------------------------------------------------------------------- MAT and npz arrays
def test_mat_v5_mat_v73_and_npz_read_in_matlab_axis_order(tmp_path):
    import scipy.io

    img = _images(12, 10, 3, 2)  # MATLAB order [x, y, coil, slice]
    k = _fft_centred(img, (0, 1))
    scipy.io.savemat(tmp_path / "v5.mat", {"rawdata": k})
    with h5py.File(tmp_path / "v73.mat", "w", userblock_size=512) as f:  # MATLAB v7.3: HDF5, column-major
        rec = np.empty(k.T.shape, dtype=[("real", "<f4"), ("imag", "<f4")])
        rec["real"], rec["imag"] = k.T.real, k.T.imag
        f.create_dataset("rawdata", data=rec)
        f.create_dataset("other", data=np.zeros(3))
    np.savez(tmp_path / "arr.npz", kspace=k)
    expected = _expected_view(img, "xycs", "s", "x", "y")
    for name in ("v5.mat", "v73.mat", "arr.npz"):
        key = "kspace" if name.endswith("npz") else "rawdata"
        convert_array(tmp_path / name, tmp_path / "out", axes="xycs", key=key, slice_axis="s")
        _check_volume(tmp_path / "out" / f"{Path(name).stem}.h5", expected)


def test_array_input_errors_name_file_and_field(tmp_path):
    np.save(tmp_path / "k.npy", _images(4, 5, 6))
    with pytest.raises(InputError, match="rank does not match") as err:
        convert_array(tmp_path / "k.npy", tmp_path / "o", axes="xy", slice_axis="s")
    assert "k.npy" in str(err.value)
    np.save(tmp_path / "r.npy", np.ones((4, 5, 6), np.float32))
    with pytest.raises(InputError, match="must be complex"):
        convert_array(tmp_path / "r.npy", tmp_path / "o", axes="xys", slice_axis="s")
    with pytest.raises(InputError, match="'axes'"):
        convert_array(tmp_path / "k.npy", tmp_path / "o", axes="xyq")
    with pytest.raises(InputError, match="three different axes"):
        convert_array(tmp_path / "k.npy", tmp_path / "o", axes="xyz", slice_axis="x", rows="x")
    with pytest.raises(InputError, match="leaves nothing"):
        convert_array(tmp_path / "k.npy", tmp_path / "o", axes="xyz", drop_first=3, drop_last=3)
    with pytest.raises(InputError, match="unknown option"):
        convert_array(tmp_path / "k.npy", tmp_path / "o", axes="xyz", slice_axes="x")
    with pytest.raises(InputError, match="no source files"):
        convert_array(tmp_path / "o", tmp_path / "o2", axes="xyz")


# ----------------------------------------------------------------------------- resumability, parallel
def _folder_of_volumes(root: Path, n: int) -> list[np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n):
        img = _images(2, 8, 6, 4)  # [c, x, y, z]
        np.save(root / f"v{i}.npy", _fft_centred(img, (1, 2, 3)))
        images.append(img)
    return images


def _spec() -> ConversionSpec:
    return ConversionSpec(format="array", files="*.npy", axes="cxyz")


def test_killed_conversion_resumes_without_rewriting_finished_volumes(tmp_path, monkeypatch):
    import mrizoo.data.converters.batch as batch

    images = _folder_of_volumes(tmp_path / "src", 4)
    view = [OutputView("axial", ViewGeometry(slice_axis="z", flip_rows=True))]
    real_write, calls = batch.write_volume, []

    def dies_on_third(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process is stopped in the middle of the run
        return real_write(*args, **kwargs)

    monkeypatch.setattr(batch, "write_volume", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        convert_folder(tmp_path / "src", tmp_path / "out", _spec(), view)
    monkeypatch.setattr(batch, "write_volume", real_write)
    done = sorted((tmp_path / "out").glob("*.h5"))
    assert [p.name for p in done] == ["v0.h5", "v1.h5"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in done}
    # what a hard kill can leave: a stale temporary file and a half-written output
    (tmp_path / "out" / ".v2.h5.0123456789ab.tmp").write_bytes(b"partial")
    (tmp_path / "out" / "v2.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)

    result = convert_folder(tmp_path / "src", tmp_path / "out", _spec(), view)
    status = {o.path.name: o.status for o in result.outcomes}
    assert status == {"v0.h5": "skipped", "v1.h5": "skipped", "v2.h5": "replaced", "v3.h5": "written"}
    assert {p.name: p.stat().st_mtime_ns for p in done} == mtimes
    assert not list((tmp_path / "out").glob(".*.tmp"))
    for i, img in enumerate(images):
        _check_volume(tmp_path / "out" / f"v{i}.h5", _expected_view(img, "cxyz", "z", "x", "y", flip_rows=True))
    again = convert_folder(tmp_path / "src", tmp_path / "out", _spec(), view)
    assert again.count("skipped") == 4

    other = [OutputView("axial", ViewGeometry(slice_axis="z"))]  # other settings: refuse to mix
    with pytest.raises(ConversionFailedError, match="other settings"):
        convert_folder(tmp_path / "src", tmp_path / "out", _spec(), other)
    assert convert_folder(tmp_path / "src", tmp_path / "out", _spec(), other, overwrite=True).count("replaced") == 4


def test_parallel_conversion_equals_serial(tmp_path):
    _folder_of_volumes(tmp_path / "src", 4)
    view = [OutputView("sag", ViewGeometry(slice_axis="x", rows="z", cols="y", drop_first=1, flip_cols=True))]
    serial = convert_folder(tmp_path / "src", tmp_path / "serial", _spec(), view, workers=1)
    parallel = convert_folder(tmp_path / "src", tmp_path / "parallel", _spec(), view, workers=2)
    assert parallel.count("written") == serial.count("written") == 4
    assert {o.pid for o in serial.outcomes} == {os.getpid()}
    assert os.getpid() not in {o.pid for o in parallel.outcomes}  # converted in worker processes
    for i in range(4):
        with h5py.File(tmp_path / "serial" / f"v{i}.h5") as a, h5py.File(tmp_path / "parallel" / f"v{i}.h5") as b:
            for key in ("kspace", "reconstruction_rss", "ismrmrd_header"):
                np.testing.assert_array_equal(a[key][()], b[key][()])
            assert dict(a.attrs).keys() == dict(b.attrs).keys()
            assert a.attrs["mrizoo_conversion"] == b.attrs["mrizoo_conversion"]


def test_a_bad_source_fails_alone_and_is_retried_on_the_next_run(tmp_path):
    _folder_of_volumes(tmp_path / "src", 3)
    (tmp_path / "src" / "v1.npy").write_bytes(b"not numpy")
    view = [OutputView("ax", ViewGeometry(slice_axis="z"))]
    with pytest.raises(ConversionFailedError, match="v1.npy") as err:
        convert_folder(tmp_path / "src", tmp_path / "out", _spec(), view, workers=2)
    assert err.value.result.count("written") == 2 and len(err.value.result.failures) == 1
    np.save(tmp_path / "src" / "v1.npy", _fft_centred(_images(2, 8, 6, 4), (1, 2, 3)))
    result = convert_folder(tmp_path / "src", tmp_path / "out", _spec(), view)
    assert sorted(o.status for o in result.outcomes) == ["skipped", "skipped", "written"]
    spec = _spec()
    for o in result.outcomes:
        from mrizoo.data.converters.batch import fingerprint

        assert output_state(o.path, fingerprint(spec, view[0], None, None)) == "complete"


# ----------------------------------------------------------------------------- registry and CLI
def test_every_catalog_dataset_and_generic_format_has_a_converter():
    from mrizoo.datasets import list_datasets

    names = available_converters()
    assert set(list_datasets()) | {"array", "ismrmrd", "fastmri-h5", "bart"} <= set(names)
    assert "views" in get_converter("stanford3d").help


def _cli(argv: list[str]) -> int:
    from mrizoo.cli import convert as cli_convert

    parser = argparse.ArgumentParser(prog="mrizoo")
    cli_convert.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_converts_a_dataset_from_its_configured_root(tmp_path, monkeypatch, capsys):
    img = _images(12, 10, 8, 2, 1)  # [x, y, z, echo, coil]
    (tmp_path / "skm").mkdir()
    with h5py.File(tmp_path / "skm" / "MTR_002.h5", "w") as f:
        f.create_dataset("kspace", data=_fft_centred(img, (1, 2)).astype(np.complex64))
    monkeypatch.setenv("MRIZOO_DATA_SKM_TEA", str(tmp_path / "skm"))
    assert _cli(["convert", "skm-tea", "@", str(tmp_path / "out"), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "2 volumes (2 written" in captured.out and "MTR_002_echo1.h5" in captured.err
    assert _cli(["convert", "skm-tea", "@", str(tmp_path / "out"), "--quiet"]) == 0
    assert "2 already complete" in capsys.readouterr().out
    with pytest.raises(InputError, match="choose one"):
        _cli(["convert", "cc359", str(tmp_path / "skm"), str(tmp_path / "o")])
    monkeypatch.delenv("MRIZOO_DATA_SKM_TEA")
    monkeypatch.setenv("MRIZOO_HOME", str(tmp_path / "home"))
    with pytest.raises(InputError, match="MRIZOO_DATA_SKM_TEA") as err:
        _cli(["convert", "skm-tea", "@", str(tmp_path / "o")])
    assert "stanfordaimi" in str(err.value) and str(tmp_path / "home" / "datasets.yaml") in str(err.value)


def test_real_brain_slice_as_an_array_matches_the_fastmri_rss(tmp_path, brain_kspace):
    """The real 8-coil brain slice [C, H, W] as a 2D array: flipped, scaled target = fastMRI RSS."""
    np.save(tmp_path / "brain.npy", brain_kspace)
    convert_array(tmp_path / "brain.npy", tmp_path / "out", axes="cxy", slice_axis="s", flip_rows=True,
                  scale=1e3, crop=(200, 160))
    expected = _crop(_fastmri_rss(brain_kspace)[::-1, :] * 1e3, 200, 160)[None]
    _check_volume(tmp_path / "out" / "brain.h5", expected)
