"""The demo mini-pool: built from the mricron-data templates and the real scans, indexed, selected."""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mrizoo.errors import InputError
from mrizoo.pools import build_slice_index, load_pool, select_pool
from mrizoo.pools.minipool import MiniPoolConfig, build_minipool, default_templates_dir, read_nifti

TEMPLATES = default_templates_dir()
pytestmark = pytest.mark.skipif(
    not (TEMPLATES / "ch2.nii.gz").is_file(),
    reason=f"mricron templates not found in {TEMPLATES} (apt-get install mricron-data)",
)
SMALL = MiniPoolConfig(size=64, slices_per_volume=2)


@pytest.fixture(scope="module")
def pool_root(tmp_path_factory: pytest.TempPathFactory, realdata: Path) -> Path:
    root = tmp_path_factory.mktemp("mini")
    result = build_minipool(root, SMALL, realdata=realdata)
    assert result.notes == [] and result.skipped == []
    return root


@pytest.fixture(scope="module")
def index(pool_root: Path, tmp_path_factory: pytest.TempPathFactory):
    return build_slice_index(pool_root, cache_dir=tmp_path_factory.mktemp("cache"))


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.h5"))


def test_colin_template_dims_and_ras_orientation() -> None:
    vol = read_nifti(TEMPLATES / "ch2.nii.gz")
    assert vol.shape == (181, 217, 181)  # Colin27 at 1 mm (MNI bounding box)
    # RAS: the top of the head (superior) lies at high axis-2 indices, the neck cut at low ones;
    # the head is widest in the anterior-posterior direction.
    fg = vol > 0.1 * np.percentile(vol, 99.5)
    extent = [np.ptp(np.flatnonzero(fg.any(axis=tuple(a for a in range(3) if a != ax)))) for ax in range(3)]
    assert extent[1] > extent[0]
    top, bottom = fg[:, :, -40:].sum(), fg[:, :, :40].sum()
    assert top > 0 and bottom > 0


def test_pool_selects_train_and_every_test_set(index) -> None:
    sel = select_pool(index, load_pool("mini"))
    assert sel.train.size > 0
    assert set(sel.test) == {"colin_val", "colin_sagittal", "macaque", "real_brain", "real_knee"}
    assert all(rows.size > 0 for rows in sel.test.values())
    train_sets = set(index.values("dataset", sel.train))
    assert train_sets == {"mini_colin_axial", "mini_colin_coronal"}
    assert set(index.values("contrast", sel.train)) == {"T1", "T2"}
    assert set(index.values("split", sel.train)) == {"train"}
    # no slice of a held-out slab is a training slice
    assert not set(sel.train) & set(sel.test["colin_val"])


def test_train_and_val_slabs_do_not_share_slices(pool_root: Path) -> None:
    for view in ("axial", "coronal"):
        seen: dict[str, set[int]] = {"train": set(), "val": set()}
        for f in _files(pool_root / f"mini_colin_{view}"):
            with h5py.File(f) as h:
                seen[h.attrs["split"]] |= set(int(s) for s in h.attrs["minipool_slices"])
        assert seen["train"] and seen["val"] and not seen["train"] & seen["val"]


def test_stored_rss_is_rss_of_kspace(pool_root: Path) -> None:
    import fastmri

    for f in _files(pool_root):
        with h5py.File(f) as h:
            k = torch.from_numpy(h["kspace"][()])
            target = h["reconstruction_rss"][()]
            assert k.dtype == torch.complex64 and k.ndim == 4
            assert float(h.attrs["max"]) == pytest.approx(float(target.max()), rel=1e-6)
        expected = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(torch.view_as_real(k))), dim=1).numpy()
        np.testing.assert_allclose(target, expected, rtol=1e-4, atol=1e-5 * float(expected.max()))


def test_views_shapes_and_orientation(pool_root: Path) -> None:
    def symmetry(img: np.ndarray) -> tuple[float, float]:
        img = img - img.mean()
        lr = float(np.corrcoef(img.ravel(), img[:, ::-1].ravel())[0, 1])
        ud = float(np.corrcoef(img.ravel(), img[::-1, :].ravel())[0, 1])
        return lr, ud

    for view in ("axial", "coronal", "sagittal"):
        for f in _files(pool_root / f"mini_colin_{view}"):
            with h5py.File(f) as h:
                assert h["kspace"].shape == (2, 8, 64, 64)
                assert h.attrs["view"] == view
                if "_t1_" not in f.name:
                    continue
                lr, ud = symmetry(h["reconstruction_rss"][0])
            if view == "sagittal":  # no mirror plane in a sagittal cut
                assert lr < 0.8
            else:  # columns run across the left-right mirror plane of the head
                assert lr > 0.8 and lr > ud + 0.03


