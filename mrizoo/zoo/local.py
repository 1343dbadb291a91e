"""The local zoo: weights trained on this machine, in ``$MRIZOO_HOME/zoo/<name>/``.

The trainer writes them with :func:`local_zoo_dir`; ``mrizoo.load(name)`` finds them with no Hub
at all. These are the user's results, not a cache: ``mrizoo cache clean`` never deletes them
(the folders under ``MRIZOO_HOME`` are :mod:`mrizoo._paths`).

Precedence: for a zoo name, weights in the local zoo win over the entry's published source; when
they hide shipped or published weights, a one-line warning (logger ``mrizoo.zoo``, printed on
stderr even with no logging set up) says so at every load, and ``model.weights_source`` records
it. ``mrizoo.load(name, prefer_local=False)`` takes the published ones. Smoke runs never write here.
"""

from __future__ import annotations

from pathlib import Path

from mrizoo._paths import local_zoo_root
from mrizoo.errors import InputError
from mrizoo.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_config
from mrizoo.zoo.names import parse_name

__all__ = ["local_zoo_dir", "find_local_checkpoint"]


def local_zoo_dir(name: str) -> Path:
    """The checkpoint folder where locally trained weights of zoo entry ``name`` live (may not exist yet)."""
    try:
        parse_name(name)
    except ValueError as err:
        raise InputError(str(err), field="name") from None
    return local_zoo_root() / name


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
