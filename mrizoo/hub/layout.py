"""What the Hub carries: a checkpoint folder's file names, the ``hf-hub:`` spec prefix, file digests.

The transport needs these names to fetch and check a checkpoint, and the checkpoint format
(:mod:`mrizoo.models.checkpoint`) writes files under them, so they live here, at the bottom.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME", "HF_HUB_PREFIX", "SpecKind", "spec_kind", "sha256_file"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
#: the prefix that marks a Hub checkpoint spec, ``hf-hub:org/repo[/subfolder][@revision]``
HF_HUB_PREFIX = "hf-hub:"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


SpecKind = Literal["hub", "path", "name"]


def spec_kind(spec: str | os.PathLike[str]) -> SpecKind:
    """What a model reference is: ``hub`` (``hf-hub:org/repo[/sub][@rev]``, or a bare ``org/repo`` that
    is no existing folder), ``path`` (a folder path: an existing folder, or anything starting with
    ``.``, ``~`` or ``/`` or holding a path separator), or ``name`` (a zoo name).

    The one reading of "name | path | Hub repo" used by loading, training's ``init_from`` and
    ``from_pretrained``.
    """
    text = os.fspath(spec)
    if text.startswith(HF_HUB_PREFIX):
        return "hub"
    if isinstance(spec, os.PathLike) or text.startswith((".", "~", "/")) or Path(text).expanduser().is_dir():
        return "path"
    if text.count("/") == 1 and "\\" not in text:
        return "hub"
    if "/" in text or os.sep in text or (os.altsep is not None and os.altsep in text):
        return "path"
    return "name"
