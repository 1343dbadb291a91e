"""SliceDataset (index, masks, RSS / MVUE / stored targets), collation and VolumeBatchSampler."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mrizoo.data.convert import convert_bart
from mrizoo.data.fastmri_h5 import FastMRIVolume
from mrizoo.data.slices import (
    Sample,
    SliceDataset,
    VolumeBatchSampler,
    center_crop,
    collate_samples,
)
from mrizoo.data.synthetic import make_test_volume
from mrizoo.data.transforms import SampleTransform, SliceRecord
from mrizoo.data.writer import write_volume
from mrizoo.errors import InputError

fastmri = pytest.importorskip("fastmri")
from fastmri.data import transforms as fm_transforms  # noqa: E402


def _fastmri_rss(kspace_chw: torch.Tensor) -> torch.Tensor:
    image = fastmri.ifft2c(fm_transforms.to_tensor(kspace_chw.numpy()))
    return fastmri.rss(fastmri.complex_abs(image), dim=0)


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _masks_or_skip():
    try:
        import mrizoo.masks as masks
    except ImportError as err:
        pytest.skip(f"mrizoo.masks is not importable: {err}")
    return masks


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two synthetic volumes of different sizes (and a non-volume file that is ignored)."""
    root = tmp_path_factory.mktemp("vols")
    make_test_volume(root / "vol_a.h5", num_slices=3, shape=(48, 40), num_coils=4, seed=1)
    make_test_volume(root / "vol_b.h5", num_slices=2, shape=(56, 64), num_coils=4, seed=2, snr_db=30.0)
    (root / "notes.txt").write_text("not a volume")
    return root


# ----------------------------------------------------------------------------- index
def test_index_is_built_from_shapes(folder):
    ds = SliceDataset(folder)
    assert len(ds) == 5
    assert [v.path.name for v in ds.volumes] == ["vol_a.h5", "vol_b.h5"]
    assert [v.kspace_shape for v in ds.volumes] == [(3, 4, 48, 40), (2, 4, 56, 64)]
    assert ds.examples == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert ds.volume_ids == [0, 0, 0, 1, 1]
    single = SliceDataset([folder / "vol_b.h5"])
    assert len(single) == 2


def test_index_of_a_huge_virtual_volume_reads_no_data(tmp_path):
    """Indexing a 100,000-slice volume (about 1.5 TB if read) only reads its shape."""
    with h5py.File(tmp_path / "huge.h5", "w") as f:
        f.create_dataset("kspace", shape=(100_000, 16, 640, 368), dtype=np.complex64, chunks=(1, 1, 640, 368))
    ds = SliceDataset(tmp_path)
    assert len(ds) == 100_000
    sample = ds[54_321]
    assert sample.kspace.shape == (16, 640, 368) and sample.slice_index == 54_321


def test_bad_construction_arguments(tmp_path, folder):
    with pytest.raises(InputError, match="no .h5 volumes"):
        SliceDataset(tmp_path)
    with pytest.raises(InputError, match="no such file or folder"):
        SliceDataset(tmp_path / "missing")
    with pytest.raises(InputError, match="no volumes given"):
        SliceDataset([])
    with pytest.raises(InputError, match="seed mode"):
        SliceDataset(folder, seed_mode="sometimes")
    with pytest.raises(InputError, match="without a mask name"):
        SliceDataset(folder, acceleration=4)
    with pytest.raises(InputError, match="crop"):
        SliceDataset(folder, crop=(0, 4))
    if _importable("mrizoo.masks"):
        with pytest.raises(InputError, match="unknown mask"):
            SliceDataset(folder, mask="no-such-mask")
    if _importable("mrizoo.physics.espirit"):
        with pytest.raises(InputError, match="unknown ESPIRiT setting"):
            SliceDataset(folder, target="mvue", espirit={"calib": 24})
    bad = tmp_path / "bad.h5"
    bad.write_text("plain text")
    with pytest.raises(InputError, match="not a readable HDF5"):
        SliceDataset([folder / "vol_a.h5", bad])


