"""Building the slice index of a data root, cached per root and reused while nothing changed.

:func:`build_slice_index` scans the root (:mod:`mrizoo.pools.scan`), merges each volume's
metadata (:mod:`mrizoo.pools.metadata`), assigns splits (:mod:`mrizoo.pools.splits`) and
expands the volumes into the slice table (:class:`~mrizoo.pools.table.SliceIndex`).

The cache lives in ``cache_dir / sha256(root)[:16] / fingerprint`` where the fingerprint
covers every file's relative path, size and modification time, the sidecars and the
build settings; a changed file triggers a rebuild that rereads only the changed files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from mrizoo._paths import slice_index_root
from mrizoo.errors import InputError
from mrizoo.pools.columns import STRING_COLUMNS, dataset_defaults
from mrizoo.pools.metadata import DatasetArg, merge_volume, nearest_sidecars, read_sidecar
from mrizoo.pools.scan import read_facts, walk_root
from mrizoo.pools.splits import holdout_split, volume_hash
from mrizoo.pools.table import INDEX_VERSION, SliceIndex

__all__ = ["build_slice_index", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$MRIZOO_HOME/slice_index`` (default ``~/.cache/mrizoo/slice_index``)."""
    return slice_index_root()


def _settings_key(dataset: DatasetArg, defaults: Any, volume_metadata: Any, ratio: float, holdout: str) -> dict:
    if callable(dataset) and not isinstance(dataset, (str, Mapping)):
        ds_key: Any = f"callable:{getattr(dataset, '__module__', '')}.{getattr(dataset, '__qualname__', repr(dataset))}"
    else:
        ds_key = dataset if not isinstance(dataset, Mapping) else dict(sorted(dataset.items()))
    defaults_key = None
    if defaults:
        defaults_key = {k: dataset_defaults(v) for k, v in sorted(defaults.items())}
    return {"version": INDEX_VERSION, "dataset": ds_key, "defaults": defaults_key,
            "volume_metadata": volume_metadata, "train_ratio": ratio, "holdout": holdout}


