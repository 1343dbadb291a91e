"""The dataset catalog: the fully sampled k-space datasets of the diverse training pool.

One YAML file per dataset in ``mrizoo/datasets/entries/`` declares what the dataset is
(anatomy, views, contrasts, vendor, field strength, coils, volume and slice counts as in
Table 1 of Lin & Heckel, ICML 2024), its access terms, its role (training pool or
out-of-distribution test set) and how its files are converted to fastMRI volumes. Entries
are validated on loading; a bad key or type is reported with the file and the key.
"""

from __future__ import annotations

import importlib.resources
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mrizoo._dataclass_io import from_dict, read_yaml_section
from mrizoo._registry import did_you_mean
from mrizoo.data.converters.spec import ConversionSpec, ViewGeometry
from mrizoo.errors import InputError

__all__ = [
    "Access",
    "DatasetEntry",
    "FieldStrength",
    "Share",
    "ViewEntry",
    "catalog_rows",
    "get_dataset",
    "list_datasets",
    "load_catalog",
    "read_dataset_file",
]

Role = Literal["train", "ood-test"]
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True)
class Share:
    """A value and, optionally, its share of the dataset in percent (``PD (50%)``)."""

    name: str
    percent: float | None = None

    def __str__(self) -> str:
        return self.name if self.percent is None else f"{self.name} ({self.percent:g}%)"


@dataclass(frozen=True)
class FieldStrength:
    """Main field in tesla and, optionally, its share of the dataset in percent."""

    tesla: float
    percent: float | None = None

    def __post_init__(self) -> None:
        if not self.tesla > 0:
            raise ValueError(f"'tesla' must be positive, got {self.tesla}")

    def __str__(self) -> str:
        return f"{self.tesla:g}T" + ("" if self.percent is None else f" ({self.percent:g}%)")


@dataclass(frozen=True)
class Access:
    """Licence or access terms, and where the data is requested (official page name, URL if known)."""

    terms: str
    request: str
    url: str | None = None


@dataclass(frozen=True)
class ViewEntry:
    """One row of Table 1: a view of the dataset, its counts, role and how it is cut.

    ``volumes``, ``subjects`` and ``slices`` are the table's figures as printed (``1.2k``).
    """

    name: str
    volumes: str
    subjects: str
    slices: str
    role: Role
    geometry: ViewGeometry = field(default_factory=ViewGeometry)
    notes: str = ""


@dataclass(frozen=True)
class DatasetEntry:
    """A catalog entry; ``title`` is the dataset's name and citation as in Table 1."""

    name: str
    title: str
    order: int
    anatomy: str
    contrasts: tuple[Share, ...]
    vendor: str
    field_strengths: tuple[FieldStrength, ...]
    coils: str
    access: Access
    conversion: ConversionSpec
    views: tuple[ViewEntry, ...]
    source_format: str = ""
    split: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"'name' must be lower-case letters, digits and '-', got {self.name!r}")
        if not self.views:
            raise ValueError("'views' must list at least one view")
        names = [v.name for v in self.views]
        if len(set(names)) != len(names):
            raise ValueError(f"view names must be unique, got {names}")
        if "all" in names:
            raise ValueError("'all' is reserved and cannot name a view")

    @property
    def contrast_text(self) -> str:
        return ", ".join(str(c) for c in self.contrasts)

    @property
    def field_text(self) -> str:
        return ", ".join(str(f) for f in self.field_strengths)

    @property
    def roles(self) -> set[str]:
        return {v.role for v in self.views}

    def view(self, name: str) -> ViewEntry:
        for v in self.views:
            if v.name == name:
                return v
        raise InputError("unknown view", field="view", expected=f"one of {[v.name for v in self.views]}",
                         got=repr(name))

    def pool_name(self, view: str) -> str:
        """The dataset name pools use for one view: ``_`` for ``-``, the view appended when there
        are several (``stanford3d_axial``, ``skm_tea``)."""
        base = self.name.replace("-", "_")
        return f"{base}_{self.view(view).name}" if len(self.views) > 1 else base

    def volume_attrs(self, view: str) -> dict[str, str | float]:
        """File attributes describing the volumes of one view (dataset, anatomy, vendor, ...)."""
        attrs: dict[str, str | float] = {"dataset": self.pool_name(view), "catalog_dataset": self.name,
                                         "vendor": self.vendor}
        if self.anatomy != "various":
            attrs["anatomy"] = self.anatomy
        if len(self.field_strengths) == 1:
            attrs["field_strength"] = float(self.field_strengths[0].tesla)
        if len(self.contrasts) == 1 and self.contrasts[0].name != "various":
            attrs["contrast"] = self.contrasts[0].name
        return attrs

    def header_meta(self) -> dict[str, str]:
        """Scanner facts for the ISMRMRD header of converted files lacking one."""
        meta = {"systemVendor": self.vendor}
        if len(self.field_strengths) == 1:
            meta["systemFieldStrength_T"] = f"{self.field_strengths[0].tesla:g}"
        if len(self.contrasts) == 1 and self.contrasts[0].name != "various":
            meta["protocolName"] = self.contrasts[0].name
        if self.coils.isdigit():
            meta["receiverChannels"] = self.coils
        return meta


def read_dataset_file(path: str | Path, text: str | None = None) -> DatasetEntry:
    """Parse the ``dataset:`` mapping of one catalog file into a validated entry."""
    source = str(path)
    doc, _ = read_yaml_section(path, "dataset", text)
    extra = sorted(set(doc) - {"dataset"})
    if extra:
        raise InputError(f"unknown top-level key(s) {extra}", path=source, expected="only 'dataset'")
    entry = from_dict(DatasetEntry, doc["dataset"], source=source, prefix="dataset")
    stem = Path(path).name.removesuffix(".yaml")
    if stem != entry.name:
        raise InputError("file name must be the dataset name", path=source, field="dataset.name",
                         expected=f"{entry.name}.yaml", got=Path(path).name)
    return entry


_CACHE: dict[str, DatasetEntry] = {}
_LOCK = threading.Lock()


def load_catalog() -> dict[str, DatasetEntry]:
    """All shipped entries by name, in Table 1 order."""
    with _LOCK:
        if not _CACHE:
            folder = importlib.resources.files("mrizoo.datasets") / "entries"
            entries = []
            for item in sorted(folder.iterdir(), key=lambda p: p.name):
                if item.name.endswith(".yaml"):
                    entries.append(read_dataset_file(str(item), item.read_text()))
            for e in sorted(entries, key=lambda e: (e.order, e.name)):
                _CACHE[e.name] = e
    return dict(_CACHE)


def list_datasets() -> list[str]:
    """Dataset names in Table 1 order."""
    return list(load_catalog())


def get_dataset(name: str) -> DatasetEntry:
    """The entry ``name``; unknown names suggest the closest ones."""
    catalog = load_catalog()
    if name in catalog:
        return catalog[name]
    raise InputError(f"unknown dataset{did_you_mean(str(name), catalog)}", field="dataset", expected=f"one of {list(catalog)}",
                     got=repr(name))


def catalog_rows() -> list[tuple[DatasetEntry, ViewEntry]]:
    """(dataset, view) pairs: the rows of Table 1, in its order."""
    return [(e, v) for e in load_catalog().values() for v in e.views]