# ----------------------------------------------------------------------------- RSS targets
def test_rss_target_full_sampling(folder):
    ds = SliceDataset(folder)
    for index in (1, 4):
        s = ds[index]
        assert isinstance(s, Sample)
        vid, sl = ds.examples[index]
        with FastMRIVolume(ds.volumes[vid].path) as vol:
            full = vol.kspace(sl)
            stored = vol.target(sl)
            volume_max = vol.attrs["max"]
        assert s.mask.dtype == torch.bool and bool(s.mask.all())
        assert torch.equal(s.kspace, full)
        torch.testing.assert_close(s.target, _fastmri_rss(full), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(s.target, stored, rtol=1e-5, atol=1e-6)
        assert s.max_value == pytest.approx(volume_max)
        assert s.fname == ds.volumes[vid].path.name and s.slice_index == sl and s.maps is None


def test_rss_target_crop_follows_fastmri_centre_crop(folder):
    ds = SliceDataset(folder, crop=(31, 27))
    s = ds[3]
    with FastMRIVolume(ds.volumes[1].path) as vol:
        full = vol.kspace(0)
    expected = fm_transforms.center_crop(_fastmri_rss(full), (31, 27))
    assert s.target.shape == (31, 27)
    torch.testing.assert_close(s.target, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="crop does not fit") as err:
        SliceDataset(folder, crop=(50, 50))[0]  # vol_a is 48 x 40
    assert "vol_a.h5" in str(err.value)


@pytest.mark.parametrize("shape", [(7, 9), (8, 8), (5, 4), (10, 3)])
def test_center_crop_matches_fastmri(shape):
    x = torch.arange(11 * 10, dtype=torch.float32).reshape(1, 11, 10)
    torch.testing.assert_close(center_crop(x, shape), fm_transforms.center_crop(x, shape))
    np.testing.assert_array_equal(center_crop(x.numpy(), shape), fm_transforms.center_crop(x, shape).numpy())


def test_stored_target_by_key(folder):
    ds = SliceDataset(folder, target="reconstruction_rss", crop=(20, 20))
    s = ds[2]
    with FastMRIVolume(ds.volumes[0].path) as vol:
        expected = center_crop(vol.target(2, "reconstruction_rss"), (20, 20))
    torch.testing.assert_close(s.target, expected)
    with pytest.raises(InputError, match="no such target"):
        SliceDataset(folder, target="reconstruction_esc")[0]


# ----------------------------------------------------------------------------- masks
def test_filename_seeded_masks_match_fastmri(folder):
    masks = _masks_or_skip()
    subsample = pytest.importorskip("fastmri.data.subsample")
    ds = SliceDataset(folder, mask="equispaced", mask_params={"center_fraction": 0.08},
                      acceleration=4, seed_mode="filename")
    a0, a2, b0 = ds[0], ds[2], ds[3]
    assert torch.equal(a0.mask, a2.mask)  # one mask per volume
    expected = masks.create_mask("equispaced", (48, 40), seed=masks.seed_from_name("vol_a.h5"),
                                 acceleration=4, center_fraction=0.08).mask
    assert torch.equal(a0.mask, expected)
    func = subsample.EquiSpacedMaskFunc(center_fractions=[0.08], accelerations=[4])
    ref, _ = func((1, 56, 64, 2), seed=tuple(map(ord, "vol_b.h5")))
    assert torch.equal(b0.mask[0], ref.reshape(-1).bool())
    assert bool((b0.mask == b0.mask[0]).all())  # column mask
    with FastMRIVolume(folder / "vol_b.h5") as vol:
        full = vol.kspace(0)
    assert torch.equal(b0.kspace, torch.where(b0.mask, full, torch.zeros_like(full)))
    assert 0 < int(b0.mask[0].sum()) < 64


def test_random_masks_are_fresh_per_sample_and_reproducible(folder):
    _masks_or_skip()
    kwargs = dict(mask="random", mask_params={"center_fraction": 0.08, "acceleration": 4})
    ds = SliceDataset(folder, seed=7, **kwargs)
    first = [ds[0].mask for _ in range(4)]
    assert any(not torch.equal(first[0], m) for m in first[1:])
    again = SliceDataset(folder, seed=7, **kwargs)
    assert all(torch.equal(m, again[0].mask) for m in first)
    fixed = SliceDataset(folder, seed_mode="sample", **kwargs)
    assert torch.equal(fixed[1].mask, fixed[1].mask)
    assert not torch.equal(fixed[0].mask, fixed[1].mask)


def test_masks_in_dataloader_workers(folder):
    _masks_or_skip()
    ds = SliceDataset(folder, mask="random", mask_params={"center_fraction": 0.08, "acceleration": 4})
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=VolumeBatchSampler(ds, batch_size=2, seed=0), collate_fn=collate_samples,
        num_workers=2,
    )
    batches = list(loader)
    assert sum(len(b) for b in batches) == 5
    for b in batches:
        assert b.kspace.shape[0] == b.mask.shape[0] == b.target.shape[0]
        assert torch.equal(b.kspace, torch.where(b.mask[:, None], b.kspace, torch.zeros_like(b.kspace)))


