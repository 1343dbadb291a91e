"""Where mrizoo keeps its own files: the one place that reads ``MRIZOO_HOME``.

``MRIZOO_HOME`` (default ``~/.cache/mrizoo``, read at each call so tests and users can point it
elsewhere at any time) holds:

- ``zoo/<name>/``: checkpoints trained on this machine with an entry's recipe (the user's
  results, never cleaned by ``mrizoo cache clean``);
- ``upstream/``, ``downloads/``, ``quarantine/``, ``locks/``: converted upstream checkpoints,
  partial downloads, files that failed their sha256 check, and the locks that keep two
  processes from converting the same file at once;
- ``slice_index/``: the cached slice index of data pools;
- ``datasets.yaml``: where the datasets of the catalogue live on this machine.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MRIZOO_HOME_ENV", "mrizoo_home", "local_zoo_root", "upstream_root", "downloads_root",
           "quarantine_root", "locks_root", "slice_index_root", "datasets_config"]

MRIZOO_HOME_ENV = "MRIZOO_HOME"


def mrizoo_home() -> Path:
    """``$MRIZOO_HOME``, else ``~/.cache/mrizoo``."""
    value = os.environ.get(MRIZOO_HOME_ENV)
    return Path(value).expanduser() if value else Path("~/.cache/mrizoo").expanduser()


def local_zoo_root() -> Path:
    """``zoo/``: checkpoints trained on this machine, one folder per zoo name."""
    return mrizoo_home() / "zoo"


def upstream_root() -> Path:
    """``upstream/``: upstream checkpoints converted to mrizoo's format."""
    return mrizoo_home() / "upstream"


def downloads_root() -> Path:
    """``downloads/``: upstream files being downloaded (resumable ``.part`` files)."""
    return mrizoo_home() / "downloads"


def quarantine_root() -> Path:
    """``quarantine/``: files that failed their sha256 check (outside every cache that is loaded from)."""
    return mrizoo_home() / "quarantine"


def locks_root() -> Path:
    """``locks/``: file locks of conversions running in other processes."""
    return mrizoo_home() / "locks"


def slice_index_root() -> Path:
    """``slice_index/``: the cached slice index of data pools."""
    return mrizoo_home() / "slice_index"


def datasets_config() -> Path:
    """``datasets.yaml``: the folders of the catalogue's datasets (``$MRIZOO_DATA_CONFIG`` overrides it)."""
    value = os.environ.get("MRIZOO_DATA_CONFIG")
    return Path(value).expanduser() if value else mrizoo_home() / "datasets.yaml"
