"""fastMRI-convention HDF5 reading and writing: round trips, laziness, validation, atomic writes."""

from __future__ import annotations

import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mrizoo.data.fastmri_h5 import FastMRIVolume, HeaderSizes, parse_ismrmrd_header
from mrizoo.data.writer import make_ismrmrd_header, write_volume
from mrizoo.errors import InputError


def _kspace(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.fixture
def volume_arrays() -> dict:
    rng = np.random.default_rng(0)
    kspace = _kspace(rng, (3, 4, 20, 16))
    mask = np.zeros(16, dtype=bool)
    mask[::3] = True
    mask[6:10] = True
    target = rng.random((3, 12, 10)).astype(np.float32)
    return {"kspace": kspace, "mask": mask, "target": target}


def _raw_h5(path: Path, **datasets) -> Path:
    """A file written with plain h5py, for inputs the writer refuses to produce."""
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f.create_dataset(name, data=value)
    return path


# ----------------------------------------------------------------------------- round trips
def test_round_trip_multicoil(tmp_path, volume_arrays):
    a = volume_arrays
    header = make_ismrmrd_header((20, 16, 1), (12, 10, 1))
    path = write_volume(
        tmp_path / "vol.h5", kspace=a["kspace"], mask=a["mask"],
        targets={"reconstruction_rss": a["target"]},
        attrs={"max": 2.5, "norm": 7.0, "acquisition": "CORPD_FBK", "patient_id": "abc123"},
        header=header,
    )
    with FastMRIVolume(path) as vol:
        assert vol.num_slices == 3 and len(vol) == 3
        assert vol.kspace_shape == (3, 4, 20, 16)
        assert vol.multicoil and vol.num_coils == 4
        assert vol.keys == ["ismrmrd_header", "kspace", "mask", "reconstruction_rss"]
        assert vol.target_keys == ["reconstruction_rss"]
        assert vol.attrs == {"max": 2.5, "norm": 7.0, "acquisition": "CORPD_FBK", "patient_id": "abc123"}
        assert vol.header == HeaderSizes(encoded=(20, 16, 1), recon=(12, 10, 1))
        for i in range(3):
            k = vol.kspace(i)
            assert k.dtype == torch.complex64 and k.shape == (4, 20, 16)
            np.testing.assert_array_equal(k.numpy(), a["kspace"][i])
            t = vol.target(i)
            assert t.dtype == torch.float32
            np.testing.assert_array_equal(t.numpy(), a["target"][i])
        np.testing.assert_array_equal(vol.kspace(-1).numpy(), a["kspace"][2])
        m = vol.mask()
        assert m.dtype == torch.bool and m.shape == (16,)
        np.testing.assert_array_equal(m.numpy(), a["mask"])


def test_round_trip_single_coil_torch_inputs_and_2d_mask(tmp_path):
    gen = torch.Generator().manual_seed(1)
    kspace = torch.randn(2, 10, 8, dtype=torch.complex128, generator=gen)
    mask2d = torch.rand(10, 8, generator=gen) > 0.5
    path = write_volume(tmp_path / "sc.h5", kspace=kspace, mask=mask2d.to(torch.float32),
                        targets={"reconstruction_esc": kspace.abs()[:, 1:9, 1:7]})
    with FastMRIVolume(path) as vol:
        assert not vol.multicoil and vol.num_coils == 1
        k = vol.kspace(1)
        assert k.shape == (10, 8) and k.dtype == torch.complex64
        torch.testing.assert_close(k, kspace[1].to(torch.complex64))
        assert torch.equal(vol.mask(), mask2d)
        torch.testing.assert_close(vol.target(0, "reconstruction_esc"), kspace[0].abs()[1:9, 1:7].float())
        # no header given: a minimal one with the k-space and target sizes is written
        assert vol.header == HeaderSizes(encoded=(10, 8, 1), recon=(8, 6, 1))


def test_reconstruction_submission_layout(tmp_path):
    recon = np.random.default_rng(2).random((4, 32, 32))
    path = write_volume(tmp_path / "file1000.h5", reconstruction=recon)
    with h5py.File(path, "r") as f:
        assert list(f.keys()) == ["reconstruction"]
        assert f["reconstruction"].dtype == np.float32
        np.testing.assert_allclose(f["reconstruction"][()], recon.astype(np.float32))


def test_file_is_read_by_fastmri_reference_loader(tmp_path, volume_arrays):
    """fastMRI's own SliceDataset (an independent reader) accepts what the writer produces."""
    mri_data = pytest.importorskip("fastmri.data.mri_data")
    a = volume_arrays
    folder = tmp_path / "multicoil_val"
    folder.mkdir()
    write_volume(folder / "file_a.h5", kspace=a["kspace"], mask=a["mask"],
                 targets={"reconstruction_rss": a["target"]}, attrs={"max": 3.0, "acquisition": "AXT2"})
    ds = mri_data.SliceDataset(folder, challenge="multicoil")
    assert len(ds) == 3
    kspace, mask, target, attrs, fname, dataslice = ds[1]
    np.testing.assert_array_equal(kspace, a["kspace"][1])
    np.testing.assert_array_equal(mask, a["mask"])
    np.testing.assert_array_equal(target, a["target"][1])
    assert (fname, dataslice) == ("file_a.h5", 1)
    assert attrs["encoding_size"] == (20, 16, 1) and attrs["recon_size"] == (12, 10, 1)
    assert (attrs["padding_left"], attrs["padding_right"]) == (0, 16)
    assert attrs["max"] == 3.0 and attrs["acquisition"] == "AXT2"


def test_header_xml_read_by_fastmri_query():
    """Sizes in the generated header are found by fastMRI's namespace-aware XML query."""
    mri_data = pytest.importorskip("fastmri.data.mri_data")
    xml = make_ismrmrd_header((640, 368, 1), (320, 320, 1))
    root = ET.fromstring(xml)
    q = mri_data.et_query
    enc = ["encoding", "encodedSpace", "matrixSize"]
    rec = ["encoding", "reconSpace", "matrixSize"]
    assert [int(q(root, enc + [a])) for a in "xyz"] == [640, 368, 1]
    assert [int(q(root, rec + [a])) for a in "xyz"] == [320, 320, 1]
    lims = ["encoding", "encodingLimits", "kspace_encoding_step_1"]
    assert int(q(root, lims + ["center"])) == 184 and int(q(root, lims + ["maximum"])) == 367
    assert parse_ismrmrd_header(xml) == HeaderSizes((640, 368, 1), (320, 320, 1))


def test_header_without_namespace_and_missing_header(tmp_path, volume_arrays):
    xml = b"<ismrmrdHeader><encoding><encodedSpace><matrixSize><x>20</x><y>16</y><z>1</z></matrixSize>" \
          b"</encodedSpace><reconSpace><matrixSize><x>8</x><y>8</y><z>1</z></matrixSize></reconSpace>" \
          b"</encoding></ismrmrdHeader>"
    assert parse_ismrmrd_header(xml) == HeaderSizes((20, 16, 1), (8, 8, 1))
    path = _raw_h5(tmp_path / "nohdr.h5", kspace=volume_arrays["kspace"])
    with FastMRIVolume(path) as vol:
        assert vol.header is None
        assert vol.mask() is None
        assert vol.attrs == {}


# ----------------------------------------------------------------------------- laziness
def test_one_slice_of_a_huge_virtual_volume(tmp_path):
    """A 200,000-slice volume (about 3 TB if read whole) serves one slice."""
    path = tmp_path / "huge.h5"
    shape = (200_000, 16, 640, 368)
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", shape=shape, dtype=np.complex64, chunks=(1, 1, 640, 368))
        f["kspace"][123_456, 3, 10, 20] = 1 + 2j
    assert path.stat().st_size < 10_000_000
    with FastMRIVolume(path) as vol:
        assert vol.num_slices == 200_000 and vol.kspace_shape == shape
        k = vol.kspace(123_456)
        assert k.shape == (16, 640, 368)
        assert k[3, 10, 20] == 1 + 2j
        assert int((k != 0).sum()) == 1


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io read counters")
def test_reading_one_slice_reads_about_one_slice_of_bytes(tmp_path):
    rng = np.random.default_rng(3)
    kspace = _kspace(rng, (64, 4, 64, 64))  # 8.4 MB on disk, 131 kB per slice
    path = write_volume(tmp_path / "many.h5", kspace=kspace)

    def bytes_read() -> int:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise AssertionError("no rchar line")

    with FastMRIVolume(path) as vol:
        vol.kspace(0)  # warm the HDF5 metadata cache
        before = bytes_read()
        k = vol.kspace(40)
        used = bytes_read() - before
    np.testing.assert_array_equal(k.numpy(), kspace[40])
    assert kspace[40].nbytes <= used < 4 * kspace[40].nbytes, used


# ----------------------------------------------------------------------------- bad inputs
def _message(err: pytest.ExceptionInfo) -> str:
    return str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found") as err:
        FastMRIVolume(tmp_path / "absent.h5")
    assert "absent.h5" in _message(err)


def test_text_file_named_h5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("this is not HDF5\n" * 100)
    with pytest.raises(InputError, match="not a readable HDF5 file") as err:
        FastMRIVolume(path)
    assert "notes.h5" in _message(err)


def test_truncated_file(tmp_path, volume_arrays):
    path = write_volume(tmp_path / "cut.h5", kspace=volume_arrays["kspace"])
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(InputError, match="corrupt, truncated") as err:
        FastMRIVolume(path)
    assert "cut.h5" in _message(err)


def test_missing_kspace(tmp_path):
    path = _raw_h5(tmp_path / "nok.h5", reconstruction_rss=np.zeros((2, 4, 4), np.float32))
    with pytest.raises(InputError, match="no k-space dataset") as err:
        FastMRIVolume(path)
    assert "'kspace'" in _message(err) and "reconstruction_rss" in _message(err)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_real_kspace_is_refused(tmp_path, dtype):
    path = _raw_h5(tmp_path / "real.h5", kspace=np.zeros((2, 3, 4, 4), dtype))
    with pytest.raises(InputError, match="must be complex") as err:
        FastMRIVolume(path)
    assert "complex64" in _message(err) and np.dtype(dtype).name in _message(err)


def test_complex128_kspace_is_accepted_as_complex64(tmp_path):
    k = _kspace(np.random.default_rng(4), (2, 3, 4, 4)).astype(np.complex128)
    path = _raw_h5(tmp_path / "c128.h5", kspace=k)
    with FastMRIVolume(path) as vol:
        assert vol.kspace(1).dtype == torch.complex64
        np.testing.assert_allclose(vol.kspace(1).numpy(), k[1], rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 4), (1, 2, 3, 4, 4)])