def test_stored_mask_marks_undersampled_data(tmp_path):
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((2, 3, 16, 12)) + 1j * rng.standard_normal((2, 3, 16, 12))).astype(np.complex64)
    columns = np.zeros(12, dtype=bool)
    columns[[0, 4, 5, 6, 8]] = True
    target = np.abs(k).sum(1).astype(np.float32)
    write_volume(tmp_path / "test_file.h5", kspace=k * columns, mask=columns,
                 targets={"reconstruction_rss": target}, attrs={"max": 9.0})
    ds = SliceDataset(tmp_path, target="reconstruction_rss", mask="equispaced", acceleration=2,
                      mask_params={"center_fraction": 0.1})
    s = ds[1]
    assert torch.equal(s.mask, torch.from_numpy(columns).expand(16, 12))
    np.testing.assert_array_equal(s.kspace.numpy(), k[1] * columns)
    np.testing.assert_array_equal(s.target.numpy(), target[1])
    assert s.max_value == 9.0
    with pytest.raises(InputError, match="needs fully sampled k-space") as err:
        SliceDataset(tmp_path, target="rss")[0]
    assert "test_file.h5" in str(err.value)


# ----------------------------------------------------------------------------- MVUE targets
def _espirit_or_skip():
    try:
        from mrizoo.physics.espirit import espirit_maps
    except ImportError as err:
        pytest.skip(f"ESPIRiT is not importable: {err}")
    return espirit_maps


def test_mvue_target_on_real_brain_matches_sigpy_espirit(tmp_path, realdata):
    """MVUE = |sum_c conj(S_c) x_c| / sqrt(sum_c |S_c|^2) with sigpy's ESPIRiT maps as the oracle."""
    _espirit_or_skip()
    mri = pytest.importorskip("sigpy.mri")
    convert_bart(realdata / "brain_t1_8ch_full", tmp_path / "brain.h5")
    ds = SliceDataset(tmp_path, target="mvue", espirit={"calib_width": 24})
    s = ds[0]
    assert s.maps is not None and s.maps.shape == (8, 230, 180)
    with FastMRIVolume(tmp_path / "brain.h5") as vol:
        k = vol.kspace(0).numpy()
    maps = mri.app.EspiritCalib(k, calib_width=24, thresh=0.02, kernel_width=6, crop=0.95,
                                max_iter=10, show_pbar=False).run()
    coil_images = fastmri.ifft2c(fm_transforms.to_tensor(k)).numpy()
    x = coil_images[..., 0] + 1j * coil_images[..., 1]
    norm = np.sqrt((np.abs(maps) ** 2).sum(0))
    ref = np.where(norm > 0, np.abs((maps.conj() * x).sum(0)) / np.maximum(norm, 1e-12), 0.0)
    inside = norm > 0
    assert 0.5 < inside.mean() < 0.95
    err = np.linalg.norm(s.target.numpy()[inside] - ref[inside]) / np.linalg.norm(ref[inside])
    assert err < 1e-3, err
    assert s.max_value == pytest.approx(float(s.target.max()))  # slice max for MVUE targets


