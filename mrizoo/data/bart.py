"""BART ``.cfl`` / ``.hdr`` arrays.

A BART array is two files: ``NAME.hdr`` (text; the line after ``# Dimensions`` lists the
sizes) and ``NAME.cfl`` (raw interleaved complex64, column-major / Fortran order).
BART's dimension order starts ``(x, y, z, coil, map, ...)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mrizoo.errors import InputError

__all__ = ["read_cfl", "write_cfl", "cfl_base"]


def cfl_base(path: str | os.PathLike[str]) -> Path:
    """``foo``, ``foo.cfl`` or ``foo.hdr`` -> ``foo`` (the name BART itself uses)."""
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".cfl", ".hdr") else p


def _read_dims(hdr: Path) -> tuple[int, ...]:
    try:
        lines = hdr.read_text().splitlines()
    except FileNotFoundError:
        raise InputError("BART header not found", path=hdr) from None
    except UnicodeDecodeError:
        raise InputError("not a BART text header", path=hdr) from None
    for i, line in enumerate(lines):
        if line.strip().startswith("# Dimensions") and i + 1 < len(lines):
            try:
                dims = tuple(int(v) for v in lines[i + 1].split())
            except ValueError:
                raise InputError(
                    "dimensions line is not a list of integers",
                    path=hdr, field="# Dimensions", got=repr(lines[i + 1]),
                ) from None
            if not dims or any(d < 1 for d in dims):
                raise InputError("dimensions must be positive", path=hdr, field="# Dimensions", got=dims)
            return dims
    raise InputError("no '# Dimensions' line", path=hdr, field="# Dimensions")


def read_cfl(path: str | os.PathLike[str], squeeze: bool = False) -> np.ndarray:
    """Read a BART array as complex64 numpy in BART's dimension order.

    Trailing singleton dimensions are dropped; ``squeeze=True`` drops every singleton.
    The size of the ``.cfl`` is checked against the header before anything is read.
    """
    base = cfl_base(path)
    hdr, cfl = base.with_suffix(".hdr"), base.with_suffix(".cfl")
    dims = list(_read_dims(hdr))
    count = int(np.prod(dims))
    if not cfl.exists():
        raise InputError("BART data file not found", path=cfl)
    size = cfl.stat().st_size
    if size != count * 8:
        raise InputError(
            "data file size does not match the header",
            path=cfl, expected=f"{count * 8} bytes for dims {tuple(dims)} (complex64)", got=f"{size} bytes",
        )
    data = np.fromfile(cfl, dtype=np.complex64, count=count)
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    arr = data.reshape(dims, order="F")
    return np.squeeze(arr) if squeeze else arr


def write_cfl(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a BART array (complex64, Fortran order)."""
    base = cfl_base(path)
    arr = np.asarray(array, dtype=np.complex64)
    base.with_suffix(".hdr").write_text("# Dimensions\n" + " ".join(str(d) for d in arr.shape) + "\n")
    arr.ravel(order="F").tofile(base.with_suffix(".cfl"))
