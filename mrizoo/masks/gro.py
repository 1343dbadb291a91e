"""rcGAN's fixed GRO line masks (Bendel, Ahmad & Schniter, NeurIPS 2023), defined for 384 columns."""

from __future__ import annotations

import numbers

import numpy as np

from mrizoo.errors import InputError
from mrizoo.masks._common import lines_mask
from mrizoo.masks._registry import Mask, SeedLike, register_mask

__all__ = ["gro_mask", "GRO_WIDTH"]

GRO_WIDTH = 384

# Sampled columns as published with the rcGAN code ("a-b" = a..b inclusive).
_R8 = (
    "1,23,42,60,77,92,105,117,128,138,147,155,162,169,176,182,184-200,204,210,217,224,231,239,248,"
    "258,269,281,294,309,326,344,363"
)
_R4 = (
    "0,10,19,28,37,46,54,61,69,76,83,89,95,101,107,112,118,122,127,132,136,140,144,148,151,155,158,"
    "161,164,167,170,173,176-207,208,211,214,217,220,223,226,229,233,236,240,244,248,252,257,262,"
    "266,272,277,283,289,295,301,308,315,323,330,338,347,356,365,374"
)


def _parse(spec: str) -> np.ndarray:
    cols: set[int] = set()
    for item in spec.split(","):
        lo, _, hi = item.partition("-")
        cols.update(range(int(lo), int(hi or lo) + 1))
    return np.array(sorted(cols), dtype=np.int64)


_COLUMNS = {4: _parse(_R4), 8: _parse(_R8)}


def _center_run(lines: np.ndarray) -> int:
    """Length of the run of sampled columns that contains the DC column ``W // 2``."""
    dc = lines.size // 2
    if not lines[dc]:
        return 0
    lo = dc
    while lo > 0 and lines[lo - 1]:
        lo -= 1
    hi = dc
    while hi + 1 < lines.size and lines[hi + 1]:
        hi += 1
    return hi - lo + 1


@register_mask(
    "gro",
    description="rcGAN's fixed GRO column masks at acceleration 4 (96 lines) or 8 (48 lines), "
    "384 columns; the seed is ignored",
)
def gro_mask(shape: tuple[int, int], seed: SeedLike = None, *, acceleration: int | None = None) -> Mask:
    """The fixed GRO mask; deterministic, so ``seed`` has no effect."""
    height, width = shape
    known = isinstance(acceleration, numbers.Real) and not isinstance(acceleration, bool)
    if not known or acceleration not in _COLUMNS:
        raise InputError(
            "no GRO mask for this acceleration", field="acceleration", expected="4 or 8", got=repr(acceleration)
        )
    if width != GRO_WIDTH:
        raise InputError(
            f"the GRO masks are defined for {GRO_WIDTH} columns",
            field="shape",
            expected=f"(H, {GRO_WIDTH})",
            got=repr(tuple(shape)),
        )
    lines = np.zeros(width, dtype=bool)
    lines[_COLUMNS[int(acceleration)]] = True
    return lines_mask(lines, height, _center_run(lines), "gro")