def test_mvue_of_simulated_coils_recovers_the_image_magnitude(tmp_path):
    """With smooth simulated coils, MVUE ~ |image| inside the object (maps are exact up to phase)."""
    _espirit_or_skip()
    from mrizoo.data.synthetic import ellipse_phantom

    make_test_volume(tmp_path / "p.h5", num_slices=1, shape=(48, 48), num_coils=8, seed=3)
    s = SliceDataset(tmp_path, target="mvue", espirit={"calib_width": 16, "crop": 0.8})[0]
    truth = ellipse_phantom((48, 48)).numpy()
    inside = truth > 0.1
    err = np.abs(s.target.numpy()[inside] - truth[inside])
    assert np.median(err) < 0.02 * truth.max(), np.median(err)
    rss = SliceDataset(tmp_path, target="rss", with_maps=True, espirit={"calib_width": 16})[0]
    assert rss.maps is not None and rss.maps.shape == (8, 48, 48)


# ----------------------------------------------------------------------------- batching
def test_volume_batch_sampler_never_mixes_volumes(folder):
    ds = SliceDataset(folder)
    sampler = VolumeBatchSampler(ds, batch_size=2, shuffle=True, seed=3)
    assert len(sampler) == 3  # vol_a: 2 + 1, vol_b: 1
    orders = []
    for _ in range(4):
        batches = list(sampler)
        orders.append(batches)
        assert sorted(i for b in batches for i in b) == list(range(5))
        for b in batches:
            assert len({ds.volume_ids[i] for i in b}) == 1
            assert 1 <= len(b) <= 2
    assert any(o != orders[0] for o in orders[1:])  # reshuffled every epoch
    again = VolumeBatchSampler(ds, batch_size=2, shuffle=True, seed=3)
    assert list(again) == orders[0]  # reproducible from the seed
    dropped = VolumeBatchSampler(ds, batch_size=2, drop_last=True, seed=3)
    assert len(dropped) == 2 and all(len(b) == 2 for b in dropped)
    ordered = list(VolumeBatchSampler(ds, batch_size=3, shuffle=False))
    assert ordered == [[0, 1, 2], [3, 4]]
    with pytest.raises(InputError, match="batch size"):
        VolumeBatchSampler(ds, batch_size=0)


def test_dataloader_batches_volumes_of_different_sizes(folder):
    ds = SliceDataset(folder)
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=VolumeBatchSampler(ds, batch_size=4, seed=0), collate_fn=collate_samples
    )
    shapes = sorted(tuple(b.kspace.shape) for b in loader)
    assert shapes == [(2, 4, 56, 64), (3, 4, 48, 40)]
    for b in loader:
        assert b.target.shape[0] == b.mask.shape[0] == len(b.fname) == len(b.slice_index)
        assert len(set(b.fname)) == 1 and b.max_value.dtype == torch.float32
    with pytest.raises(InputError, match="different sizes"):
        collate_samples([ds[0], ds[3]])
    with pytest.raises(InputError, match="empty"):
        collate_samples([])


# ----------------------------------------------------------------------------- transforms
REFERENCE = Path(__file__).parent / "data" / "slice_reference.npz"
# name -> (SliceDataset settings, items): the samples in REFERENCE were computed with these
# settings by SliceDataset before it took a transform (see tests/data/README.md)
REFERENCE_CONFIGS = {
    "a": (dict(target="rss", mask="equispaced_fraction", acceleration=4, mask_params={"center_fraction": 0.125},
               seed_mode="sample", seed=3, crop=(24, 20)), [0, 2]),
    "b": (dict(target="mvue", mask="random", acceleration=4, mask_params={"center_fraction": 0.125},
               seed_mode="filename", espirit={"calib_width": 16}), [1]),
    "c": (dict(target="reconstruction_rss"), [1]),
    "d": (dict(target="rss", mask="random", acceleration=4, mask_params={"center_fraction": 0.125},
               seed_mode="random", seed=7), [0, 1, 2, 1]),
    "e": (dict(target="rss", with_maps=True, espirit={"calib_width": 16}), [2]),
}


