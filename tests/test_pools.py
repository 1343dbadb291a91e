"""Pool files (validation, shipped pools of Lin & Heckel 2024), pool selection with caps,
the volume-batch sampler (weights, sharding, determinism) and the ``pool`` command."""

from __future__ import annotations

import argparse
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from mrizoo.data.slices import collate_samples
from mrizoo.data.synthetic import make_test_volume
from mrizoo.errors import InputError
from mrizoo.pools import SliceIndex, build_slice_index
from mrizoo.pools.columns import KNOWN_DATASETS, contrast_from_protocol, dataset_defaults, nominal_field_strength
from mrizoo.pools.minipool import MINIPOOL_DATASETS
from mrizoo.pools.sampling import PoolSampler, apportion
from mrizoo.pools.selection import cap_rows, select_pool
from mrizoo.pools.spec import list_pools, load_pool, pool_from_dict

# ----------------------------------------------------------------------------- pool files


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pool.yaml"
    path.write_text(text)
    return path


def test_pool_file_validation_names_file_and_key(tmp_path: Path) -> None:
    good = load_pool(_write(tmp_path, "name: p\ntrain:\n  - {dataset: fastmri_knee, contrast: [PD, PDFS]}\n"
                                      "test:\n  t: {dataset: nyu, coils: {min: 8}}\nweights: {fastmri_knee: 2}\n"))
    assert good.train[0].conditions["contrast"] == ("PD", "PDFS")
    assert good.test["t"][0].conditions["coils"].min == 8 and good.weights == {"fastmri_knee": 2.0}
    cases = [
        ("name: p\ntrain: [{dataset: fastmri_knee, protokol: PD}]\n", "train[0].protokol"),
        ("name: p\ntrain: [{dataset: fastmri_knee}]\nextra: 1\n", "extra"),
        ("name: p\ntrain: [{dataset: 'fastMRI knee'}]\n", "train[0].dataset"),
        ("name: p\ntrain: [{coils: many}]\n", "train[0].coils"),
        ("name: p\ntrain: [{contrast: {min: 1}}]\n", "train[0].contrast"),
        ("name: p\ntrain: [{contrast: []}]\n", "train[0].contrast"),
        ("name: p\ntrain: [{dataset: nyu, max_slices: 0}]\n", "train[0].max_slices"),
        ("name: p\ntrain: [{dataset: nyu}]\nweights: {nyu: -1}\n", "weights.nyu"),
        ("name: p\ntrain: [{dataset: nyu}]\ncaps: {nyu: 2.5}\n", "caps.nyu"),
        ("name: p\ntrain: [{dataset: nyu}]\ntest: {t: [{split: [val, {}]}]}\n", "test.t[0].split[1]"),
        ("train: [{dataset: nyu}]\n", "name"),
        ("name: p\n", "train"),
        ("name: p\ntrain: [{dataset: nyu}\n", "not valid YAML"),
    ]
    for text, key in cases:
        path = _write(tmp_path, text)
        with pytest.raises(InputError) as err:
            load_pool(path)
        assert str(path) in str(err.value) and key in str(err.value), (text, str(err.value))
    with pytest.raises(InputError, match="shipped pool"):
        load_pool("no-such-pool")


def test_shipped_pools_round_trip_and_use_catalog_names() -> None:
    names = list_pools()
    assert {"diverse-13", "fastmri-knee", "fastmri-brain"} <= set(names)
    for name in names:
        spec = load_pool(name)
        assert spec.name == name
        assert pool_from_dict(spec.to_dict(), source=spec.source) == spec
        for sel in (*spec.train, *(s for v in spec.test.values() for s in v)):
            assert set(sel.conditions.get("dataset", ())) <= set(KNOWN_DATASETS) | set(MINIPOOL_DATASETS)


def _datasets(selections) -> set[str]:
    return {d for s in selections for d in s.conditions["dataset"]}


