"""Scale of the slice index: build, store, load and query 500,000 slice rows.

Synthetic per-volume metadata with Table 1's distributions over the 17 datasets of Lin &
Heckel (ICML 2024) (slices per dataset, slices per volume, contrasts, scanners, field
strengths, coils, predefined or hash splits) is expanded into slice rows by the same code
path as a real build (``SliceIndex.from_volumes``), saved with ``datasets`` and reopened
memory-mapped. Pool selections (the shipped ``diverse-13`` and ``fastmri-s4-field-shift``
pools) are timed cold (first query, including the one-off dictionary encoding) and warm,
against a per-row Python filter and ``datasets.Dataset.filter`` in the same run (results
must agree). A second part indexes real ``.h5`` files (metadata only) to time file scanning,
cache hits and incremental rebuilds. Target: a pool selection over 500k rows in < 1 s.

Usage: ``python benchmarks/slice_index_scale.py [--rows 500000] [--files 200]``.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from _timing import ROOT  # noqa: F401  (puts the checkout on sys.path)

from mrizoo.pools import SliceIndex, build_slice_index, holdout_split  # noqa: E402
from mrizoo.pools.sampling import apportion  # noqa: E402
from mrizoo.pools.selection import select_pool  # noqa: E402
from mrizoo.pools.spec import load_pool  # noqa: E402

# dataset: (slices in Table 1, slices per volume, anatomy, view, vendor, contrasts {name: share},
#           scanners {model: (tesla, share)}, coils choices, (H, W), predefined split shares or None)
SIEMENS_KNEE = {"Skyra": (3.0, 0.35), "Biograph_mMR": (3.0, 0.20), "Aera": (1.5, 0.45)}
SIEMENS_BRAIN = {"Skyra": (3.0, 0.30), "Prisma_fit": (3.0, 0.17), "Biograph_mMR": (3.0, 0.10),
                 "Aera": (1.5, 0.33), "Avanto": (1.5, 0.10)}
TABLE1 = {
    "fastmri_knee": (42_000, 36, "knee", "coronal", "SIEMENS", {"PD": 0.5, "PDFS": 0.5}, SIEMENS_KNEE,
                     [15], (640, 368), {"train": 0.83, "val": 0.17}),
    "fastmri_brain": (100_000, 16, "brain", "axial", "SIEMENS",
                      {"T1": 0.11, "T1POST": 0.21, "T2": 0.60, "FLAIR": 0.08}, SIEMENS_BRAIN,
                      [4, 8, 12, 16, 20], (640, 320), {"train": 0.70, "val": 0.20, "test": 0.10}),
    "fastmri_prostate": (9_500, 30, "prostate", "axial", "SIEMENS", {"T2": 1.0},
                         {"Skyra": (3.0, 0.5), "Prisma_fit": (3.0, 0.5)}, [10, 16, 20, 30], (640, 451),
                         {"train": 0.70, "val": 0.15, "test": 0.15}),
    "m4raw": (25_000, 18, "brain", "axial", "XGY", {"T1": 0.37, "T2": 0.37, "FLAIR": 0.26},
              {"nova": (0.3, 1.0)}, [4], (256, 256), {"train": 0.70, "val": 0.15, "test": 0.15}),
    "skm_tea": (50_000, 160, "knee", "sagittal", "GE", {"QDESS": 1.0}, {"MR750": (3.0, 1.0)}, [8, 16],
                (512, 160), {"train": 0.65, "val": 0.15, "test": 0.20}),
    "stanford3d_axial": (6_000, 310, "knee", "axial", "GE", {"PDFS": 1.0}, {"MR750": (3.0, 1.0)}, [8], (320, 256), None),
    "stanford3d_coronal": (6_000, 240, "knee", "coronal", "GE", {"PDFS": 1.0}, {"MR750": (3.0, 1.0)}, [8], (320, 320), None),
    "stanford3d_sagittal": (4_800, 256, "knee", "sagittal", "GE", {"PDFS": 1.0}, {"MR750": (3.0, 1.0)}, [8], (256, 320), None),
    "7t_axial": (112_000, 290, "brain", "axial", "Philips", {"MP2RAGE": 1.0}, {"Achieva": (7.0, 1.0)}, [32], (240, 240), None),
    "7t_coronal": (112_000, 290, "brain", "coronal", "Philips", {"MP2RAGE": 1.0}, {"Achieva": (7.0, 1.0)}, [32], (240, 240), None),
    "7t_sagittal": (91_000, 236, "brain", "sagittal", "Philips", {"MP2RAGE": 1.0}, {"Achieva": (7.0, 1.0)}, [32], (240, 240), None),
    "cc359_axial": (17_000, 254, "brain", "axial", "GE", {"GRE": 1.0}, {"Discovery": (3.0, 1.0)}, [12], (256, 218), None),
    "cc359_coronal": (14_000, 209, "brain", "coronal", "GE", {"GRE": 1.0}, {"Discovery": (3.0, 1.0)}, [12], (256, 218), None),
    "cc359_sagittal": (11_000, 164, "brain", "sagittal", "GE", {"GRE": 1.0}, {"Discovery": (3.0, 1.0)}, [12], (218, 256), None),
    "stanford2d": (2_000, 22, "various", "various", "GE", {"PD": 0.3, "T1": 0.3, "T2": 0.4},
                   {"MR750": (3.0, 1.0)}, [3, 8, 16, 32], (320, 320), None),
    "nyu": (3_500, 35, "knee", "coronal", "SIEMENS", {"PD": 0.4, "PDFS": 0.2, "T2FS": 0.4},
            {"Skyra": (3.0, 1.0)}, [15], (640, 368), None),
    "m4raw_gre": (6_600, 18, "brain", "axial", "XGY", {"GRE": 1.0}, {"nova": (0.3, 1.0)}, [4], (256, 256),
                  {"train": 0.70, "val": 0.15, "test": 0.15}),
}


def synthetic_volumes(total_rows: int, seed: int = 0) -> dict[str, list]:
    """Per-volume metadata whose slices add up to ``total_rows`` with Table 1's proportions."""
    rng = np.random.default_rng(seed)
    targets = dict(zip(TABLE1, apportion(total_rows, [v[0] for v in TABLE1.values()])))
    cols: dict[str, list] = {k: [] for k in (
        "file", "volume", "dataset", "anatomy", "view", "contrast", "vendor", "scanner", "protocol", "subject",
        "split", "field_strength", "coils", "height", "width", "num_slices", "multicoil", "first", "stop",
        "volume_hash")}
    for name, (slices, per_vol, anatomy, view, vendor, contrasts, scanners, coils, hw, splits) in TABLE1.items():
        target = targets[name]
        counts = []
        while sum(counts) < target:
            counts.append(int(max(1, round(per_vol * rng.uniform(0.8, 1.2)))))
        counts[-1] -= sum(counts) - target
        if counts[-1] < 1:
            counts.pop()
        n = len(counts)
        c_names, c_p = zip(*contrasts.items())
        s_names = list(scanners)
        s_p = np.array([scanners[s][1] for s in s_names])
        scanner = np.asarray(s_names)[rng.choice(len(s_names), n, p=s_p / s_p.sum())]
        subjects = [f"{name.split('_')[0]}_{i // 2:05d}" for i in range(n)]
        if splits is None:
            split = holdout_split(subjects, 0.85)
        else:
            keys, p = zip(*splits.items())
            split = list(np.asarray(keys)[rng.choice(len(keys), n, p=np.asarray(p))])
        cols["file"] += [f"{name}/vol_{i:06d}.h5" for i in range(n)]
        cols["volume"] += [f"vol_{i:06d}" for i in range(n)]
        cols["dataset"] += [name] * n
        cols["anatomy"] += [anatomy] * n
        cols["view"] += [view] * n
        cols["contrast"] += list(np.asarray(c_names)[rng.choice(len(c_names), n, p=np.asarray(c_p))])
        cols["vendor"] += [vendor] * n
        cols["scanner"] += list(scanner)
        cols["protocol"] += [""] * n
        cols["subject"] += subjects
        cols["split"] += split
        cols["field_strength"] += [scanners[s][0] for s in scanner]
        cols["coils"] += list(rng.choice(coils, n))
        cols["height"] += [hw[0]] * n
        cols["width"] += [hw[1]] * n
        cols["num_slices"] += counts
        cols["multicoil"] += [True] * n
        cols["first"] += [0] * n
        cols["stop"] += counts
        cols["volume_hash"] += list(rng.integers(0, 2**63, n, dtype=np.uint64))
    return cols