@pytest.fixture(scope="module")
def reference_volume(tmp_path_factory) -> Path:
    return make_test_volume(tmp_path_factory.mktemp("ref") / "ref_vol.h5", num_slices=3, shape=(32, 32),
                            num_coils=3, seed=5, snr_db=35.0)


@pytest.mark.parametrize("name", sorted(REFERENCE_CONFIGS))
def test_default_transform_gives_the_reference_samples(reference_volume, name):
    """The default transform yields the samples SliceDataset gave before transforms were pluggable."""
    kwargs, items = REFERENCE_CONFIGS[name]
    ref = np.load(REFERENCE)
    ds = SliceDataset([reference_volume], **kwargs)
    assert isinstance(ds.transform, SampleTransform) and ds.transform.target == kwargs["target"]
    with FastMRIVolume(reference_volume) as vol:
        full = [vol.kspace(i) for i in range(vol.num_slices)]
    for j, i in enumerate(items):  # in order: the "random" seed mode draws from one generator
        s = ds[i]
        key = f"{name}{j}"
        assert isinstance(s, Sample) and s.fname == "ref_vol.h5" and s.slice_index == i == ref[key + "_meta"][0]
        np.testing.assert_array_equal(s.mask.numpy(), ref[key + "_mask"])
        assert torch.equal(s.kspace, torch.where(s.mask, full[i], torch.zeros((), dtype=torch.complex64)))
        np.testing.assert_allclose(s.target.numpy(), ref[key + "_target"], rtol=1e-4, atol=1e-5)
        assert s.max_value == pytest.approx(ref[key + "_meta"][1], rel=1e-5)
        if key + "_maps" in ref.files:
            np.testing.assert_allclose(s.maps.numpy(), ref[key + "_maps"], atol=1e-4)
        else:
            assert s.maps is None


def test_explicit_default_transform_equals_the_settings(reference_volume):
    kwargs, _ = REFERENCE_CONFIGS["a"]
    by_settings = SliceDataset([reference_volume], **kwargs)
    explicit = SliceDataset([reference_volume], transform=SampleTransform(**kwargs))
    for i in range(len(by_settings)):
        a, b = by_settings[i], explicit[i]
        assert torch.equal(a.mask, b.mask) and torch.equal(a.kspace, b.kspace) and torch.equal(a.target, b.target)
        assert a.max_value == b.max_value
    assert explicit.crop == (24, 20)
    stored = SliceDataset([reference_volume], transform=SampleTransform(target="reconstruction_rss"))
    assert stored.target == "reconstruction_rss"
    with FastMRIVolume(reference_volume) as vol:
        assert torch.equal(stored[1].target, vol.target(1, "reconstruction_rss"))
    with pytest.raises(InputError, match="differs") as err:
        SliceDataset([reference_volume], target="mvue", transform=SampleTransform(target="reconstruction_rss"))
    assert err.value.field == "target"


class _Recorder:
    """A custom transform: keeps every record it gets and returns a tuple of its own."""

    def __init__(self) -> None:
        self.records: list[SliceRecord] = []

    def __call__(self, record: SliceRecord) -> tuple[str, int, float]:
        self.records.append(record)
        return ("mine", record.slice_index, float(record.kspace.abs().sum()))


def test_custom_transform_receives_the_record_and_its_output_is_the_item(folder):
    recorder = _Recorder()
    ds = SliceDataset(folder, transform=recorder)
    item = ds[4]
    rec = recorder.records[-1]
    with FastMRIVolume(folder / "vol_b.h5") as vol:
        full, attrs = vol.kspace(1), vol.attrs
    assert item == ("mine", 1, pytest.approx(float(full.abs().sum())))
    assert torch.equal(rec.kspace, full) and rec.kspace.shape == (4, 56, 64)  # as stored: not undersampled
    assert rec.mask is None and rec.target is None  # no stored mask; rss is computed, not stored
    assert rec.attrs.keys() == attrs.keys() and rec.attrs["max"] == attrs["max"] > 0
    assert (rec.fname, rec.slice_index, rec.path) == ("vol_b.h5", 1, folder / "vol_b.h5")
    stored = SliceDataset(folder, target="reconstruction_rss", transform=recorder)
    stored[0]
    with FastMRIVolume(folder / "vol_a.h5") as vol:
        assert torch.equal(recorder.records[-1].target, vol.target(0, "reconstruction_rss"))
    assert ds.record(4).slice_index == 1 and ds.crop is None


