"""Datasets: the catalog of fully sampled k-space datasets and where their local copies are.

Nothing is ever downloaded: each dataset is requested from its owner and pointed at with a
config file or an environment variable (see :mod:`mrizoo.datasets.roots`).
"""

from mrizoo.datasets.catalog import (
    Access,
    DatasetEntry,
    FieldStrength,
    Share,
    ViewEntry,
    catalog_rows,
    get_dataset,
    list_datasets,
    load_catalog,
    read_dataset_file,
)
from mrizoo.datasets.roots import (
    DatasetRootError,
    RootStatus,
    data_config_path,
    dataset_root,
    env_var_name,
    read_data_config,
    root_status,
)

__all__ = [
    "Access", "DatasetEntry", "FieldStrength", "Share", "ViewEntry", "catalog_rows", "get_dataset",
    "list_datasets", "load_catalog", "read_dataset_file",
    "DatasetRootError", "RootStatus", "data_config_path", "dataset_root", "env_var_name",
    "read_data_config", "root_status",
]
