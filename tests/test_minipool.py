"""The demo mini-pool: built from the anatomy installed packages ship and the real scans, indexed, selected."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mrizoo.errors import InputError
from mrizoo.pools import build_slice_index, load_pool, select_pool
from mrizoo.pools.minipool import MINIPOOL_DATASETS, MiniPoolConfig, build_minipool, default_templates_dir, read_nifti

TEMPLATES = default_templates_dir()
pytestmark = pytest.mark.skipif(
    not (TEMPLATES / "ch2.nii.gz").is_file(),
    reason=f"mricron templates not found in {TEMPLATES} (apt-get install mricron-data)",
)
SHAPES = ((48, 40), (40, 40))
SMALL = MiniPoolConfig(shapes=SHAPES, coils=(4, 12), slices_per_volume=2, volumes_per_view=3,
                       variant_volumes_per_view=2, sagittal_volumes=1, contrasts=("T1", "T2", "FLAIR"))
SMALL_CLI = ["--shapes", "48x40,40x40", "--coils", "4-12", "--slices-per-view", "6", "--volumes-per-view", "3",
             "--variant-volumes-per-view", "2", "--sagittal-volumes", "1", "--contrasts", "T1,T2,FLAIR"]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mricron templates without the 0.5 mm ch2better (slow to load; left out with a note)."""
    folder = tmp_path_factory.mktemp("templates")
    for name in ("ch2.nii.gz", "ch2bet.nii.gz", "inia19-t1-brain.nii.gz"):
        if (TEMPLATES / name).is_file():
            (folder / name).symlink_to(TEMPLATES / name)
    return folder


@pytest.fixture(scope="module")
def pool_root(tmp_path_factory: pytest.TempPathFactory, realdata: Path, templates: Path) -> Path:
    root = tmp_path_factory.mktemp("mini")
    result = build_minipool(root, SMALL, templates=templates, realdata=realdata)
    assert result.skipped == [] and any("colin_better" in n and "not found" in n for n in result.notes)
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


def test_pool_selects_every_training_source_and_test_set(index) -> None:
    sel = select_pool(index, load_pool("mini"))
    assert {"colin_val", "val", "colin_sagittal", "macaque", "real_brain", "real_knee"} <= set(sel.test)
    assert all(rows.size > 0 for rows in sel.test.values())
    train_sets = set(index.values("dataset", sel.train))
    from mrizoo.pools.minipool_sources import find_sources

    expected = {"mini_colin_axial", "mini_colin_coronal", "mini_colin_variants"}
    found, _ = find_sources(TEMPLATES)
    expected |= {"mini_mni152"} if "mni152" in found else set()  # nilearn installed
    expected |= {"mini_epi"} if {"dipy_b0", "nibabel_epi"} & set(found) else set()
    assert expected <= train_sets
    assert train_sets <= set(MINIPOOL_DATASETS)
    assert set(index.values("contrast", sel.train)) == {"T1", "T2", "FLAIR"}
    assert set(index.values("split", sel.train)) == {"train"}
    assert set(index.values("view", sel.train)) == {"axial", "coronal"}  # sagittal stays unseen
    for name in sel.test:
        assert not set(sel.train) & set(sel.test[name])


def test_no_training_slice_lies_in_the_colin_validation_slabs(pool_root: Path) -> None:
    """Colin27's renderings are the same subject in the same space: their training slabs keep clear
    of Colin's validation slabs by world position, not only by slice number."""
    for view in ("axial", "coronal"):
        val: list[float] = []
        train: list[float] = []
        for f in [*_files(pool_root / f"mini_colin_{view}"), *_files(pool_root / "mini_colin_variants")]:
            with h5py.File(f) as h:
                if h.attrs["view"] != view:
                    continue
                pos = list(h.attrs["minipool_positions_mm"])
                (val if h.attrs["split"] == "val" else train).extend(pos)
        assert val and train
        gap = np.abs(np.subtract.outer(np.array(train), np.array(val))).min()
        assert gap >= 5.0


def test_stored_rss_is_rss_of_kspace(pool_root: Path) -> None:
    import fastmri

    for f in _files(pool_root)[::7]:
        with h5py.File(f) as h:
            k = torch.from_numpy(h["kspace"][()])
            target = h["reconstruction_rss"][()]
            assert k.dtype == torch.complex64 and k.ndim == 4
            assert float(h.attrs["max"]) == pytest.approx(float(target.max()), rel=1e-6)
        expected = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(torch.view_as_real(k))), dim=1).numpy()
        np.testing.assert_allclose(target, expected, rtol=1e-4, atol=1e-5 * float(expected.max()))


def test_matrices_and_coil_counts_are_drawn_per_volume(pool_root: Path) -> None:
    shapes, coils = set(), set()
    for f in _files(pool_root):
        if "_real" in f.parent.name:
            continue
        human = f.parent.name != "mini_macaque"
        with h5py.File(f) as h:
            n, c, rows, cols = h["kspace"].shape
            shapes.add((rows, cols))
            coils.add(c)
            if human:  # a head- or brain-sized field of view
                assert 110 < float(h.attrs["pixel_mm"]) * max(rows, cols) < 400
    assert shapes == set(SHAPES)
    assert min(coils) >= 4 and max(coils) <= 12 and len(coils) >= 4


def test_views_are_radiological() -> None:
    """Axial and coronal columns run across the left-right mirror plane of the head; a sagittal cut has none."""
    from mrizoo.pools.minipool_sources import template_slice

    vol = read_nifti(TEMPLATES / "ch2.nii.gz")

    def symmetry(img: np.ndarray) -> tuple[float, float]:
        img = img - img.mean()
        lr = float(np.corrcoef(img.ravel(), img[:, ::-1].ravel())[0, 1])
        ud = float(np.corrcoef(img.ravel(), img[::-1, :].ravel())[0, 1])
        return lr, ud

    for view, index in (("axial", 100), ("coronal", 120), ("sagittal", 90)):
        img = template_slice(vol, view, index)
        lr, ud = symmetry(img)
        if view == "sagittal":
            assert img.shape == (181, 217) and lr < 0.8
        else:
            assert lr > 0.8 and lr > ud + 0.03