def test_custom_transform_sees_stored_masks_and_single_coil_data(tmp_path):
    rng = np.random.default_rng(1)
    k = (rng.standard_normal((2, 16, 12)) + 1j * rng.standard_normal((2, 16, 12))).astype(np.complex64)
    columns = np.zeros(12, dtype=bool)
    columns[[0, 5, 6, 9]] = True
    write_volume(tmp_path / "single.h5", kspace=k * columns, mask=columns,
                 targets={"reconstruction_esc": np.abs(k).astype(np.float32)})
    rec = SliceDataset(tmp_path, target="reconstruction_esc", transform=lambda r: r)[1]
    assert isinstance(rec, SliceRecord) and rec.kspace.shape == (1, 16, 12)
    np.testing.assert_array_equal(rec.kspace[0].numpy(), k[1] * columns)
    assert rec.mask.shape == (16, 12) and torch.equal(rec.mask, torch.from_numpy(columns).expand(16, 12))
    np.testing.assert_array_equal(rec.target.numpy(), np.abs(k[1]).astype(np.float32))


def test_bad_transform_is_refused_before_any_work(folder):
    with pytest.raises(InputError, match="must be callable") as err:
        SliceDataset(folder, transform="rss")
    assert err.value.field == "transform"
    with pytest.raises(InputError, match="default transform") as err:
        SliceDataset(folder, transform=_Recorder(), crop=(8, 8))
    assert err.value.field == "crop"
    with pytest.raises(InputError) as err:
        SliceDataset(folder, transform=_Recorder(), mask="equispaced", acceleration=4)
    assert err.value.field == "mask"
    ds = SliceDataset(folder, transform=_Recorder())
    with pytest.raises(InputError, match="default transform") as err:
        ds.crop = (8, 8)
    assert err.value.field == "crop"



def test_records_of_the_shipped_real_scan_match_fastmri_raw_samples(tmp_path):
    """On the real brain scan shipped with the package (always present), a record holds what
    fastMRI's own SliceDataset reads raw, and the default transform keeps the file's own mask."""
    import shutil

    from fastmri.data import mri_data

    from mrizoo.demo.scan import demo_scan_path

    folder = tmp_path / "multicoil_val"
    folder.mkdir()
    src = shutil.copy(demo_scan_path(), folder / "brain_t1_8ch_r4.h5")
    theirs = mri_data.SliceDataset(folder, challenge="multicoil")[0]
    kspace, mask, target, attrs, fname, dataslice = theirs
    rec = SliceDataset(folder, target="reconstruction_rss", transform=lambda r: r)[0]
    np.testing.assert_array_equal(rec.kspace.numpy(), kspace)  # [8, 230, 180], zeros where not sampled
    np.testing.assert_array_equal(rec.mask.numpy(), np.broadcast_to(mask, rec.mask.shape))
    np.testing.assert_array_equal(rec.target.numpy(), target)
    assert (rec.fname, rec.slice_index) == (fname, dataslice)
    assert rec.attrs["max"] == attrs["max"] and rec.attrs["acquisition"] == attrs["acquisition"] == "AXT1"

    s = SliceDataset(folder, target="reconstruction_rss", mask="equispaced_fraction", acceleration=8,
                     mask_params={"center_fraction": 0.04})[0]
    assert torch.equal(s.mask, rec.mask) and not bool(s.mask.all())  # the file's mask, not a new one
    assert torch.equal(s.kspace, rec.kspace) and torch.equal(s.target, rec.target)
    assert s.max_value == pytest.approx(attrs["max"])
    with pytest.raises(InputError, match="needs fully sampled k-space") as err:
        SliceDataset([src], target="rss")[0]
    assert err.value.field == "target"
