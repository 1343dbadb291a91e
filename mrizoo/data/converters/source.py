"""What a source reader returns (:class:`SourceVolume`) and how every reader opens an HDF5 file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrizoo.data.converters.pipeline import LabeledVolume
from mrizoo.errors import InputError

__all__ = ["SourceVolume", "open_h5"]


@dataclass
class SourceVolume:
    """A source file as read: labelled k-space, header XML, attributes, stored target."""

    volume: LabeledVolume
    header: bytes | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    target: np.ndarray | None = None
    echo_labels: tuple[int, ...] | None = None
    untouched: bool = False  # k-space exactly as stored (no averaging or padding)


def open_h5(path: Path) -> h5py.File:
    """The HDF5 file at ``path`` for reading; a missing or unreadable file is a clear :class:`InputError`."""
    if not path.is_file():
        raise InputError("source file not found", path=path)
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError("not a readable HDF5 file (corrupt, truncated or another format)", path=path,
                         got=str(err).split("(")[0].strip() or type(err).__name__) from None
