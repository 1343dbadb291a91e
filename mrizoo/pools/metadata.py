"""Per-volume metadata of a slice index: sidecar files and the merge of every metadata source.

Per-volume metadata is merged from, in increasing priority: dataset-level defaults (a
catalog), a sidecar's ``defaults``, the ISMRMRD header (vendor, scanner, field strength,
protocol), file attributes named like columns (plus ``acquisition`` -> protocol and
``patient_id`` -> subject), a sidecar's per-volume entry, and the caller's per-volume
mapping. A sidecar is a ``mrizoo_metadata.yaml`` (or ``.json``) in the volume's folder or
any parent up to the root::

    dataset: stanford2d                 # dataset of every volume below this folder
    defaults: {anatomy: knee, vendor: GE}
    volumes:
      case_001: {contrast: PD, split: train}   # key: file stem or path from this folder

Missing contrast and view are read from fastMRI protocol names (``CORPDFS_FBK`` -> PDFS,
coronal); a missing view also from a dataset name ending in it (``cc359_sagittal``). A
missing split comes from the folder names (:func:`mrizoo.pools.splits.split_from_path`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrizoo._yaml import read_yaml
from mrizoo.errors import InputError
from mrizoo.pools.columns import contrast_from_protocol, dataset_defaults, normalize_metadata, view_from_protocol
from mrizoo.pools.scan import SIDECAR_NAMES
from mrizoo.pools.splits import split_from_path

__all__ = ["DatasetArg", "Sidecar", "merge_volume", "nearest_sidecars", "read_sidecar"]

DatasetArg = str | Mapping[str, str] | Callable[[str], "str | None"] | None


@dataclass
class Sidecar:
    """One metadata sidecar: the folder it governs, its dataset name, defaults and volume entries."""

    folder: str  # relative posix folder ("" = root)
    dataset: str | None
    defaults: dict[str, Any]
    volumes: dict[str, dict[str, Any]]


def read_sidecar(root: Path, rel: str) -> Sidecar:
    """Read and check the sidecar at ``root / rel``."""
    path = root / rel
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read metadata sidecar ({err})".replace("\n", " "), path=path) from None
    else:
        data = read_yaml(path)
    data = data or {}
    if not isinstance(data, Mapping):
        raise InputError("a metadata sidecar holds a mapping", path=path, expected="keys dataset, defaults, volumes")
    extra = sorted(set(data) - {"dataset", "defaults", "volumes"})
    if extra:
        raise InputError(f"unknown key(s) {extra}", path=path, field=extra[0],
                         expected="keys among ['dataset', 'defaults', 'volumes']")
    dataset = None
    if data.get("dataset") is not None:
        dataset = normalize_metadata({"dataset": data["dataset"]}, source=str(path))["dataset"]
    defaults = normalize_metadata(data.get("defaults") or {}, source=f"{path}: defaults")
    vols = data.get("volumes") or {}
    if not isinstance(vols, Mapping):
        raise InputError("must map volume names to metadata", path=path, field="volumes")
    volumes = {str(k): normalize_metadata(v or {}, source=f"{path}: volumes.{k}") for k, v in vols.items()}
    folder = Path(rel).parent.as_posix()
    return Sidecar("" if folder == "." else folder, dataset, defaults, volumes)


def nearest_sidecars(rel: str, sidecars: Mapping[str, Sidecar]) -> list[Sidecar]:
    """Sidecars that apply to ``rel``, nearest folder first."""
    out = []
    parent = Path(rel).parent.as_posix()
    parts = [] if parent == "." else parent.split("/")
    for depth in range(len(parts), -1, -1):
        folder = "/".join(parts[:depth])
        if folder in sidecars:
            out.append(sidecars[folder])
    return out


def _resolve_dataset_arg(dataset: DatasetArg, rel: str) -> str | None:
    if dataset is None:
        return None
    if isinstance(dataset, str):
        return dataset
    if isinstance(dataset, Mapping):
        best = None
        for prefix, name in dataset.items():
            p = str(prefix).strip("/")
            if (p == "" or rel == p or rel.startswith(p + "/")) and (best is None or len(p) > len(best[0])):
                best = (p, name)
        return None if best is None else best[1]
    return dataset(rel)


def _lookup(mapping: Mapping[str, Any] | None, rel: str, stem: str) -> Any:
    if not mapping:
        return None
    for key in (rel, Path(rel).name, stem):
        if key in mapping:
            return mapping[key]
    return None


def merge_volume(
    rel: str,
    facts: Mapping[str, Any],
    *,
    sidecars: list[Sidecar],
    dataset: DatasetArg,
    defaults: Mapping[str, Any] | None,
    volume_metadata: Mapping[str, Mapping[str, Any]] | None,
    root: Path,
) -> dict[str, Any]:
    """Metadata of the volume at ``rel``: its ``facts`` (:func:`~mrizoo.pools.scan.read_facts`) merged with
    every source in the module docstring."""
    stem = Path(rel).stem
    caller_vol = _lookup(volume_metadata, rel, stem)
    caller_vol = normalize_metadata(caller_vol, source=f"volume_metadata[{rel!r}]") if caller_vol else {}
    side_vols: list[dict[str, Any]] = []
    for sc in sidecars:
        local = rel[len(sc.folder) + 1:] if sc.folder else rel
        entry = _lookup(sc.volumes, local, stem)
        if entry:
            side_vols.append(entry)
    attrs = normalize_metadata(facts["attrs"], source=str(root / rel), strict=False)

    name = caller_vol.get("dataset") or _resolve_dataset_arg(dataset, rel)
    if not name:
        name = next((v["dataset"] for v in side_vols if v.get("dataset")), None)
    if not name:
        name = next((sc.dataset for sc in sidecars if sc.dataset), None)
    if not name:
        name = attrs.get("dataset")
    if not name:
        raise InputError("no dataset name for this volume", path=root / rel, field="dataset",
                         expected="dataset=... from the caller, a sidecar 'dataset:' key "
                                  f"({SIDECAR_NAMES[0]}) or a 'dataset' file attribute")
    name = normalize_metadata({"dataset": name}, source=str(root / rel))["dataset"]

    meta: dict[str, Any] = {}
    if defaults and name in defaults:
        entry = defaults[name]
        meta.update(dataset_defaults(entry))
    for sc in reversed(sidecars):  # farthest first, nearest wins
        meta.update(sc.defaults)
    meta.update(facts["header"])
    acquisition = facts["attrs"].get("acquisition")
    if isinstance(acquisition, str) and acquisition.strip() and "protocol" not in facts["header"]:
        meta["protocol"] = acquisition.strip()
    patient = facts["attrs"].get("patient_id")
    if isinstance(patient, str) and patient.strip():
        meta["subject"] = patient.strip()
    meta.update(attrs)
    for entry in reversed(side_vols):
        meta.update(entry)
    meta.update(caller_vol)
    meta["dataset"] = name
    protocol = str(meta.get("protocol", ""))
    if not meta.get("contrast") and protocol:
        meta["contrast"] = contrast_from_protocol(protocol)
    if not meta.get("view") and protocol:
        meta["view"] = view_from_protocol(protocol)
    if not meta.get("view"):  # pool names of sliced 3D data end in their view (cc359_sagittal)
        meta["view"] = next((v for v in ("axial", "coronal", "sagittal") if name.endswith(f"_{v}")), "")
    if not meta.get("split"):
        meta["split"] = split_from_path(rel)
    if not meta.get("subject"):
        meta["subject"] = stem
    return meta