def test_real_brain_is_the_real_kspace(pool_root: Path, brain_kspace: np.ndarray) -> None:
    with h5py.File(pool_root / "mini_brain_real" / "brain_t1_8ch.h5") as h:
        np.testing.assert_array_equal(h["kspace"][0], brain_kspace.astype(np.complex64))
        assert h.attrs["split"] == "test"


def test_synthetic_contrasts_follow_tissue(pool_root: Path) -> None:
    """Same slab, same anatomy: T2 inverts the T1 ordering of the brain tissue, FLAIR darkens CSF."""
    from mrizoo.pools.minipool_sources import contrast_map, load_volume, template_slice, tissue_levels

    path = str(TEMPLATES / "ch2bet.nii.gz")
    vol, level = load_volume(path)
    t1 = np.clip(template_slice(vol.data, "axial", 100) / level, 0, 1)
    levels = tissue_levels(path)
    csf, grey, white = levels
    assert 0.05 < csf < grey < white < 1.0
    t2, flair = contrast_map(t1, levels, "T2"), contrast_map(t1, levels, "FLAIR")
    brain = t1 > 0.5 * csf
    assert np.corrcoef(t1[brain], t2[brain])[0, 1] < -0.3
    wm, cs = np.abs(t1 - white) < 0.03, np.abs(t1 - csf) < 0.03
    assert t2[cs].mean() > t2[wm].mean() and flair[cs].mean() < flair[wm].mean()


def test_rerun_skips_and_build_is_deterministic(pool_root: Path, tmp_path: Path, realdata: Path,
                                               templates: Path) -> None:
    before = {f: f.stat().st_mtime_ns for f in _files(pool_root)}
    again = build_minipool(pool_root, SMALL, templates=templates, realdata=realdata)
    assert again.written == [] and len(again.skipped) == len(before)
    assert {f: f.stat().st_mtime_ns for f in _files(pool_root)} == before

    names = [f.relative_to(pool_root) for f in _files(pool_root)][::9]
    other = build_minipool(tmp_path / "b", SMALL, templates=templates, realdata=realdata)
    assert len(other.written) == len(before)
    for rel in names:
        with h5py.File(pool_root / rel) as a, h5py.File(tmp_path / "b" / rel) as b:
            np.testing.assert_array_equal(a["kspace"][()], b["kspace"][()])
    with pytest.raises(InputError, match="other settings"):
        build_minipool(pool_root, MiniPoolConfig(shapes=SHAPES, slices_per_volume=2, seed=1), templates=templates,
                       realdata=realdata)


def test_sources_restrict_the_build(tmp_path: Path, templates: Path) -> None:
    cfg = MiniPoolConfig(shapes=((32, 32),), coils=(4, 4), slices_per_volume=1, volumes_per_view=2,
                         sagittal_volumes=1, contrasts=("T1",), sources=("colin", "macaque"))
    result = build_minipool(tmp_path / "s", cfg, templates=templates)
    assert {Path(r).parent.name for r in result.written} == {
        "mini_colin_axial", "mini_colin_coronal", "mini_colin_sagittal", "mini_macaque"}
    assert not any("colin_bet" in n or "mni152" in n for n in result.notes)
    manifest = json.loads((tmp_path / "s" / "mrizoo_minipool.json").read_text())
    assert manifest["config"]["sources"] == ["colin", "macaque"]


def test_missing_templates_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="apt-get install -y mricron-data"):
        build_minipool(tmp_path / "x", SMALL, templates=tmp_path)
    assert not (tmp_path / "x").exists()  # nothing written before the check


@pytest.mark.parametrize("field,value", [("shapes", ((8, 40),)), ("coils", (12, 4)), ("contrasts", ("T3",)),
                                         ("background", (0.0, 0.1)), ("slices_per_volume", 0),
                                         ("sources", ("colin", "nope"))])
def test_bad_settings_are_refused_before_any_work(tmp_path: Path, field: str, value: object) -> None:
    from dataclasses import replace

    with pytest.raises(InputError) as err:
        build_minipool(tmp_path / "x", replace(SMALL, **{field: value}))
    assert err.value.field == field and not (tmp_path / "x").exists()


def test_cli_build_with_two_workers_matches_the_api_build(pool_root: Path, tmp_path: Path, realdata: Path,
                                                         templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mrizoo.cli import minipool

    parser = argparse.ArgumentParser()
    minipool.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["minipool", "build", str(tmp_path / "c"), *SMALL_CLI, "--workers", "2",
                              "--templates", str(templates), "--realdata", str(realdata)])
    assert args.func(args) == 0
    assert "written" in capsys.readouterr().out
    assert json.loads((tmp_path / "c" / "mrizoo_minipool.json").read_text()) == json.loads(
        (pool_root / "mrizoo_minipool.json").read_text())
    for f in _files(pool_root)[::5]:
        with h5py.File(f) as a, h5py.File(tmp_path / "c" / f.relative_to(pool_root)) as b:
            np.testing.assert_array_equal(a["kspace"][()], b["kspace"][()])
    bad = parser.parse_args(["minipool", "build", str(tmp_path / "d"), "--shapes", "32by32"])
    with pytest.raises(InputError, match="ROWSxCOLS"):
        bad.func(bad)
    assert not (tmp_path / "d").exists()