def test_wrong_rank(tmp_path, shape):
    path = _raw_h5(tmp_path / "rank.h5", kspace=np.zeros(shape, np.complex64))
    with pytest.raises(InputError, match="wrong rank") as err:
        FastMRIVolume(path)
    assert str(shape) in _message(err)


@pytest.mark.parametrize("bad", [np.nan, np.inf, complex(0, -np.inf)])
def test_non_finite_values_are_reported_per_slice(tmp_path, bad):
    k = _kspace(np.random.default_rng(5), (3, 2, 6, 6))
    k[1, 0, 2, 3] = bad
    path = _raw_h5(tmp_path / "nan.h5", kspace=k)
    with FastMRIVolume(path) as vol:
        np.testing.assert_array_equal(vol.kspace(0).numpy(), k[0])  # good slices still served
        np.testing.assert_array_equal(vol.kspace(2).numpy(), k[2])
        with pytest.raises(InputError, match="slice 1 holds 1 non-finite") as err:
            vol.kspace(1)
    assert "nan.h5" in _message(err) and "'kspace'" in _message(err)


def test_mask_length_must_match_columns(tmp_path):
    path = _raw_h5(tmp_path / "m.h5", kspace=np.ones((2, 3, 8, 10), np.complex64), mask=np.ones(8))
    with pytest.raises(InputError, match="mask does not fit") as err:
        FastMRIVolume(path)
    assert "'mask'" in _message(err) and "(10,)" in _message(err) and "(8,)" in _message(err)


