"""Slice index: scanning metadata only, metadata sources, splits, selections vs brute force, cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mrizoo.data.synthetic import make_test_volume
from mrizoo.data.writer import make_ismrmrd_header
from mrizoo.errors import InputError
from mrizoo.pools import SliceIndex, build_slice_index, holdout_split, split_from_path
from mrizoo.pools.spec import Range, Selection

fastmri = pytest.importorskip("fastmri")
from fastmri.data import transforms as fm_transforms  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _header(h: int, w: int, *, vendor: str, model: str, tesla: float, protocol: str) -> str:
    base = make_ismrmrd_header((h, w, 1), (h, w, 1))
    extra = (
        f"  <measurementInformation><protocolName>{protocol}</protocolName></measurementInformation>\n"
        f"  <acquisitionSystemInformation><systemVendor>{vendor}</systemVendor><systemModel>{model}</systemModel>"
        f"<systemFieldStrength_T>{tesla}</systemFieldStrength_T></acquisitionSystemInformation>\n"
    )
    head, sep, tail = base.partition("<experimentalConditions>")
    return head + extra.lstrip() + "  " + sep + tail


def _volume(path: Path, *, slices: int, shape: tuple[int, int], coils: int, seed: int,
            acquisition: str = "SYNTHETIC", attrs: dict | None = None, header: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    make_test_volume(path, num_slices=slices, shape=shape, num_coils=coils, seed=seed, acquisition=acquisition)
    if attrs or header:
        with h5py.File(path, "a") as f:
            for k, v in (attrs or {}).items():
                f.attrs[k] = v
            if header:
                del f["ismrmrd_header"]
                f.create_dataset("ismrmrd_header", data=np.bytes_(header.encode()))
    return path


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """fastMRI-style knee/brain folders with headers, a sidecar-described dataset, file-attribute metadata."""
    root = tmp_path_factory.mktemp("root")
    knee = root / "knee"
    _volume(knee / "multicoil_train" / "file_k1.h5", slices=3, shape=(24, 20), coils=3, seed=1,
            acquisition="CORPD_FBK", header=_header(24, 20, vendor="SIEMENS", model="Skyra", tesla=2.89362,
                                                    protocol="CORPD_FBK"))
    _volume(knee / "multicoil_train" / "file_k2.h5", slices=4, shape=(24, 20), coils=3, seed=2,
            acquisition="CORPDFS_FBK", header=_header(24, 20, vendor="SIEMENS", model="Aera", tesla=1.494,
                                                      protocol="CORPDFS_FBK"))
    _volume(knee / "multicoil_val" / "file_k3.h5", slices=2, shape=(24, 20), coils=3, seed=3,
            acquisition="CORPDFS_FBK", header=_header(24, 20, vendor="SIEMENS", model="Skyra", tesla=2.89362,
                                                      protocol="CORPDFS_FBK"))
    _volume(root / "brain" / "multicoil_train" / "file_b1.h5", slices=3, shape=(20, 16), coils=4, seed=4,
            acquisition="AXT2", header=_header(20, 16, vendor="SIEMENS", model="Prisma_fit", tesla=2.89,
                                              protocol="AXT2"))
    _volume(root / "brain" / "multicoil_val" / "file_b2.h5", slices=2, shape=(20, 16), coils=4, seed=5,
            acquisition="AXFLAIR", header=_header(20, 16, vendor="SIEMENS", model="Avanto", tesla=1.5,
                                                  protocol="AXFLAIR"))
    # a dataset described by a sidecar, no predefined split
    s2d = root / "s2d"
    for i in range(4):
        _volume(s2d / f"case{i}.h5", slices=2 + i % 2, shape=(16, 16), coils=2, seed=10 + i)
    (s2d / "mrizoo_metadata.yaml").write_text(
        "dataset: stanford2d\n"
        "defaults: {anatomy: knee, vendor: GE, field_strength: 3.0, view: various}\n"
        "volumes:\n  case0: {contrast: PD}\n  case1: {contrast: T2, anatomy: ankle}\n"
    )
    # metadata in file attributes (how a converter may record it)
    _volume(root / "misc" / "m1.h5", slices=3, shape=(16, 12), coils=1, seed=20,
            attrs={"dataset": "m4raw_gre", "contrast": "GRE", "anatomy": "brain", "split": "test"})
    return root


@pytest.fixture(scope="module")
def index(data_root: Path, tmp_path_factory) -> SliceIndex:
    return build_slice_index(
        data_root, dataset={"knee": "fastmri_knee", "brain": "fastmri_brain"},
        defaults={"fastmri_knee": {"anatomy": "knee", "view": "coronal", "contrasts": ["PD", "PDFS"], "volumes": 1172},
                  "fastmri_brain": {"anatomy": "brain"}},
        cache_dir=tmp_path_factory.mktemp("cache"),
    )


def _by_volume(index: SliceIndex) -> dict[str, dict]:
    return {r["volume"]: r for r in index.records(np.arange(len(index)))}


# ----------------------------------------------------------------------------- rows and metadata
def test_one_row_per_slice_with_shapes_from_the_files(index: SliceIndex, data_root: Path) -> None:
    rows = index.records(np.arange(len(index)))
    files = sorted(p for p in data_root.rglob("*.h5"))
    assert len({r["file"] for r in rows}) == len(files)
    total = 0
    for path in files:
        with h5py.File(path, "r") as f:
            shape = f["kspace"].shape
        rel = path.relative_to(data_root).as_posix()
        mine = sorted((r for r in rows if r["file"] == rel), key=lambda r: r["slice"])
        assert [r["slice"] for r in mine] == list(range(shape[0]))
        for r in mine:
            assert (r["height"], r["width"]) == shape[-2:]
            assert r["coils"] == (shape[1] if len(shape) == 4 else 1)
            assert r["num_slices"] == shape[0] and r["volume"] == path.stem
        total += shape[0]
    assert len(index) == total
    assert len(set(index.numbers("volume_id").tolist())) == len(files) == index.num_volumes


def test_metadata_from_header_attributes_sidecar_and_catalog(index: SliceIndex) -> None:
    v = _by_volume(index)
    k1 = v["file_k1"]
    assert (k1["dataset"], k1["anatomy"], k1["view"], k1["split"]) == ("fastmri_knee", "knee", "coronal", "train")
    assert (k1["vendor"], k1["scanner"], k1["protocol"], k1["contrast"]) == ("SIEMENS", "Skyra", "CORPD_FBK", "PD")
    assert k1["field_strength"] == pytest.approx(3.0)  # 2.89362 T is a 3T magnet
    assert v["file_k2"]["field_strength"] == pytest.approx(1.5) and v["file_k2"]["contrast"] == "PDFS"
    assert v["file_k3"]["split"] == "val"
    b1, b2 = v["file_b1"], v["file_b2"]
    assert (b1["contrast"], b1["view"], b1["scanner"], b1["anatomy"]) == ("T2", "axial", "Prisma_fit", "brain")
    assert (b2["contrast"], b2["split"], b2["scanner"]) == ("FLAIR", "val", "Avanto")
    c0, c1, c2 = v["case0"], v["case1"], v["case2"]
    assert c0["dataset"] == c1["dataset"] == c2["dataset"] == "stanford2d"
    assert (c0["contrast"], c0["anatomy"], c0["vendor"], c0["view"]) == ("PD", "knee", "GE", "various")
    assert (c1["contrast"], c1["anatomy"]) == ("T2", "ankle")  # per-volume entry beats sidecar defaults
    assert c2["contrast"] == "" and c2["field_strength"] == pytest.approx(3.0)
    assert c0["split"] in ("train", "val")
    m1 = v["m1"]
    assert (m1["dataset"], m1["contrast"], m1["split"], m1["coils"]) == ("m4raw_gre", "GRE", "test", 1)
    assert k1["subject"] == "synthetic-1"  # the patient_id attribute


def test_caller_volume_metadata_has_the_last_word(data_root: Path, tmp_path: Path) -> None:
    idx = build_slice_index(data_root, dataset={"knee": "fastmri_knee", "brain": "fastmri_brain"},
                            volume_metadata={"case1": {"contrast": "FLAIR", "split": "val"},
                                             "knee/multicoil_train/file_k1.h5": {"scanner": "Biograph_mMR"}},
                            cache_dir=tmp_path)
    v = _by_volume(idx)
    assert (v["case1"]["contrast"], v["case1"]["split"]) == ("FLAIR", "val")
    assert v["file_k1"]["scanner"] == "Biograph_mMR"
    with pytest.raises(InputError, match="protokol"):
        build_slice_index(data_root, dataset="x", volume_metadata={"case1": {"protokol": "T1"}}, cache=False)


def test_index_is_built_from_metadata_without_reading_kspace(tmp_path: Path) -> None:
    """A volume whose k-space bytes are unreadable (external storage, file missing) still indexes."""
    root = tmp_path / "data"
    root.mkdir()
    with h5py.File(root / "ext.h5", "w") as f:
        f.create_dataset("kspace", shape=(5, 2, 12, 10), dtype=np.complex64,
                         external=[(str(tmp_path / "absent.bin"), 0, h5py.h5f.UNLIMITED)])
        f.attrs["acquisition"] = "AXT1POST"
    idx = build_slice_index(root, dataset="fastmri_brain", cache=False)
    assert len(idx) == 5
    assert idx.records([0])[0]["contrast"] == "T1POST"
    with h5py.File(root / "ext.h5", "r") as f, pytest.raises(OSError):
        f["kspace"][0]  # the data really are unreadable


def test_skip_slices_and_bad_files(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _volume(root / "a.h5", slices=6, shape=(12, 12), coils=2, seed=1)
    _volume(root / "b.h5", slices=2, shape=(12, 12), coils=2, seed=2)
    (root / "broken.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="broken.h5"):
        build_slice_index(root, dataset="cc359_axial", cache=False)
    idx = build_slice_index(root, dataset="cc359_axial", cache=False, on_error="skip",
                            defaults={"cc359_axial": {"skip_first": 1, "skip_last": 1}})
    rows = idx.records(np.arange(len(idx)))
    assert sorted((r["volume"], r["slice"]) for r in rows) == [("a", s) for s in range(1, 5)]
    skipped = dict(idx.info["skipped"])
    assert "broken.h5" in skipped and "b.h5" in skipped  # b has no slice left


def test_missing_dataset_name_is_an_error_naming_the_file(data_root: Path) -> None:
    with pytest.raises(InputError, match=r"file_b1\.h5.*dataset"):
        build_slice_index(data_root, cache=False)


# ----------------------------------------------------------------------------- splits
def test_split_from_folder_names() -> None:
    assert split_from_path("knee/multicoil_train/f.h5") == "train"
    assert split_from_path("brain_multicoil_test_full/f.h5") == "test"
    assert split_from_path("x/validation/y/f.h5") == "val"
    assert split_from_path("trainee/f.h5") == "" and split_from_path("train.h5") == ""


def test_hash_split_ratio_and_determinism_across_processes() -> None:
    names = [f"volume_{i:05d}" for i in range(4000)]
    split = holdout_split(names, 0.85)
    share = split.count("train") / len(split)
    assert abs(share - 0.85) < 0.02  # binomial sd at n=4000 is 0.0056
    assert set(split) == {"train", "val"}
    code = ("import json,sys; from mrizoo.pools.splits import holdout_split; "
            "print(json.dumps(holdout_split([f'volume_{i:05d}' for i in range(4000)], 0.85)))")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == __import__("json").dumps(split)
    # a name keeps its split whatever else is in the list, so the views of one scan agree
    assert holdout_split(names[:7], 0.85) == split[:7]
    assert holdout_split(["x", "volume_00003"], 0.5)[1] == holdout_split(["volume_00003"], 0.5)[0]


def test_hash_split_groups_by_subject(tmp_path: Path) -> None:
    root = tmp_path / "views"
    for view in ("axial", "sagittal"):
        for i in range(12):
            _volume(root / view / f"subj{i}.h5", slices=1, shape=(8, 8), coils=1, seed=i)
    idx = build_slice_index(root, dataset={"axial": "cc359_axial", "sagittal": "cc359_sagittal"}, cache=False)
    rows = idx.records(np.arange(len(idx)))
    by = {(r["dataset"], r["volume"]): r["split"] for r in rows}
    assert all(by[("cc359_axial", f"subj{i}")] == by[("cc359_sagittal", f"subj{i}")] for i in range(12))
    assert {(r["dataset"], r["view"]) for r in rows} == {("cc359_axial", "axial"), ("cc359_sagittal", "sagittal")}


# ----------------------------------------------------------------------------- selections vs brute force
def _brute(rows: list[dict], selections: list[dict]) -> list[int]:
    def ok(row: dict, column: str, cond) -> bool:
        value = row[column]
        if isinstance(cond, dict):
            return (not np.isnan(value) if isinstance(value, float) else True) and \
                cond.get("min", -np.inf) <= value <= cond.get("max", np.inf)
        for c in (cond if isinstance(cond, list) else [cond]):
            if c is None:
                if value == "" or (isinstance(value, float) and np.isnan(value)):
                    return True
            elif isinstance(value, str):
                if value.lower() == str(c).lower():
                    return True
            elif abs(float(value) - float(c)) < 1e-6:
                return True
        return False

    return [i for i, row in enumerate(rows) if any(all(ok(row, k, v) for k, v in s.items()) for s in selections)]


def _random_volumes(n: int, rng: np.random.Generator) -> dict:
    datasets = np.array(["fastmri_knee", "fastmri_brain", "m4raw", "cc359_axial", "7t_sagittal"])
    contrasts = np.array(["PD", "PDFS", "T1", "T2", "FLAIR", ""])
    scanners = np.array(["Skyra", "Aera", "Prisma_fit", ""])
    splits = np.array(["train", "val", "test"])
    slices = rng.integers(1, 6, n)
    return {
        "file": [f"d/v{i}.h5" for i in range(n)], "volume": [f"v{i}" for i in range(n)],
        "dataset": datasets[rng.integers(0, 5, n)], "anatomy": np.array(["knee", "brain"])[rng.integers(0, 2, n)],
        "view": np.array(["axial", "coronal", ""])[rng.integers(0, 3, n)], "contrast": contrasts[rng.integers(0, 6, n)],
        "vendor": np.array(["SIEMENS", "GE"])[rng.integers(0, 2, n)], "scanner": scanners[rng.integers(0, 4, n)],
        "protocol": [""] * n, "subject": [f"s{i // 2}" for i in range(n)], "split": splits[rng.integers(0, 3, n)],
        "field_strength": np.array([1.5, 3.0, 0.3, 7.0, np.nan])[rng.integers(0, 5, n)],
        "coils": rng.choice([1, 4, 8, 15, 32], n), "height": rng.choice([256, 320, 640], n),
        "width": rng.choice([256, 320, 368], n), "num_slices": slices, "multicoil": np.ones(n, bool),
        "first": np.zeros(n, int), "stop": slices, "volume_hash": rng.integers(0, 2**63, n, dtype=np.uint64),
    }


def _random_selection(rng: np.random.Generator) -> dict:
    pool = {
        "dataset": ["fastmri_knee", "fastmri_brain", "m4raw", "cc359_axial", "7t_sagittal", "nyu"],
        "contrast": ["PD", "pdfs", "T1", "T2", "FLAIR", None], "scanner": ["Skyra", "aera", "Prisma_fit", None],
        "split": ["train", "val", "test"], "anatomy": ["knee", "brain"], "view": ["axial", "coronal", None],
        "field_strength": [1.5, 3.0, 0.3, 7.0, None], "coils": [1, 4, 8, 15, 32],
    }
    sel: dict = {}
    for column in rng.choice(list(pool) + ["width", "height"], size=int(rng.integers(1, 4)), replace=False):
        column = str(column)
        if column in ("width", "height"):
            sel[column] = {"min": 300} if rng.random() < 0.5 else {"max": 320, "min": 256}
        elif rng.random() < 0.5:
            sel[column] = pool[column][int(rng.integers(len(pool[column])))]
        else:
            k = int(rng.integers(1, min(4, len(pool[column]) + 1)))
            sel[column] = [pool[column][i] for i in rng.choice(len(pool[column]), size=k, replace=False)]
    return sel


def test_selections_match_a_brute_force_filter() -> None:
    rng = np.random.default_rng(7)
    idx = SliceIndex.from_volumes(_random_volumes(300, rng))
    rows = idx.records(np.arange(len(idx)))
    for _ in range(60):
        selections = [_random_selection(rng) for _ in range(int(rng.integers(1, 4)))]
        got = idx.select(selections).tolist()
        assert got == _brute(rows, selections), selections
    # AND inside a mapping, OR across mappings
    a = set(idx.select([{"dataset": "m4raw"}]).tolist())
    b = set(idx.select([{"split": "val"}]).tolist())
    assert set(idx.select([{"dataset": "m4raw", "split": "val"}]).tolist()) == a & b
    assert set(idx.select([{"dataset": "m4raw"}, {"split": "val"}]).tolist()) == a | b


def test_selection_on_the_file_index_and_errors(index: SliceIndex) -> None:
    v = _by_volume(index)
    rows = index.select([{"dataset": "fastmri_knee", "contrast": "PDFS"}, {"scanner": "avanto"}])
    vols = sorted({index.records([r])[0]["volume"] for r in rows})
    assert vols == sorted(["file_k2", "file_k3", "file_b2"])
    assert index.select([{"coils": {"min": 4}}]).size == v["file_b1"]["num_slices"] + v["file_b2"]["num_slices"]
    assert index.select([Selection({"contrast": (None,)})]).size > 0
    in_range = index.match(Selection({"field_strength": Range(2.5, 3.5)}))
    assert np.array_equal(index.match({"field_strength": [3.0]}), in_range)
    with pytest.raises(InputError, match="protokol"):
        index.select([{"protokol": "x"}])
    with pytest.raises(InputError, match="range needs a numeric"):
        index.select([{"dataset": {"min": 1}}])
    assert index.unknown_values([Selection({"dataset": ("fastmri_kne", "nyu", "fastmri_knee")})]) == \
        {"dataset": ["fastmri_kne", "nyu"]}


# ----------------------------------------------------------------------------- cache
def test_cache_reuse_and_invalidation(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i in range(3):
        _volume(root / f"v{i}.h5", slices=2, shape=(12, 12), coils=2, seed=i)
    cache = tmp_path / "cache"
    first = build_slice_index(root, dataset="nyu", cache_dir=cache)
    assert first.info["reused"] is False and first.info["reread_files"] == 3
    again = build_slice_index(root, dataset="nyu", cache_dir=cache)
    assert again.info["reused"] is True and again.path == first.path and len(again) == 6
    assert isinstance(again.data.data, __import__("datasets").table.MemoryMappedTable)

    time.sleep(0.01)
    (root / "v1.h5").unlink()
    _volume(root / "v1.h5", slices=5, shape=(12, 12), coils=2, seed=1)  # rewritten: new size and mtime
    changed = build_slice_index(root, dataset="nyu", cache_dir=cache)
    assert changed.info["reused"] is False and changed.path != first.path
    assert changed.info["reread_files"] == 1  # unchanged files are not reopened
    assert len(changed) == 2 + 5 + 2
    assert not first.path.exists()  # the stale index is removed

    _volume(root / "v3.h5", slices=1, shape=(12, 12), coils=2, seed=3)
    assert len(build_slice_index(root, dataset="nyu", cache_dir=cache)) == 10
    (root / "v0.h5").unlink()
    assert len(build_slice_index(root, dataset="nyu", cache_dir=cache)) == 8
    other = build_slice_index(root, dataset="stanford2d", cache_dir=cache)
    assert other.info["reused"] is False and set(other.values("dataset")) == {"stanford2d"}
    (root / "mrizoo_metadata.yaml").write_text("defaults: {anatomy: knee}\n")
    side = build_slice_index(root, dataset="stanford2d", cache_dir=cache)
    assert side.info["reused"] is False and set(side.values("anatomy")) == {"knee"}
    assert build_slice_index(root, dataset="stanford2d", cache_dir=cache).info["reused"] is True
    assert build_slice_index(root, dataset="stanford2d", cache_dir=cache, rebuild=True).info["reused"] is False


def test_saved_index_round_trip(index: SliceIndex, tmp_path: Path) -> None:
    index.save(tmp_path / "copy")
    loaded = SliceIndex.load(tmp_path / "copy")
    assert repr(loaded.records(np.arange(len(loaded)))) == repr(index.records(np.arange(len(index))))  # NaN-safe
    assert loaded.root == index.root
    with pytest.raises(InputError, match="index.json"):
        SliceIndex.load(tmp_path)


def test_pool_dataset_reads_the_indexed_slice(index: SliceIndex, data_root: Path) -> None:
    from mrizoo.pools.dataset import PoolDataset

    rows = index.select([{"dataset": ["fastmri_knee", "stanford2d"]}])
    ds = PoolDataset(index, rows)
    assert len(ds) == rows.size
    for i in (0, 4, len(ds) - 1):
        meta = ds.metadata(i)
        sample = ds[i]
        with h5py.File(data_root / meta["file"], "r") as f:
            kspace = f["kspace"][meta["slice"]]
        image = fastmri.ifft2c(fm_transforms.to_tensor(kspace))
        expected = fastmri.rss(fastmri.complex_abs(image), dim=0)
        assert sample.fname == Path(meta["file"]).name and sample.slice_index == meta["slice"]
        torch.testing.assert_close(sample.target, expected.to(torch.float32), rtol=1e-5, atol=1e-6)
    assert ds.dataset_names[0] == ds.metadata(0)["dataset"]
    vids = ds.volume_ids
    assert all(ds.metadata(i)["volume"] == ds.metadata(j)["volume"]
               for i in range(len(ds)) for j in range(len(ds)) if vids[i] == vids[j])


def test_pool_dataset_does_not_open_every_file(tmp_path: Path) -> None:
    from mrizoo.pools.dataset import PoolDataset

    root = tmp_path / "d"
    for i in range(4):
        _volume(root / f"v{i}.h5", slices=2, shape=(12, 10), coils=2, seed=i)
    idx = build_slice_index(root, dataset="nyu", cache=False)
    for i in (1, 2, 3):
        (root / f"v{i}.h5").unlink()  # only the first volume is left on disk
    ds = PoolDataset(idx, mask="equispaced", mask_params={"center_fraction": 0.25}, acceleration=2, seed_mode="sample")
    assert len(ds) == 8 and ds[0].kspace.shape == (2, 12, 10)
    with pytest.raises(InputError, match="v1.h5"):
        ds[2]