def test_diverse_pool_matches_table_1_and_section_7() -> None:
    spec = load_pool("diverse-13")
    train = _datasets(spec.train)
    ood = {"cc359_sagittal", "stanford2d", "m4raw_gre", "nyu"}
    assert len(train) == 13 and train == set(KNOWN_DATASETS) - ood  # the first 13 rows of Table 1
    assert set(spec.test) == ood | {"fastmri_knee", "fastmri_brain"}
    tests = {name: _datasets(sels) for name, sels in spec.test.items()}
    assert all(tests[n] == {n} for n in tests)
    knee = [s for s in spec.train if "fastmri_knee" in s.conditions["dataset"]][0]
    assert knee.conditions["split"] == ("train",)  # the knee validation set is the test set
    assert spec.test["fastmri_brain"][0].conditions["split"] == ("test",)
    for base, data in (("fastmri-knee", "fastmri_knee"), ("fastmri-brain", "fastmri_brain")):
        other = load_pool(base)
        assert _datasets(other.train) == {data} and other.test == spec.test


def _distributions(selections) -> set[tuple[str, str]]:
    return {(s.conditions["contrast"][0], s.conditions["scanner"][0]) for s in selections}


def test_fastmri_attribute_splits_follow_sections_3_to_6() -> None:
    knee = {(c, s) for c in ("PD", "PDFS") for s in ("Aera", "Skyra", "Biograph_mMR")}
    s3 = load_pool("fastmri-s3-anatomy-joint")
    assert _distributions(s3.test["knee"]) == knee
    brain = _distributions(s3.test["brain"])
    assert len(brain) == 10 and {c for c, _ in brain} == {"FLAIR", "T1", "T1POST", "T2"}
    assert _distributions(s3.train) == knee | brain
    assert all(s.max_slices == 2048 for s in s3.train) and all(s.max_slices == 128 for s in s3.test["knee"])
    assert _distributions(load_pool("fastmri-s3-contrast-pd").train) == {d for d in knee if d[0] == "PD"}
    field3 = _distributions(load_pool("fastmri-s3-field-3t").train)
    field15 = _distributions(load_pool("fastmri-s3-field-1.5t").train)
    assert {s for _, s in field3} == {"Skyra", "Prisma_fit", "Biograph_mMR"}
    assert {s for _, s in field15} == {"Aera", "Avanto"}
    assert len(field15) == 7 and len(field3) == 9  # P_1..P_7 of Section 4
    anat = load_pool("fastmri-s4-anatomy-shift")
    assert _distributions(anat.train) == knee
    brain8 = _distributions(anat.test["brain8"])
    assert len(brain8) == 8 and "Avanto" not in {s for _, s in brain8}
    contrast = load_pool("fastmri-s4-contrast-shift")
    assert {c for c, _ in _distributions(contrast.train)} == {"FLAIR", "T1", "T1POST"} and len(contrast.train) == 5
    assert {c for c, _ in _distributions(contrast.test["brain_t2"])} == {"T2"}
    s6 = load_pool("fastmri-s6-t2brain-to-knee")
    assert {c for c, _ in _distributions(s6.train)} == {"T2"} and _distributions(s6.test["knee"]) == knee


def test_metadata_helpers() -> None:
    assert [contrast_from_protocol(p) for p in ("CORPD_FBK", "CORPDFS_FBK", "AXT1POST", "AXFLAIR", "AXT2", "tse")] == \
        ["PD", "PDFS", "T1POST", "FLAIR", "T2", ""]
    assert nominal_field_strength(2.89362) == 3.0 and nominal_field_strength(1.494) == 1.5
    assert nominal_field_strength(6.98) == 7.0 and math.isnan(nominal_field_strength(None))
    entry = {"name": "fastmri_knee", "anatomy": "Knee", "contrasts": ["PD", "PDFS"], "field_strength": "3T",
             "vendor": "Siemens", "role": "train", "slices": 42000}
    assert dataset_defaults(entry) == {"anatomy": "knee", "field_strength": 3.0, "vendor": "Siemens"}

    @dataclass(frozen=True)
    class Item:  # catalog-style items: Share(name=...), FieldStrength(tesla=...), ViewEntry(name=...)
        name: str = ""
        tesla: float = 0.0

    @dataclass(frozen=True)
    class Entry:
        name: str
        anatomy: str
        vendor: str
        contrasts: tuple
        field_strengths: tuple
        views: tuple

    one = Entry("stanford3d", "knee", "GE", (Item("PDFS"),), (Item(tesla=3),), (Item("axial"), Item("coronal")))
    assert dataset_defaults(one) == {"anatomy": "knee", "vendor": "GE", "contrast": "PDFS", "field_strength": 3.0}
    two = Entry("fastmri-knee", "knee", "Siemens", (Item("PD"), Item("PDFS")), (Item(tesla=1.5), Item(tesla=3)),
                (Item("coronal"),))
    assert dataset_defaults(two) == {"anatomy": "knee", "vendor": "Siemens", "view": "coronal"}