@pytest.mark.parametrize("values", [[0, 1, 2, 1], [0.0, 0.5, 1.0, 1.0]])
def test_mask_values_must_be_binary(tmp_path, values):
    path = _raw_h5(tmp_path / "m.h5", kspace=np.ones((2, 3, 8, 4), np.complex64), mask=np.array(values))
    with FastMRIVolume(path) as vol:
        with pytest.raises(InputError, match="mask values must be 0 or 1") as err:
            vol.mask()
    assert "m.h5" in _message(err)


def test_float_mask_of_zeros_and_ones_is_accepted(tmp_path):
    path = _raw_h5(tmp_path / "m.h5", kspace=np.ones((2, 3, 8, 4), np.complex64),
                   mask=np.array([1.0, 0.0, 0.0, 1.0], np.float32))
    with FastMRIVolume(path) as vol:
        assert vol.mask().tolist() == [True, False, False, True]


@pytest.mark.parametrize("index", [3, -4, 1.0, True])
def test_slice_index_out_of_range_or_not_an_integer(tmp_path, volume_arrays, index):
    path = write_volume(tmp_path / "v.h5", kspace=volume_arrays["kspace"],
                        targets={"reconstruction_rss": volume_arrays["target"]})
    with FastMRIVolume(path) as vol:
        with pytest.raises(InputError, match="slice index") as err:
            vol.kspace(index)
        with pytest.raises(InputError, match="slice index"):
            vol.target(index)
    assert "v.h5" in _message(err)