def brute_force(index: SliceIndex, selections: list[dict]) -> np.ndarray:
    """Reference: a plain per-row Python filter over the rows as Python objects."""
    columns = sorted({k for s in selections for k in s})
    table = index.data.data.table.select(columns).to_pydict()
    wanted = [{k: {str(x).lower() for x in (v if isinstance(v, (list, tuple)) else [v])} for k, v in s.items()}
              for s in selections]
    hits = []
    for i, row in enumerate(zip(*(table[c] for c in columns))):
        values = {c: str(v).lower() for c, v in zip(columns, row)}
        if any(all(values[k] in v for k, v in sel.items()) for sel in wanted):
            hits.append(i)
    return np.asarray(hits, dtype=np.int64)


def hf_filter(index: SliceIndex, selections: list[dict]) -> np.ndarray:
    """Reference: ``datasets.Dataset.filter`` with a batched, vectorised predicate."""
    columns = sorted({k for s in selections for k in s})
    wanted = [{k: [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])] for k, v in s.items()}
              for s in selections]

    def predicate(batch: dict, idx: list[int]) -> list[bool]:
        arrays = {c: np.asarray(batch[c]) for c in columns}
        ok = np.zeros(len(idx), dtype=bool)
        for sel in wanted:
            part = np.ones(len(idx), dtype=bool)
            for k, v in sel.items():
                part &= np.isin(arrays[k], v)
            ok |= part
        return ok.tolist()

    kept = index.data.select_columns(columns).filter(predicate, batched=True, batch_size=100_000, with_indices=True,
                                                      keep_in_memory=True, load_from_cache_file=False)
    return np.asarray(kept._indices.column(0).to_numpy() if kept._indices is not None else [], dtype=np.int64)