def _fingerprint(root: Path, files: list[tuple[str, int, int]], sidecars: list[tuple[str, int, int]],
                 settings: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"root": str(root), "settings": settings}, sort_keys=True, default=str).encode())
    for rel, size, mtime in (*files, ("--sidecars--", 0, 0), *sidecars):
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def _load_facts(folder: Path) -> dict[tuple[str, int, int], dict[str, Any]]:
    path = folder / "facts.json"
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return {(r["file"], r["size"], r["mtime_ns"]): r for r in rows}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def build_slice_index(
    root: str | os.PathLike[str],
    *,
    dataset: DatasetArg = None,
    defaults: Mapping[str, Any] | None = None,
    volume_metadata: Mapping[str, Mapping[str, Any]] | None = None,
    train_ratio: float = 0.85,
    holdout: str = "val",
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
    rebuild: bool = False,
    on_error: Literal["raise", "skip"] = "raise",
) -> SliceIndex:
    """Index every ``.h5`` volume under ``root`` (recursively), reusing a cached index when unchanged.

    ``dataset``: the dataset name of every file (str), a mapping of folder (relative to
    ``root``) -> name (the longest matching folder wins), or a function of the relative
    path returning a name or None; otherwise names come from sidecars or a ``dataset`` file
    attribute. ``defaults``: dataset name -> dataset-level metadata (a mapping or a catalog
    entry, read with :func:`mrizoo.pools.columns.dataset_defaults`). ``volume_metadata``:
    file stem or relative path -> metadata of that volume (highest priority). Volumes
    without a split get the hash-based ``train``/``holdout`` split at ``train_ratio``.
    ``on_error="skip"`` leaves out unreadable files (listed in ``index.info['skipped']``).
    The result's ``info['reused']`` tells whether the cached index was used.
    """
    start = time.perf_counter()
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise InputError("data root is not a folder", path=root_path)
    root_path = root_path.resolve()
    if on_error not in ("raise", "skip"):
        raise InputError("must be 'raise' or 'skip'", field="on_error", got=repr(on_error))
    if not (isinstance(holdout, str) and re.fullmatch(r"[a-z0-9_]+", holdout) and holdout != "train"):
        raise InputError("invalid holdout split name", field="holdout", expected="e.g. 'val'", got=repr(holdout))
    if not (isinstance(train_ratio, (int, float)) and 0.0 < float(train_ratio) < 1.0):
        raise InputError("train ratio must lie strictly between 0 and 1", field="train_ratio", got=train_ratio)
    if volume_metadata is not None and not isinstance(volume_metadata, Mapping):
        raise InputError("must map file stems or paths to metadata", field="volume_metadata",
                         got=type(volume_metadata).__name__)
    if defaults is not None and not isinstance(defaults, Mapping):
        raise InputError("must map dataset names to metadata", field="defaults", got=type(defaults).__name__)
    files, sidecar_files = walk_root(root_path)
    if not files:
        raise InputError("no .h5 volumes under the data root", path=root_path)
    settings = _settings_key(dataset, defaults, volume_metadata, float(train_ratio), holdout)
    fp = _fingerprint(root_path, files, sidecar_files, settings)
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root_key = hashlib.sha256(str(root_path).encode()).hexdigest()[:16]
    folder = base / root_key / fp[:24]
    stale = rebuild
    if cache and not rebuild and (folder / "index.json").is_file():
        try:
            index = SliceIndex.load(folder, root=root_path)
            if index.info.get("fingerprint") == fp:
                index.info["reused"] = True
                return index
        except (InputError, OSError, ValueError):
            pass
        stale = True  # unreadable or foreign copy: replace it below

    previous: dict[tuple[str, int, int], dict[str, Any]] = {}
    if cache and (base / root_key).is_dir():
        for old in (base / root_key).iterdir():
            if old.is_dir() and old.name != folder.name and not old.name.startswith("."):
                previous.update(_load_facts(old))

    sidecars = {sc.folder: sc for sc in (read_sidecar(root_path, rel) for rel, _, _ in sidecar_files)}
    facts_rows: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    reread = 0
    for rel, size, mtime in files:
        fact = previous.get((rel, size, mtime))
        if fact is None:
            try:
                fact = {"file": rel, "size": size, "mtime_ns": mtime, **read_facts(root_path / rel)}
            except InputError as err:
                if on_error == "raise":
                    raise
                skipped.append((rel, str(err)))
                continue
            reread += 1
        facts_rows.append(fact)
        meta = merge_volume(rel, fact, sidecars=nearest_sidecars(rel, sidecars), dataset=dataset,
                             defaults=defaults, volume_metadata=volume_metadata, root=root_path)
        shape = fact["shape"]
        n = int(shape[0])
        first = int(meta.get("skip_first", 0))
        stop = n - int(meta.get("skip_last", 0))
        if stop <= first:
            skipped.append((rel, f"no slices left after skip_first={first}, skip_last={meta.get('skip_last', 0)}"))
            continue
        records.append({
            **{c: meta.get(c, "") for c in STRING_COLUMNS},
            "file": rel, "volume": Path(rel).stem,
            "field_strength": meta.get("field_strength", math.nan),
            "coils": int(shape[1]) if len(shape) == 4 else 1,
            "height": int(shape[-2]), "width": int(shape[-1]), "num_slices": n,
            "multicoil": len(shape) == 4, "first": first, "stop": stop, "volume_hash": volume_hash(rel),
        })
    if not records:
        raise InputError("no usable volumes under the data root", path=root_path,
                         got=f"{len(skipped)} skipped" if skipped else None)
    need = [i for i, r in enumerate(records) if not r["split"]]
    for i, split in zip(need, holdout_split([records[i]["subject"] for i in need], float(train_ratio), holdout)):
        records[i]["split"] = split

    columns = {c: [r[c] for r in records] for c in records[0]}
    info = {
        "version": INDEX_VERSION, "fingerprint": fp, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "num_files": len(files), "num_volumes": len(records), "reread_files": reread,
        "skipped": skipped, "settings": settings,
    }
    index = SliceIndex.from_volumes(columns, root=root_path, info=info)
    index.info["num_rows"] = len(index)
    index.info["build_seconds"] = round(time.perf_counter() - start, 3)
    if cache:
        tmp = base / root_key / f".tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            index.save(tmp)
            (tmp / "facts.json").write_text(json.dumps(facts_rows, default=str), encoding="utf-8")
            if folder.exists() and stale:
                shutil.rmtree(folder, ignore_errors=True)
            try:
                os.replace(tmp, folder)
            except OSError:  # another process wrote the same fingerprint meanwhile: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in (base / root_key).iterdir():
            if old.is_dir() and old.name != folder.name and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
        index = SliceIndex.load(folder, root=root_path)
    index.info["reused"] = False
    return index
