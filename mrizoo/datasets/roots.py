"""Where the user's local copies of the catalog datasets are.

A dataset's root folder comes from, in this order:

1. the environment variable ``MRIZOO_DATA_<NAME>`` (name upper-cased, every character other
   than a letter or digit replaced by ``_``; e.g. ``MRIZOO_DATA_FASTMRI_KNEE``);
2. the ``datasets:`` mapping of the config file ``$MRIZOO_DATA_CONFIG``, by default
   ``$MRIZOO_HOME/datasets.yaml`` with ``MRIZOO_HOME`` defaulting to ``~/.cache/mrizoo``::

       datasets:
         fastmri-knee: /data/fastmri/knee_multicoil_train
         stanford3d: ~/mri/stanford3d      # relative paths: relative to this file

Nothing is downloaded: a missing root raises :class:`DatasetRootError`, which says how to
set it and where the data is requested.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mrizoo._paths import datasets_config
from mrizoo._yaml import read_yaml
from mrizoo.datasets.catalog import get_dataset, list_datasets
from mrizoo.errors import InputError

__all__ = [
    "DatasetRootError",
    "RootStatus",
    "data_config_path",
    "dataset_root",
    "env_var_name",
    "how_to_set",
    "read_data_config",
    "root_status",
]


class DatasetRootError(InputError):
    """A dataset's local folder is not configured or does not exist."""


def data_config_path() -> Path:
    """The dataset config file: ``$MRIZOO_DATA_CONFIG`` or ``$MRIZOO_HOME/datasets.yaml``."""
    return datasets_config()


def env_var_name(name: str) -> str:
    """``MRIZOO_DATA_<NAME>``: upper case, other characters than letters and digits -> ``_``."""
    return "MRIZOO_DATA_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def read_data_config(path: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Dataset name -> root folder from the config file (empty when the file does not exist)."""
    path = Path(path) if path is not None else data_config_path()
    if not path.exists():
        return {}
    doc = read_yaml(path)
    if doc is None:
        return {}
    if not isinstance(doc, dict) or set(doc) - {"datasets"}:
        raise InputError("dataset config must hold one mapping 'datasets'", path=path,
                         expected="datasets: {name: folder, ...}",
                         got=sorted(doc) if isinstance(doc, dict) else type(doc).__name__)
    table = doc.get("datasets") or {}
    if not isinstance(table, dict):
        raise InputError("wrong type", path=path, field="datasets", expected="a mapping name -> folder",
                         got=type(table).__name__)
    known = list_datasets()
    roots = {}
    for name, value in table.items():
        if name not in known:
            raise InputError("unknown dataset", path=path, field=f"datasets.{name}", expected=f"one of {known}")
        if not isinstance(value, str) or not value.strip():
            raise InputError("wrong type", path=path, field=f"datasets.{name}", expected="a folder path",
                             got=repr(value))
        folder = Path(os.path.expandvars(value)).expanduser()
        roots[name] = folder if folder.is_absolute() else (path.parent / folder)
    return roots


@dataclass(frozen=True)
class RootStatus:
    """Where a dataset's root is set (``origin``), the folder, and whether it exists."""

    name: str
    path: Path | None
    origin: str | None
    exists: bool

    def describe(self) -> str:
        if self.path is None:
            return "not set"
        return f"{self.path}" if self.exists else f"missing: {self.path}"


def root_status(name: str) -> RootStatus:
    """The configured root of dataset ``name`` (environment variable first, then config file)."""
    get_dataset(name)
    var = env_var_name(name)
    if os.environ.get(var):
        folder = Path(os.path.expandvars(os.environ[var])).expanduser()
        return RootStatus(name, folder, f"environment variable {var}", folder.is_dir())
    config = data_config_path()
    roots = read_data_config(config)
    if name in roots:
        return RootStatus(name, roots[name], f"config file {config}", roots[name].is_dir())
    return RootStatus(name, None, None, False)


def how_to_set(name: str) -> str:
    """Instructions for pointing mrizoo at a local copy of ``name`` and requesting it."""
    entry = get_dataset(name)
    where = entry.access.request + (f" ({entry.access.url})" if entry.access.url else "")
    return (
        f"set {env_var_name(name)}=/path/to/{name}, or add '{name}: /path/to/{name}' under 'datasets:' in "
        f"{data_config_path()}; mrizoo downloads nothing: request the data at {where}; terms: "
        f"{entry.access.terms}"
    )


def dataset_root(name: str) -> Path:
    """The existing local folder of dataset ``name``; :class:`DatasetRootError` says how to set it."""
    status = root_status(name)
    if status.path is None:
        raise DatasetRootError("no local folder configured for this dataset", field=name,
                               expected=how_to_set(name))
    if not status.exists:
        raise DatasetRootError("the configured folder does not exist", path=status.path, field=name,
                               expected=f"an existing folder (set by {status.origin}); {how_to_set(name)}")
    return status.path
