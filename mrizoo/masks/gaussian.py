"""Variable-density masks drawn from a Gaussian around the k-space centre, with an exact sample count.

Samples outside the fully sampled centre are drawn without replacement with probability
proportional to a Gaussian of standard deviation ``std`` (a fraction of the axis length) centred on
the DC sample (index ``n // 2``), using the Gumbel-top-k trick so the count is exact.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from mrizoo.errors import InputError
from mrizoo.masks._common import (
    center_start,
    check_acceleration,
    check_budget,
    check_center_fraction,
    check_int,
    horizontal,
    lines_mask,
    points_mask,
)
from mrizoo.masks._registry import Mask, SeedLike, register_mask

__all__ = ["gaussian1d_mask", "gaussian2d_mask", "DEFAULT_STD"]

DEFAULT_STD = 0.15  # Gaussian standard deviation as a fraction of the axis length


def _check_std(value: Any) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise InputError(
            "bad Gaussian width",
            field="std",
            expected="a finite number > 0 (a fraction of the axis length)",
            got=repr(value),
        )
    return float(value)


def _top_k(log_weight: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` draws without replacement with probabilities proportional to ``exp(log_weight)``."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    keys = log_weight + rng.gumbel(size=log_weight.shape)
    return np.argpartition(-keys, k - 1)[:k]


def _log_gaussian(n: int, std: float) -> np.ndarray:
    return -0.5 * ((np.arange(n) - n // 2) / (std * n)) ** 2


@register_mask(
    "gaussian1d",
    description="centre block plus columns drawn without replacement from a Gaussian around the "
    "centre; exactly round(W/acceleration) columns",
)
def gaussian1d_mask(
    shape: tuple[int, int],
    seed: SeedLike = None,
    *,
    acceleration: float | None = None,
    center_fraction: float | None = None,
    std: float = DEFAULT_STD,
) -> Mask:
    """Exactly ``round(W / R)`` columns: ``round(W * center_fraction)`` centre ones, the rest Gaussian."""
    height, width = shape
    acc = check_acceleration(acceleration)
    cf = check_center_fraction(center_fraction)
    std = _check_std(std)
    num_low = round(width * cf)
    check_budget(num_low, width, acc, field="center_fraction", what="lines")
    total = round(width / acc)
    rng = np.random.default_rng(seed)
    lines = np.zeros(width, dtype=bool)
    start = center_start(width, num_low)
    lines[start : start + num_low] = True
    free = np.flatnonzero(~lines)
    lines[free[_top_k(_log_gaussian(width, std)[free], total - num_low, rng)]] = True
    return lines_mask(lines, height, num_low, "gaussian1d")


@register_mask(
    "gaussian2d",
    description="fully sampled centre square plus points drawn without replacement from a 2D "
    "Gaussian around the centre; exactly round(H*W/acceleration) points",
)
def gaussian2d_mask(
    shape: tuple[int, int],
    seed: SeedLike = None,
    *,
    acceleration: float | None = None,
    calib: int = 0,
    std: float = DEFAULT_STD,
) -> Mask:
    """Exactly ``round(H W / R)`` points: a ``calib x calib`` centre square, the rest Gaussian."""
    height, width = shape
    acc = check_acceleration(acceleration)
    calib = check_int(calib, "calib", low=0, high=min(height, width))
    std = _check_std(std)
    check_budget(calib * calib, height * width, acc, field="calib", what="points")
    total = round(height * width / acc)
    rng = np.random.default_rng(seed)
    points = np.zeros((height, width), dtype=bool)
    r0, c0 = center_start(height, calib), center_start(width, calib)
    points[r0 : r0 + calib, c0 : c0 + calib] = True
    log_w = _log_gaussian(height, std)[:, None] + _log_gaussian(width, std)[None, :]
    free = np.flatnonzero(~points.ravel())
    points.ravel()[free[_top_k(log_w.ravel()[free], total - calib * calib, rng)]] = True
    return points_mask(points, "gaussian2d")


register_mask(
    "gaussian1d_horizontal", description="the 'gaussian1d' mask selecting rows instead of columns"
)(horizontal(gaussian1d_mask))