def test_real_brain_keeps_the_real_scan(pool_root: Path, brain_kspace: np.ndarray) -> None:
    from skimage.transform import resize

    coil_imgs = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(brain_kspace, axes=(-2, -1)), norm="ortho"),
                                axes=(-2, -1))
    ref = np.sqrt((np.abs(coil_imgs) ** 2).sum(0))[25:205, :]  # centre 180 x 180
    ref = resize(ref, (64, 64), anti_aliasing=True)
    with h5py.File(pool_root / "mini_brain_real" / "brain_t1_8ch.h5") as h:
        assert h["kspace"].shape == (1, 8, 64, 64)
        got = h["reconstruction_rss"][0]
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.97


def test_contrasts_differ_as_inverted_mappings(pool_root: Path) -> None:
    with h5py.File(pool_root / "mini_colin_axial" / "colin_axial_t1_00.h5") as h:
        t1 = h["reconstruction_rss"][0]
    with h5py.File(pool_root / "mini_colin_axial" / "colin_axial_t2_00.h5") as h:
        t2 = h["reconstruction_rss"][0]
    inside = t1 > 0.3 * t1.max()
    assert np.corrcoef(t1[inside], t2[inside])[0, 1] < -0.3


def test_rerun_skips_and_build_is_deterministic(pool_root: Path, tmp_path: Path, realdata: Path) -> None:
    before = {f: f.stat().st_mtime_ns for f in _files(pool_root)}
    again = build_minipool(pool_root, SMALL, realdata=realdata)
    assert again.written == [] and len(again.skipped) == len(before)
    assert {f: f.stat().st_mtime_ns for f in _files(pool_root)} == before

    other = build_minipool(tmp_path / "b", SMALL, realdata=realdata, workers=2)
    assert len(other.written) == len(before)
    for f in _files(pool_root):
        with h5py.File(f) as a, h5py.File(tmp_path / "b" / f.relative_to(pool_root)) as b:
            np.testing.assert_array_equal(a["kspace"][()], b["kspace"][()])
    with pytest.raises(InputError, match="other settings"):
        build_minipool(pool_root, MiniPoolConfig(size=64, slices_per_volume=2, seed=1), realdata=realdata)


def test_missing_templates_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="apt-get install -y mricron-data"):
        build_minipool(tmp_path / "x", SMALL, templates=tmp_path)


def test_cli_build(tmp_path: Path, realdata: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mrizoo.cli import minipool

    parser = argparse.ArgumentParser()
    minipool.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["minipool", "build", str(tmp_path / "c"), "--slices-per-view", "4",
                              "--volumes-per-view", "2", "--size", "32", "--coils", "4",
                              "--realdata", str(realdata)])
    assert args.func(args) == 0
    assert "written" in capsys.readouterr().out
    with h5py.File(tmp_path / "c" / "mini_colin_axial" / "colin_axial_t1_00.h5") as h:
        assert h["kspace"].shape == (2, 4, 32, 32)


def _coil0_profile(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Coil 0's sensitivity magnitude |S_0| = |coil image 0| / RSS inside the head, and the head mask."""
    with h5py.File(path, "r") as f:
        k = torch.from_numpy(f["kspace"][0])
    from mrizoo.physics import ifft2c

    img = ifft2c(k).abs()
    rss = img.pow(2).sum(0).sqrt()
    head = rss > 0.2 * rss.max()
    return img[0] / rss.clamp_min(1e-6), head


def _profile_change(a: Path, b: Path) -> float:
    (pa, ha), (pb, hb) = _coil0_profile(a), _coil0_profile(b)
    both = ha & hb
    return float((pa - pb).abs()[both].mean())


def test_random_coils_give_each_volume_its_own_array(pool_root: Path, tmp_path: Path) -> None:
    """Default: one fixed array for all volumes (and the manifest of older roots stays valid);
    --random-coils: each volume has its own coil placement, reproducibly."""
    import json

    fixed = sorted((pool_root / "mini_colin_axial").glob("*.h5"))
    same = [_profile_change(a, b) for a, b in zip(fixed, fixed[1:])]
    assert "random_coils" not in json.loads((pool_root / "mrizoo_minipool.json").read_text())["config"]
    cfg = MiniPoolConfig(size=64, slices_per_volume=2, random_coils=True)
    build_minipool(tmp_path / "a", cfg)
    build_minipool(tmp_path / "b", cfg)
    files = sorted((tmp_path / "a" / "mini_colin_axial").glob("*.h5"))
    moved = [_profile_change(a, b) for a, b in zip(files, files[1:])]
    assert max(same) < 0.02 and min(moved) > 3 * max(same)  # measured: <= 0.008 vs >= 0.039
    for p in files:  # the same settings give the same arrays
        assert _profile_change(p, tmp_path / "b" / "mini_colin_axial" / p.name) < 1e-6