def _plain_selections(pool: str) -> list[dict]:
    spec = load_pool(pool)
    return [{k: list(v) for k, v in s.conditions.items()} for s in spec.train]


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def bench_rows(rows: int, repeats: int) -> bool:
    import datasets
    import pyarrow as pa

    datasets.disable_progress_bars()
    print(f"== {rows:,} synthetic slice rows over {len(TABLE1)} datasets")
    t = time.perf_counter()
    volumes = synthetic_volumes(rows)
    print(f"metadata of {len(volumes['file']):,} volumes generated in {time.perf_counter() - t:.2f} s")
    work = Path(tempfile.mkdtemp(prefix="mrizoo_index_bench_"))
    try:
        t = time.perf_counter()
        index = SliceIndex.from_volumes(volumes, info={"version": 1})
        t_expand = time.perf_counter() - t
        index.save(work / "index")
        t_build = time.perf_counter() - t
        arrow_peak = pa.default_memory_pool().max_memory()
        print(f"build: {t_build:.2f} s (expand to rows {t_expand:.2f} s, save with datasets "
              f"{t_build - t_expand:.2f} s); {len(index):,} rows")
        print(f"on disk: {_size(work / 'index') / 2**20:.1f} MiB")
        del index
        tracemalloc.start()  # a second, traced build for the Python/numpy peak (tracing slows it down)
        again = SliceIndex.from_volumes(volumes, info={"version": 1})
        again.save(work / "traced")
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del again
        print(f"peak memory while building: Python/numpy {py_peak / 2**20:.0f} MiB (tracemalloc), "
              f"Arrow pool {arrow_peak / 2**20:.0f} MiB (max allocated); process peak RSS so far "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (includes imports)")

        t = time.perf_counter()
        index = SliceIndex.load(work / "index")
        print(f"load (memory-mapped): {1e3 * (time.perf_counter() - t):.1f} ms; "
              f"type {type(index.data.data).__name__}")
        ok = True
        for pool in ("diverse-13", "fastmri-s4-field-shift"):
            fresh = SliceIndex.load(work / "index")
            t = time.perf_counter()
            sel = select_pool(fresh, pool)
            cold = time.perf_counter() - t
            warm = _median(lambda: select_pool(fresh, pool), repeats)
            sels = _plain_selections(pool)
            t = time.perf_counter()
            rows_only = fresh.select(sels)
            one = time.perf_counter() - t
            n_test = sum(v.size for v in sel.test.values())
            print(f"pool {pool}: select_pool cold {1e3 * cold:.0f} ms, warm {1e3 * warm:.0f} ms "
                  f"(median of {repeats}); train {sel.train.size:,} rows, tests {n_test:,} rows; "
                  f"train OR-of-ANDs alone {1e3 * one:.1f} ms")
            t = time.perf_counter()
            ref = brute_force(fresh, sels)
            t_ref = time.perf_counter() - t
            t = time.perf_counter()
            ref_hf = hf_filter(fresh, sels)
            t_hf = time.perf_counter() - t
            same = np.array_equal(ref, rows_only) and np.array_equal(ref_hf, rows_only)
            print(f"  reference per-row Python filter {1e3 * t_ref:.0f} ms, datasets.filter {1e3 * t_hf:.0f} ms; "
                  f"same rows: {same}; speed-up vs per-row {t_ref / max(one, 1e-9):.0f}x")
            ok &= same and cold < 1.0 and warm < 1.0
        print(f"target (pool selection over {rows:,} rows < 1 s, cold and warm): {'PASS' if ok else 'FAIL'}")
        return ok
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_files(n_files: int) -> None:
    from mrizoo.data.writer import make_ismrmrd_header, write_volume

    print(f"== indexing {n_files} real .h5 files (metadata only)")
    work = Path(tempfile.mkdtemp(prefix="mrizoo_index_files_"))
    try:
        rng = np.random.default_rng(0)
        header = make_ismrmrd_header((32, 24, 1), (32, 24, 1))
        for i in range(n_files):
            sub = work / "data" / ("multicoil_train" if i % 5 else "multicoil_val")
            sub.mkdir(parents=True, exist_ok=True)
            k = (rng.standard_normal((int(rng.integers(8, 20)), 4, 32, 24)) * 1j).astype(np.complex64)
            write_volume(sub / f"file_{i:05d}.h5", kspace=k, header=header,
                         attrs={"acquisition": ["CORPD_FBK", "CORPDFS_FBK"][i % 2], "patient_id": f"p{i}"})
        cache = work / "cache"
        t = time.perf_counter()
        index = build_slice_index(work / "data", dataset="fastmri_knee", cache_dir=cache)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        again = build_slice_index(work / "data", dataset="fastmri_knee", cache_dir=cache)
        warm = time.perf_counter() - t
        victim = work / "data" / "multicoil_train" / "file_00001.h5"
        victim.write_bytes(victim.read_bytes())
        t = time.perf_counter()
        changed = build_slice_index(work / "data", dataset="fastmri_knee", cache_dir=cache)
        inc = time.perf_counter() - t
        print(f"cold build {cold:.2f} s ({1e3 * cold / n_files:.1f} ms per file, {len(index):,} rows); "
              f"cache hit {1e3 * warm:.0f} ms (reused={again.info['reused']}); one file changed: rebuild "
              f"{inc:.2f} s rereading {changed.info['reread_files']} file(s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000, help="slice rows of the synthetic index")
    parser.add_argument("--repeats", type=int, default=5, help="timed warm queries (median)")
    parser.add_argument("--files", type=int, default=200, help="real .h5 files to index (0: skip)")
    args = parser.parse_args()
    ok = bench_rows(args.rows, args.repeats)
    if args.files > 0:
        bench_files(args.files)
    print(f"process peak RSS at the end: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
          "(raised by the per-row Python reference)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
