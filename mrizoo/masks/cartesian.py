"""fastMRI's Cartesian line masks, bit-identical to ``fastmri.data.subsample`` for the same seed.

Each call draws, from a ``numpy.random.RandomState`` seeded with ``seed``: first the index of the
(centre fraction, acceleration) pair (always, even for a single pair), then whatever the family
needs (uniform numbers for ``random``, the offset for the equispaced ones when none is given).
The centre block of ``round(W * center_fraction)`` columns starts at ``(W - n + 1) // 2``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mrizoo.errors import InputError
from mrizoo.masks._common import (
    as_sequence,
    center_start,
    check_acceleration,
    check_budget,
    check_center_fraction,
    check_int,
    horizontal,
    lines_mask,
)
from mrizoo.masks._registry import Mask, SeedLike, register_mask

__all__ = [
    "random_mask",
    "equispaced_mask",
    "equispaced_fraction_mask",
    "magic_mask",
]

_Pair = tuple[float, float]  # (center_fraction, acceleration)


def _pairs(
    width: int,
    acceleration: Any,
    center_fraction: Any,
    accelerations: Any,
    center_fractions: Any,
    *,
    integer: bool,
) -> list[_Pair]:
    """The (centre fraction, acceleration) pairs to draw from, checked against the width."""
    scalars = acceleration is not None or center_fraction is not None
    lists = accelerations is not None or center_fractions is not None
    if scalars and lists:
        raise InputError(
            "give either scalar or sequence parameters, not both",
            field="acceleration",
            expected="acceleration + center_fraction, or accelerations + center_fractions",
        )
    if lists:
        accs = as_sequence(accelerations, "accelerations") if accelerations is not None else None
        cfs = as_sequence(center_fractions, "center_fractions") if center_fractions is not None else None
        if accs is None or cfs is None:
            missing = "accelerations" if accs is None else "center_fractions"
            raise InputError(
                "missing parameter", field=missing, expected="a sequence paired with the other one"
            )
        if len(accs) != len(cfs):
            raise InputError(
                "accelerations and center_fractions must pair up",
                field="center_fractions",
                expected=f"{len(accs)} values (one per acceleration)",
                got=f"{len(cfs)} values",
            )
        pairs = [
            (
                check_center_fraction(cf, "center_fractions"),
                check_acceleration(acc, "accelerations", integer=integer),
            )
            for cf, acc in zip(cfs, accs)
        ]
    else:
        pairs = [
            (
                check_center_fraction(center_fraction, "center_fraction"),
                check_acceleration(acceleration, "acceleration", integer=integer),
            )
        ]
    for cf, acc in pairs:
        check_budget(round(width * cf), width, acc, field="center_fraction", what="lines")
    return pairs


def _check_offset(offset: Any, width: int) -> int | None:
    return None if offset is None else check_int(offset, "offset", low=0, high=width - 1)


def _draw(width: int, seed: SeedLike, pairs: list[_Pair]) -> tuple[np.random.RandomState, float, int, np.ndarray]:
    """Seed the generator, pick a pair, and lay out the centre block."""
    rng = np.random.RandomState(seed)
    cf, acc = pairs[rng.randint(len(pairs))]
    num_low = round(width * cf)
    lines = np.zeros(width, dtype=bool)
    start = center_start(width, num_low)
    lines[start : start + num_low] = True
    return rng, acc, num_low, lines


@register_mask(
    "random",
    description="fastMRI RandomMaskFunc: centre block plus columns kept independently so that "
    "W/acceleration are expected in total",
)
def random_mask(
    shape: tuple[int, int],
    seed: SeedLike = None,
    *,
    acceleration: float | None = None,
    center_fraction: float | None = None,
    accelerations: list[float] | None = None,
    center_fractions: list[float] | None = None,
) -> Mask:
    """Columns outside the centre kept with probability ``(W/R - n_low) / (W - n_low)``."""
    height, width = shape
    pairs = _pairs(width, acceleration, center_fraction, accelerations, center_fractions, integer=False)
    rng, acc, num_low, lines = _draw(width, seed, pairs)
    keep = (width / acc - num_low) / (width - num_low)
    lines |= rng.uniform(size=width) < keep
    return lines_mask(lines, height, num_low, "random")


@register_mask(
    "equispaced",
    description="fastMRI EquiSpacedMaskFunc: centre block plus every R-th column from an offset "
    "(random unless given)",
)
def equispaced_mask(
    shape: tuple[int, int],
    seed: SeedLike = None,
    *,
    acceleration: int | None = None,
    center_fraction: float | None = None,
    accelerations: list[int] | None = None,
    center_fractions: list[float] | None = None,
    offset: int | None = None,
) -> Mask:
    """Every ``R``-th column from ``offset``; the centre block makes the true acceleration lower than R."""
    height, width = shape
    pairs = _pairs(width, acceleration, center_fraction, accelerations, center_fractions, integer=True)
    offset = _check_offset(offset, width)
    rng, acc, num_low, lines = _draw(width, seed, pairs)
    step = int(acc)
    if offset is None:
        offset = int(rng.randint(0, step))
    lines[np.arange(offset, width, step)] = True
    return lines_mask(lines, height, num_low, "equispaced")


@register_mask(
    "equispaced_fraction",
    description="fastMRI EquispacedMaskFractionFunc: centre block plus columns at a fractional "
    "spacing chosen so the total is about W/acceleration",
)
def equispaced_fraction_mask(
    shape: tuple[int, int],
    seed: SeedLike = None,
    *,
    acceleration: float | None = None,
    center_fraction: float | None = None,
    accelerations: list[float] | None = None,
    center_fractions: list[float] | None = None,
    offset: int | None = None,
) -> Mask:
    """Columns at rounded positions ``offset + k * R'`` with ``R' = R (W - n_low) / (W - R n_low)``."""
    height, width = shape
    pairs = _pairs(width, acceleration, center_fraction, accelerations, center_fractions, integer=False)
    offset = _check_offset(offset, width)
    rng, acc, num_low, lines = _draw(width, seed, pairs)
    spacing = acc * (width - num_low) / (width - num_low * acc)
    if offset is None:
        offset = int(rng.randint(0, round(spacing)))
    # Positions stop before the last column, as in the public fastMRI multicoil data.
    positions = np.round(np.arange(offset, width - 1, spacing)).astype(np.int64)
    lines[positions] = True
    return lines_mask(lines, height, num_low, "equispaced_fraction")


@register_mask(
    "magic",
    description="fastMRI MagicMaskFunc (Defazio 2019): equispaced columns with offsets on the two "
    "halves of k-space that complement each other under conjugate symmetry",
)
def magic_mask(
    shape: tuple[int, int],
    seed: SeedLike = None,
    *,
    acceleration: int | None = None,
    center_fraction: float | None = None,
    accelerations: list[int] | None = None,
    center_fractions: list[float] | None = None,
    offset: int | None = None,
) -> Mask:
    """Columns ``c + a + kR`` right of the DC column ``c = W // 2`` and ``c - 1 - b - kR`` left of it."""
    height, width = shape
    pairs = _pairs(width, acceleration, center_fraction, accelerations, center_fractions, integer=True)
    offset = _check_offset(offset, width)
    rng, acc, num_low, lines = _draw(width, seed, pairs)
    step = int(acc)
    if offset is None:
        offset = int(rng.randint(0, step))
    right, left = (offset + 1, offset + 2) if offset % 2 == 0 else (offset + 2, offset - 1)
    dc = width // 2
    lines[dc + np.arange(right, width - dc, step)] = True
    lines[dc - 1 - np.arange(left, dc, step)] = True
    return lines_mask(lines, height, num_low, "magic")


register_mask(
    "random_horizontal", description="the 'random' mask selecting rows instead of columns"
)(horizontal(random_mask))
register_mask(
    "equispaced_horizontal", description="the 'equispaced' mask selecting rows instead of columns"
)(horizontal(equispaced_mask))
register_mask(
    "equispaced_fraction_horizontal",
    description="the 'equispaced_fraction' mask selecting rows instead of columns",
)(horizontal(equispaced_fraction_mask))
