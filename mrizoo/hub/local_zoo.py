"""Where mrizoo keeps its own files, and the local zoo of weights trained on this machine.

``MRIZOO_HOME`` (default ``~/.cache/mrizoo``) holds:

- ``zoo/<name>/``: checkpoints trained locally with an entry's recipe (the trainer writes them with
  :func:`local_zoo_dir`); ``mrizoo.load(name)`` finds them with no Hub at all. These are the
  user's results, not a cache: ``mrizoo cache clean`` never deletes them.
- ``upstream/``, ``downloads/``, ``quarantine/``: converted upstream checkpoints, partial
  downloads and files that failed their sha256 check (see :mod:`mrizoo.hub.upstream`).

Precedence: for a zoo name, weights in the local zoo win over the entry's published source; when
they hide shipped or published weights, a one-line warning (logger ``mrizoo.hub``, printed on
stderr even with no logging set up) says so at every load, and ``model.weights_source`` records
it. ``mrizoo.load(name, prefer_local=False)`` takes the published ones. Smoke runs never write here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mrizoo.errors import InputError
from mrizoo.hub.format import CONFIG_NAME, WEIGHTS_NAME, read_config

__all__ = ["MRIZOO_HOME_ENV", "mrizoo_home", "local_zoo_dir", "find_local_checkpoint"]

MRIZOO_HOME_ENV = "MRIZOO_HOME"
logger = logging.getLogger("mrizoo.hub")


def mrizoo_home() -> Path:
    """The folder of mrizoo's own files: ``$MRIZOO_HOME``, else ``~/.cache/mrizoo`` (read at each call)."""
    value = os.environ.get(MRIZOO_HOME_ENV)
    return Path(value).expanduser() if value else Path("~/.cache/mrizoo").expanduser()


def local_zoo_dir(name: str) -> Path:
    """The checkpoint folder where locally trained weights of zoo entry ``name`` live (may not exist yet)."""
    from mrizoo.zoo.names import parse_name

    try:
        parse_name(name)
    except ValueError as err:
        raise InputError(str(err), field="name") from None
    return mrizoo_home() / "zoo" / name


def find_local_checkpoint(name: str, arch: str | None = None) -> Path | None:
    """The local zoo folder of ``name`` when it holds a complete checkpoint, else None.

    A folder whose ``config.json`` names another architecture than the entry is an error,
    not something to skip silently.
    """
    folder = local_zoo_dir(name)
    if not ((folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()):
        return None
    doc = read_config(folder)
    if arch is not None and doc["arch"] != arch:
        raise InputError("locally trained checkpoint does not fit its zoo entry", path=folder / CONFIG_NAME,
                         field="arch", expected=arch, got=doc["arch"])
    return folder