def test_malformed_header_xml(tmp_path, volume_arrays):
    path = _raw_h5(tmp_path / "h.h5", kspace=volume_arrays["kspace"],
                   ismrmrd_header=np.bytes_(b"<ismrmrdHeader><encoding></ismrmrdHeader"))
    with FastMRIVolume(path) as vol:
        np.testing.assert_array_equal(vol.kspace(0).numpy(), volume_arrays["kspace"][0])
        with pytest.raises(InputError, match="not well-formed XML") as err:
            vol.header
    assert "h.h5" in _message(err) and "ismrmrd_header" in _message(err)


def test_header_without_sizes(tmp_path, volume_arrays):
    path = _raw_h5(tmp_path / "h.h5", kspace=volume_arrays["kspace"],
                   ismrmrd_header=np.bytes_(b'<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"/>'))
    with FastMRIVolume(path) as vol, pytest.raises(InputError, match="encoding/encodedSpace/matrixSize/x"):
        vol.header


def test_unknown_target_key(tmp_path, volume_arrays):
    path = write_volume(tmp_path / "v.h5", kspace=volume_arrays["kspace"],
                        targets={"reconstruction_rss": volume_arrays["target"]})
    with FastMRIVolume(path) as vol:
        with pytest.raises(InputError, match="no such target") as err:
            vol.target(0, "reconstruction_esc")
        with pytest.raises(InputError, match="no such target"):
            vol.target(0, "kspace")
    assert "reconstruction_rss" in _message(err)


def test_close_and_context_manager(tmp_path, volume_arrays):
    path = write_volume(tmp_path / "v.h5", kspace=volume_arrays["kspace"])
    vol = FastMRIVolume(path)
    vol.close()
    vol.close()  # idempotent
    assert "closed" in repr(vol)
    with FastMRIVolume(path) as vol2:
        assert "open" in repr(vol2)
    assert "closed" in repr(vol2)


# ----------------------------------------------------------------------------- writer
def test_overwrite_is_refused_unless_asked(tmp_path, volume_arrays):
    path = write_volume(tmp_path / "v.h5", kspace=volume_arrays["kspace"])
    before = path.read_bytes()
    with pytest.raises(InputError, match="file exists") as err:
        write_volume(path, kspace=volume_arrays["kspace"][:1])
    assert "v.h5" in _message(err) and "overwrite=True" in _message(err)
    assert path.read_bytes() == before
    write_volume(path, kspace=volume_arrays["kspace"][:1], overwrite=True)
    with FastMRIVolume(path) as vol:
        assert vol.num_slices == 1