# ----------------------------------------------------------------------------- selection with caps
def _volumes(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    ds = np.array(["fastmri_knee", "fastmri_brain", "nyu"])[np.arange(n) % 3]
    slices = rng.integers(2, 9, n)
    return {
        "file": [f"v{i}.h5" for i in range(n)], "volume": [f"v{i}" for i in range(n)], "dataset": ds,
        "anatomy": [""] * n, "view": [""] * n, "contrast": np.array(["PD", "PDFS"])[rng.integers(0, 2, n)],
        "vendor": [""] * n, "scanner": [""] * n, "protocol": [""] * n, "subject": [f"v{i}" for i in range(n)],
        "split": np.array(["train", "val"])[(np.arange(n) % 7 == 0).astype(int)],
        "field_strength": np.full(n, 3.0), "coils": np.full(n, 4), "height": np.full(n, 32),
        "width": np.full(n, 32), "num_slices": slices, "multicoil": np.ones(n, bool), "first": np.zeros(n, int),
        "stop": slices, "volume_hash": rng.integers(0, 2**63, n, dtype=np.uint64),
    }


@pytest.fixture(scope="module")
def big_index() -> SliceIndex:
    return SliceIndex.from_volumes(_volumes(240))


def test_max_slices_keeps_whole_volumes_deterministically(big_index: SliceIndex) -> None:
    rows = big_index.select([{"dataset": "fastmri_knee"}])
    kept = cap_rows(big_index, rows, 100, seed=3)
    vid = big_index.numbers("volume_id")
    assert 100 - 8 < kept.size <= 100  # whole volumes of at most 8 slices each
    kept_vols = set(vid[kept].tolist())
    assert all(vid[r] not in kept_vols for r in np.setdiff1d(rows, kept))  # no volume is cut
    assert np.array_equal(kept, cap_rows(big_index, rows, 100, seed=3))
    assert not np.array_equal(kept, cap_rows(big_index, rows, 100, seed=4))
    # the order of volumes does not depend on what else is selected
    both = big_index.select([{"dataset": ["fastmri_knee", "nyu"]}])
    wide = cap_rows(big_index, both, 10**6, seed=3)
    assert np.array_equal(wide, both)


def test_select_pool_applies_selection_and_dataset_caps(big_index: SliceIndex) -> None:
    spec = pool_from_dict({
        "name": "t", "seed": 1,
        "train": [{"dataset": "fastmri_knee", "split": "train", "max_slices": 60},
                  {"dataset": ["fastmri_brain", "nyu"], "split": "train"}],
        "test": {"knee_val": [{"dataset": "fastmri_knee", "split": "val"}], "none": [{"dataset": "m4raw"}]},
        "caps": {"nyu": 50}, "weights": {"fastmri_knee": 1, "fastmri_brain": 1, "skm_tea": 1},
    })
    sel = select_pool(big_index, spec)
    counts = {r["dataset"]: r["slices"] for r in big_index.counts(sel.train)}
    assert counts["fastmri_knee"] <= 60 and counts["nyu"] <= 50
    assert counts["fastmri_brain"] == big_index.select([{"dataset": "fastmri_brain", "split": "train"}]).size
    assert np.array_equal(sel.test["knee_val"], big_index.select([{"dataset": "fastmri_knee", "split": "val"}]))
    notes = " | ".join(sel.notes)
    assert "test set 'none': values not in the index: dataset ['m4raw']" in notes
    assert "'none' selects no slices" in notes
    assert "skm_tea" in notes and "nyu" in notes  # weight for an absent dataset, dataset without a weight
    assert sel.leaks() == {"knee_val": 0, "none": 0}


# ----------------------------------------------------------------------------- sampler
def _items(n_vol: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 12, n_vol)
    vids = np.repeat(np.arange(n_vol), sizes)
    labels = np.array(["a", "b", "c"])[vids % 3]
    perm = rng.permutation(vids.size)  # items of a volume need not be contiguous
    return vids[perm], labels[perm]


def test_batches_hold_one_volume_and_cover_every_item_once() -> None:
    vids, _ = _items()
    sampler = PoolSampler(vids, 4, seed=5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == sum(math.ceil(c / 4) for c in np.bincount(vids))
    assert all(len({int(vids[i]) for i in b}) == 1 and 1 <= len(b) <= 4 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(vids.size))
    dropped = list(PoolSampler(vids, 4, seed=5, drop_last=True))
    assert all(len(b) == 4 for b in dropped) and len(dropped) == sum(c // 4 for c in np.bincount(vids))


def test_epochs_are_deterministic_and_differ() -> None:
    vids, _ = _items()
    a, b = PoolSampler(vids, 3, seed=1), PoolSampler(vids, 3, seed=1)
    e0, e1 = list(a), list(a)
    assert e0 == list(b) and e1 == list(b)
    assert e0 != e1
    a.set_epoch(0)
    assert list(a) == e0
    assert list(PoolSampler(vids, 3, seed=2)) != e0
    ordered = list(PoolSampler(vids, 3, shuffle=False))
    assert ordered == list(PoolSampler(vids, 3, shuffle=False, seed=9))


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_sharding_without_overlap_and_equal_counts(replicas: int) -> None:
    vids, _ = _items(n_vol=25)
    full = [b.tolist() for b in PoolSampler(vids, 5, seed=3).global_batches(0)]
    for even in ("drop", "pad"):
        shards = [list(PoolSampler(vids, 5, seed=3, num_replicas=replicas, rank=r, even=even)) for r in range(replicas)]
        assert len({len(s) for s in shards}) == 1
        flat = [tuple(b) for s in shards for b in s]
        if even == "drop":
            assert len(set(flat)) == len(flat) and len(flat) == len(full) - len(full) % replicas
        else:
            assert len(flat) == math.ceil(len(full) / replicas) * replicas
            assert set(flat) == {tuple(b) for b in full}  # every batch somewhere
            assert len(flat) - len(set(flat)) == (-len(full)) % replicas  # only the padding repeats
        for s in shards:
            assert all(len({int(vids[i]) for i in b}) == 1 for b in s)


def test_dataset_weights_set_the_share_of_batches() -> None:
    vids, labels = _items(n_vol=60, seed=2)
    weights = {"a": 0.6, "b": 0.3, "c": 0.1}
    sampler = PoolSampler(vids, 2, labels=labels, weights=weights, num_batches=200, seed=0)
    counts: Counter = Counter()
    for _ in range(5):
        for b in sampler:
            assert len({labels[i] for i in b}) == 1 and len({int(vids[i]) for i in b}) == 1
            counts[str(labels[b[0]])] += 1
    assert counts == Counter({"a": 600, "b": 300, "c": 100})  # exact per epoch: 120/60/20 of 200
    assert apportion(10, [1, 1, 1]) == [4, 3, 3] and sum(apportion(7, [0.2, 0.5, 0.3])) == 7
    # a dataset sampled more often than it has batches repeats, reshuffled
    small = PoolSampler(vids, 2, labels=labels, weights={"a": 0, "b": 0, "c": 1}, num_batches=200, seed=0)
    c_items = [i for b in small for i in b]
    assert len(c_items) > (labels == "c").sum() and set(labels[c_items]) == {"c"}
    # slices-per-dataset share follows the weights statistically with the default epoch length
    stat = PoolSampler(vids, 1, labels=labels, weights={"a": 1, "b": 1, "c": 2}, seed=1)
    seen = Counter(str(labels[i]) for _ in range(3) for b in stat for i in b)
    total = sum(seen.values())
    assert abs(seen["c"] / total - 0.5) < 0.02 and abs(seen["a"] / total - 0.25) < 0.02


def test_caps_and_weight_validation() -> None:
    vids, labels = _items(n_vol=30)
    capped = PoolSampler(vids, 3, labels=labels, caps={"a": 10}, seed=0)
    per = Counter()
    for b in capped:
        per[str(labels[b[0]])] += len(b)
    assert per["a"] <= 10 and per["b"] == (labels == "b").sum()
    with pytest.raises(InputError, match="weight"):
        PoolSampler(vids, 3, labels=labels, weights={"a": 1.0})
    with pytest.raises(InputError, match="labels"):
        PoolSampler(vids, 3, weights={"a": 1.0})
    with pytest.raises(InputError, match="rank"):
        PoolSampler(vids, 3, num_replicas=2, rank=2)
    with pytest.raises(InputError, match="batch size"):
        PoolSampler(vids, 0)


def _write_root(root: Path) -> None:
    (root / "knee").mkdir(parents=True)
    (root / "brain").mkdir()
    for i in range(3):
        make_test_volume(root / "knee" / f"k{i}.h5", num_slices=3, shape=(16, 12), num_coils=2, seed=i)
    for i in range(2):
        make_test_volume(root / "brain" / f"b{i}.h5", num_slices=2, shape=(12, 12), num_coils=2, seed=10 + i)


def test_loader_end_to_end_with_pool_dataset(tmp_path: Path) -> None:
    _write_root(tmp_path / "data")
    index = build_slice_index(tmp_path / "data", dataset={"knee": "fastmri_knee", "brain": "fastmri_brain"},
                              volume_metadata={f"k{i}": {"split": "train"} for i in range(3)}
                              | {f"b{i}": {"split": "train"} for i in range(2)}, cache=False)
    sel = select_pool(index, {"name": "p", "train": [{"dataset": ["fastmri_knee", "fastmri_brain"]}],
                              "weights": {"fastmri_knee": 1, "fastmri_brain": 1}})
    ds = sel.dataset("train")
    sampler = sel.sampler(ds, 2, num_batches=8, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_samples)
    names = Counter()
    for batch in loader:
        assert len(set(batch.fname)) == 1
        names[batch.fname[0][0]] += 1
    assert names == Counter({"k": 4, "b": 4})



def test_pool_dataset_takes_a_custom_transform(tmp_path: Path) -> None:
    """Pool items go through the same transform hook as SliceDataset: the record of the index row."""
    _write_root(tmp_path / "data")
    index = build_slice_index(tmp_path / "data", dataset={"knee": "fastmri_knee", "brain": "fastmri_brain"},
                              cache=False)
    sel = select_pool(index, {"name": "p", "train": [{"dataset": ["fastmri_brain"]}]})
    ds = sel.dataset("train", transform=lambda r: (r.fname, r.slice_index, tuple(r.kspace.shape)))
    rows = index.records(sel.rows("train"))
    assert [ds[i] for i in range(len(ds))] == [(Path(r["file"]).name, r["slice"], (2, 12, 12)) for r in rows]
    assert len(ds) == 4

# ----------------------------------------------------------------------------- CLI
def _cli(argv: list[str]) -> argparse.Namespace:
    from mrizoo.cli import pools

    parser = argparse.ArgumentParser(prog="mrizoo")
    pools.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_pool_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _cli(["pool"])
    assert args.func(args) == 0
    assert "diverse-13" in capsys.readouterr().out
    args = _cli(["pool", "fastmri-s3-contrast-pd"])
    assert args.func(args) == 0
    assert "CORPD" not in (out := capsys.readouterr().out) and "scanner: Biograph_mMR" in out
    _write_root(tmp_path / "data")
    args = _cli(["pool", "fastmri-knee", "--root", str(tmp_path / "data"), "--dataset", "knee=fastmri_knee",
                 "--dataset", "brain=fastmri_brain", "--cache-dir", str(tmp_path / "cache")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "13 slices in 5 volumes" in out and "fastmri_knee" in out and "note:" in out
    args = _cli(["pool", "fastmri-knee", "--root", str(tmp_path / "data"), "--dataset", "nyu",
                 "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert args.func(args) == 0
    assert '"reused": false' in capsys.readouterr().out
    args = _cli(["pool", "fastmri-knee", "--root", str(tmp_path / "nowhere")])
    with pytest.raises(InputError, match="nowhere"):
        args.func(args)
