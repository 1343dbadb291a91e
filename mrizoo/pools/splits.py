"""Deterministic train/holdout splits and volume hashes of a slice index.

A volume's split is the given one, else a folder name (``multicoil_train`` -> train,
``val``/``validation`` -> val, ``test``), else a deterministic 85/15 train/val split of the
*subject* (``subject`` column, which defaults to the volume name): a subject goes to
``train`` when ``sha256(name)`` as a fraction of 2^64 is below the ratio. The hash uses the
name only, so the views of one 3D scan (``cc359_axial`` / ``cc359_sagittal`` files of the
same name or subject) always land in the same split, on every machine and run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from mrizoo.errors import InputError

__all__ = ["holdout_split", "split_from_path", "unit_hash", "volume_hash"]

_SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                "validation": "val", "test": "test", "testing": "test"}


def unit_hash(key: str) -> float:
    """``sha256(key)`` as a number in [0, 1): the same on every machine and run."""
    digest = hashlib.sha256(f"mrizoo-split:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def volume_hash(relpath: str) -> int:
    """64-bit ``sha256`` of a volume's path relative to the data root (the ``volume_hash`` column)."""
    return int.from_bytes(hashlib.sha256(relpath.encode()).digest()[:8], "big")


def holdout_split(keys: Sequence[str], ratio: float = 0.85, holdout: str = "val") -> list[str]:
    """``"train"`` for keys whose :func:`unit_hash` is below ``ratio``, else ``holdout``."""
    if not 0.0 < ratio < 1.0:
        raise InputError("train ratio must lie strictly between 0 and 1", field="train_ratio", got=ratio)
    return ["train" if unit_hash(k) < ratio else holdout for k in keys]


def split_from_path(relpath: str) -> str:
    """``train``/``val``/``test`` named by the deepest folder of ``relpath`` that names one, else ``""``."""
    found = ""
    for part in Path(relpath).parts[:-1]:
        words = re.split(r"[^a-z0-9]+", part.lower())
        for word in words:
            if word in _SPLIT_WORDS:
                found = _SPLIT_WORDS[word]
    return found

