"""Parameter checks and Mask builders shared by the mask families."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from mrizoo.errors import InputError
from mrizoo.masks._registry import Mask, SeedLike

__all__ = [
    "check_acceleration",
    "check_center_fraction",
    "check_int",
    "check_budget",
    "center_start",
    "lines_mask",
    "points_mask",
    "horizontal",
    "transpose_mask",
    "as_sequence",
]


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_acceleration(value: Any, field: str = "acceleration", *, integer: bool = False) -> float:
    """A finite acceleration > 1 (an integral value when ``integer``)."""
    if value is None:
        raise InputError("missing parameter", field=field, expected="an acceleration > 1")
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) <= 1:
        raise InputError("bad acceleration", field=field, expected="a finite number > 1", got=repr(value))
    if integer and float(value) != int(value):
        raise InputError(
            "this mask steps through lines by the acceleration",
            field=field,
            expected="an integer",
            got=repr(value),
        )
    return int(value) if integer else float(value)


def check_center_fraction(value: Any, field: str = "center_fraction") -> float:
    """A centre fraction strictly between 0 and 1."""
    if value is None:
        raise InputError("missing parameter", field=field, expected="a fraction in (0, 1)")
    if not _is_real(value) or not 0 < float(value) < 1:
        raise InputError("bad centre fraction", field=field, expected="a number in (0, 1)", got=repr(value))
    return float(value)


def check_int(value: Any, field: str, *, low: int, high: int | None = None) -> int:
    """An int in ``[low, high]``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise InputError("bad integer parameter", field=field, expected=f"an int {rng}", got=repr(value))
    return int(value)


def check_budget(center: int, total: int, acceleration: float, *, field: str, what: str) -> None:
    """The fully sampled centre must stay below the sample budget ``total / acceleration``."""
    budget = total / acceleration
    if budget < 1:
        raise InputError(
            f"acceleration {acceleration:g} leaves less than one sample of {total}",
            field="acceleration",
            expected=f"at most {total}",
        )
    if center >= budget:
        raise InputError(
            f"the fully sampled centre ({center} {what}) uses up the whole budget of "
            f"{budget:g} {what} for acceleration {acceleration:g}",
            field=field,
            expected=f"fewer than {budget:g} centre {what}",
        )


def center_start(n: int, k: int) -> int:
    """First index of a block of ``k`` centre samples along an axis of ``n`` (fastMRI's placement)."""
    return (n - k + 1) // 2


def lines_mask(lines: np.ndarray, height: int, num_low_frequencies: int | None, name: str) -> Mask:
    """A column mask of ``height`` rows from a bool vector of sampled columns."""
    vec = torch.from_numpy(np.ascontiguousarray(lines, dtype=bool))
    count = int(vec.sum())
    width = vec.numel()
    full = vec.unsqueeze(0).expand(height, width).contiguous()
    accel = width / count if count else math.inf
    return Mask(mask=full, acceleration=accel, num_low_frequencies=num_low_frequencies, name=name, lines=vec)


def points_mask(points: np.ndarray, name: str) -> Mask:
    """A 2D mask from a bool ``(H, W)`` array."""
    m = torch.from_numpy(np.ascontiguousarray(points, dtype=bool))
    count = int(m.sum())
    accel = m.numel() / count if count else math.inf
    return Mask(mask=m, acceleration=accel, num_low_frequencies=None, name=name, lines=None)


def transpose_mask(mask: Mask, name: str) -> Mask:
    """The same sampling with rows and columns swapped."""
    return Mask(
        mask=mask.mask.t().contiguous(),
        acceleration=mask.acceleration,
        num_low_frequencies=mask.num_low_frequencies,
        name=name,
        lines=mask.lines,
    )


def horizontal(fn: Callable[..., Mask]) -> Callable[..., Mask]:
    """Row-selecting variant of a column mask function: built on the transposed shape, transposed back.

    The wrapper keeps ``fn``'s signature so the registry checks the same parameter names.
    """

    @functools.wraps(fn)
    def wrapper(shape: tuple[int, int], seed: SeedLike = None, **params: Any) -> Mask:
        height, width = shape
        vertical = fn((width, height), seed, **params)
        return transpose_mask(vertical, vertical.name + "_horizontal")

    return wrapper


def as_sequence(value: Any, field: str) -> list[Any]:
    """A non-empty list from a sequence parameter."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) == 0:
        raise InputError("expected a non-empty sequence", field=field, got=repr(value))
    return list(value)