def test_failed_write_leaves_nothing_behind(tmp_path, volume_arrays):
    """The write fails after the datasets are written (an attribute h5py cannot store)."""
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(InputError, match="attribute cannot be stored") as err:
        write_volume(folder / "v.h5", kspace=volume_arrays["kspace"],
                     attrs={"max": 1.0, "bad": object()})
    assert "attrs['bad']" in _message(err)
    assert list(folder.iterdir()) == []


def test_failed_overwrite_keeps_the_existing_file(tmp_path, volume_arrays):
    folder = tmp_path / "out"
    folder.mkdir()
    path = write_volume(folder / "v.h5", kspace=volume_arrays["kspace"], attrs={"max": 1.0})
    before = path.read_bytes()
    with pytest.raises(InputError):
        write_volume(path, kspace=volume_arrays["kspace"][:1], attrs={"bad": {"a": 1}}, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["v.h5"]


def test_written_file_has_ordinary_permissions(tmp_path, volume_arrays):
    path = write_volume(tmp_path / "v.h5", kspace=volume_arrays["kspace"])
    reference = tmp_path / "plain.bin"
    reference.write_bytes(b"x")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kspace": np.ones((2, 3, 4, 4), np.float32)}, "k-space must be complex"),
        ({"kspace": np.ones((4, 4), np.complex64)}, "wrong shape"),
        ({"kspace": np.full((2, 3, 4, 4), np.nan, np.complex64)}, "non-finite"),
        ({"kspace": np.ones((2, 3, 4, 4), np.complex64), "mask": np.ones(5)}, "mask does not fit"),
        ({"kspace": np.ones((2, 3, 4, 4), np.complex64), "mask": np.array([0, 1, 3, 1])}, "0 or 1"),
        ({"mask": np.ones(4)}, "needs the k-space"),
        ({"kspace": np.ones((2, 3, 4, 4), np.complex64),
          "targets": {"reconstruction_rss": np.ones((3, 4, 4))}}, "different slice counts"),
        ({"targets": {"reconstruction_rss": np.ones((2, 4, 4), np.complex64)}}, "target must be real"),
        ({"targets": {"reconstruction_rss": np.ones((4, 4))}}, "wrong shape"),
        ({"targets": {"mask": np.ones((2, 4, 4))}}, "invalid target name"),
        ({"targets": {"a/b": np.ones((2, 4, 4))}}, "invalid target name"),
        ({"targets": {"reconstruction": np.ones((2, 4, 4))}, "reconstruction": np.ones((2, 4, 4))},
         "given twice"),
        ({}, "nothing to write"),
        ({"kspace": np.ones((2, 3, 4, 4), np.complex64), "header": "<ismrmrdHeader>"}, "not well-formed"),
        ({"kspace": np.ones((2, 3, 4, 4), np.complex64), "compression": "zstd"}, "unknown compression"),
        ({"kspace": np.ones((2, 3, 4, 4), np.complex64), "attrs": {"": 1}}, "attribute names"),
    ],
)
def test_writer_validates_before_writing(tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match) as err:
        write_volume(tmp_path / "bad.h5", **kwargs)
    assert "bad.h5" in _message(err)
    assert list(tmp_path.iterdir()) == []


def test_writer_missing_folder(tmp_path):
    with pytest.raises(InputError, match="folder does not exist"):
        write_volume(tmp_path / "no" / "v.h5", kspace=np.ones((1, 2, 2), np.complex64))


def test_compressed_volume_round_trips(tmp_path, volume_arrays):
    path = write_volume(tmp_path / "z.h5", kspace=volume_arrays["kspace"],
                        targets={"reconstruction_rss": volume_arrays["target"]}, compression="gzip")
    with h5py.File(path, "r") as f:
        assert f["kspace"].compression == "gzip" and f["kspace"].chunks == (1, 4, 20, 16)
    with FastMRIVolume(path) as vol:
        np.testing.assert_array_equal(vol.kspace(2).numpy(), volume_arrays["kspace"][2])


def test_make_ismrmrd_header_rejects_bad_sizes():
    with pytest.raises(InputError, match="three positive integers"):
        make_ismrmrd_header((640, 0, 1), (320, 320, 1))
    with pytest.raises(InputError, match="three integers"):
        make_ismrmrd_header((640, "a", 1), (320, 320, 1))
