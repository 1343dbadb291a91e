"""Variable-density Poisson-disc 2D masks (for two phase-encode axes, e.g. 3D scans).

Points are placed by random sequential addition on the k-space grid: pixels are visited in a random
order (from the seed) and kept unless they fall inside the exclusion ellipse of a point kept before
(the calib square's pixels count as kept from the start). The exclusion radius grows away from the
centre as ``scale * (1 + density_slope * rho)``, where ``rho`` is 0 at the edge of the fully sampled
``calib`` square and 1 at the k-space edge, so the density falls roughly as
``1 / (1 + density_slope * rho)**2``. The ellipse is stretched with the matrix so the pattern is
isotropic in normalised k-space, and centred at a random sub-pixel position of its point so the
count changes smoothly with ``scale``. ``scale`` is searched (power-law secant steps safeguarded by
bisection) for a pattern with slightly more points than ``round(H W / acceleration)``; the addition
is then stopped at exactly that count. The visiting order is fixed per seed, so the result is
deterministic.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from mrizoo.errors import InputError
from mrizoo.masks._common import center_start, check_acceleration, check_budget, check_int, points_mask
from mrizoo.masks._registry import Mask, SeedLike, register_mask

__all__ = ["poisson2d_mask"]

_QUANT = 16  # exclusion radii are rounded to 1/16 pixel so stencils can be cached
_SUB = 16  # sub-pixel positions per axis at which an exclusion ellipse can be centred
_RSA_DENSITY = 0.55  # points per squared exclusion radius kept by the saturated addition on the grid
_MAX_STEPS = 16
_SLACK = 0.02  # accept a scale keeping up to 2 % more points than needed before truncating


def _check_real(value: Any, field: str, *, low: float, strict: bool, high: float | None = None) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if strict else value >= low) and (high is None or value < high)
    if not ok:
        bound = f"{'>' if strict else '>='} {low:g}" + ("" if high is None else f" and < {high:g}")
        raise InputError("bad parameter", field=field, expected=f"a finite number {bound}", got=repr(value))
    return float(value)


def _distance_beyond(n: int, calib: int) -> np.ndarray:
    """Per-index distance (pixels) outside the centre block of ``calib`` samples (the DC index if 0)."""
    lo = center_start(n, calib) if calib else n // 2
    hi = lo + calib - 1 if calib else n // 2
    idx = np.arange(n)
    return np.maximum(np.maximum(lo - idx, idx - hi), 0).astype(np.float64)


class _Stencils:
    """Cached exclusion stencils: grid offsets inside ``((dx - jx) / a)^2 + ((dy - jy) / b)^2 < 1``.

    One uint8 array ``[_SUB**2, 2 ry + 1, 2 rx + 1]`` per radius (in 1/_QUANT pixel steps), one
    layer per sub-pixel centre ``(jx, jy)`` on a ``_SUB x _SUB`` grid inside the pixel. A randomly
    placed ellipse covers on average as many grid points as its area, so the number of points kept
    changes smoothly with the scale.
    """

    def __init__(self, unit_x: float, unit_y: float) -> None:
        self.unit_x, self.unit_y = unit_x, unit_y
        self.cache: dict[int, tuple[np.ndarray, int, int]] = {}
        sub = (np.arange(_SUB) + 0.5) / _SUB - 0.5
        self.jy = np.repeat(sub, _SUB)[:, None, None]
        self.jx = np.tile(sub, _SUB)[:, None, None]

    def half_size(self, rkey: int) -> int:
        return math.ceil(rkey / _QUANT * max(self.unit_x, self.unit_y) + 0.5)

    def get(self, rkey: int) -> tuple[np.ndarray, int, int]:
        hit = self.cache.get(rkey)
        if hit is None:
            a, b = rkey / _QUANT * self.unit_x, rkey / _QUANT * self.unit_y
            rx, ry = math.ceil(a + 0.5), math.ceil(b + 0.5)
            dy, dx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
            inside = ((dx - self.jx) / a) ** 2 + ((dy - self.jy) / b) ** 2 < 1
            hit = (inside.astype(np.uint8), ry, rx)
            self.cache[rkey] = hit
        return hit


def _add_points(
    ys: np.ndarray,
    xs: np.ndarray,
    rkeys: np.ndarray,
    jkeys: np.ndarray,
    forced: int,
    shape: tuple[int, int],
    stencils: _Stencils,
) -> list[int]:
    """Random sequential addition in the given order, the first ``forced`` points kept unconditionally.

    Returns the positions (in the given order) of the points kept after the forced ones.
    """
    pad = stencils.half_size(int(rkeys.max())) + 1 if rkeys.size else 1
    height, width = shape
    pw = width + 2 * pad
    blocked = np.zeros((height + 2 * pad, pw), dtype=np.uint8)
    flat = memoryview(blocked.reshape(-1))
    py, px = ys + pad, xs + pad
    kept: list[int] = []
    get = stencils.get
    rows = zip((py * pw + px).tolist(), py.tolist(), px.tolist(), rkeys.tolist(), jkeys.tolist())
    for i, (f, y, x, rk, jk) in enumerate(rows):
        if i >= forced:
            if flat[f]:
                continue
            kept.append(i)
        stencil, ry, rx = get(rk)
        view = blocked[y - ry : y + ry + 1, x - rx : x + rx + 1]
        view |= stencil[jk]
    return kept


@register_mask(
    "poisson2d",
    description="variable-density Poisson-disc 2D mask with a fully sampled calib x calib centre; "
    "the disc scale is searched to reach the acceleration",
)
def poisson2d_mask(
    shape: tuple[int, int],
    seed: SeedLike = None,
    *,
    acceleration: float | None = None,
    calib: int = 0,
    density_slope: float = 3.0,
    crop_corners: bool = True,
) -> Mask:
    """Exactly ``round(H W / acceleration)`` Poisson-disc points, including the ``calib`` square.

    ``crop_corners`` keeps samples inside the ellipse inscribed in k-space (``rho <= 1``);
    ``density_slope = 0`` gives a uniform Poisson-disc pattern.
    """
    height, width = shape
    acc = check_acceleration(acceleration)
    calib = check_int(calib, "calib", low=0, high=min(height, width))
    slope = _check_real(density_slope, "density_slope", low=0, strict=False)
    if not isinstance(crop_corners, bool):
        raise InputError("bad flag", field="crop_corners", expected="True or False", got=repr(crop_corners))
    check_budget(calib * calib, height * width, acc, field="calib", what="points")

    dy, dx = _distance_beyond(height, calib), _distance_beyond(width, calib)
    rho = np.hypot((dy / max(dy.max(), 1.0))[:, None], (dx / max(dx.max(), 1.0))[None, :])
    sampled = np.zeros((height, width), dtype=bool)
    r0, c0 = center_start(height, calib), center_start(width, calib)
    sampled[r0 : r0 + calib, c0 : c0 + calib] = True
    candidate = ~sampled
    if crop_corners:
        candidate &= rho <= 1
    unit = max(height, width)
    unit_x, unit_y = width / unit, height / unit

    target = round(height * width / acc) - calib * calib  # points to add outside the calib square
    available = int(candidate.sum())
    if target > available:
        raise InputError(
            f"acceleration {acc:g} needs more points than the {available + calib * calib} allowed"
            + (" inside the ellipse inscribed in k-space (crop_corners=True)" if crop_corners else ""),
            field="acceleration",
            expected=f"at least {height * width / (available + calib * calib):.3g}",
        )

    if target <= 0:
        return points_mask(sampled, "poisson2d")
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.flatnonzero(candidate.ravel()))
    jitter = rng.integers(0, _SUB**2, size=(height, width))  # sub-pixel centre of each exclusion ellipse
    dither = rng.random((height, width))  # stochastic rounding of each radius to the 1/_QUANT grid
    oy, ox = np.divmod(order, width)
    growth = 1 + slope * rho[oy, ox]
    cy, cx = np.nonzero(sampled)
    depth = np.minimum(np.minimum(cy - r0, r0 + calib - 1 - cy), np.minimum(cx - c0, c0 + calib - 1 - cx))
    stencils = _Stencils(unit_x, unit_y)

    def run(scale: float) -> np.ndarray:
        near = depth <= scale + 1  # calib pixels whose ellipse (rho = 0) can reach outside the square
        forced = int(near.sum())
        ys, xs = np.concatenate([cy[near], oy]), np.concatenate([cx[near], ox])
        radii = scale * np.concatenate([np.ones(forced), growth])
        rkeys = np.maximum(np.floor(radii * _QUANT + dither[ys, xs]), 1).astype(np.int64)
        kept = _add_points(ys, xs, rkeys, jitter[ys, xs], forced, (height, width), stencils)
        return np.asarray(kept, dtype=np.int64) - forced

    # Search for a scale that keeps slightly more points than needed, then stop the sequential
    # addition at the exact count (dropping the last-visited points keeps the minimum distances).
    scale = math.sqrt(_RSA_DENSITY * float(np.sum(1.0 / (growth**2 * unit_x * unit_y))) / target)
    aim = target * (1 + _SLACK / 2)
    lo, hi = 0.0, math.inf  # scales known to keep enough / too few points
    best: np.ndarray | None = None
    previous: tuple[float, int] | None = None
    for _ in range(_MAX_STEPS):
        kept = run(scale)
        if kept.size >= target:
            lo = scale
            if best is None or kept.size < best.size:
                best = kept
            if kept.size <= target * (1 + _SLACK):
                break
        else:
            hi = scale
        power = 2.0  # local exponent of count ~ scale**-power, from the last two runs when possible
        if previous is not None and kept.size and previous[1] and previous[1] != kept.size:
            power = min(max(math.log(previous[1] / kept.size) / math.log(scale / previous[0]), 0.5), 4.0)
        previous = (scale, kept.size)
        guess = scale * (kept.size / aim) ** (1 / power) if kept.size else scale / 2
        scale = guess if lo < guess < hi else (lo + hi) / 2 if math.isfinite(hi) else 2 * scale
        if math.isfinite(hi) and hi - lo <= 1e-3 * hi:
            break
    if best is None:  # fallback: radii below a pixel keep every candidate
        best = run(1.0 / _QUANT)
    sampled.reshape(-1)[order[best[:target]]] = True
    return points_mask(sampled, "poisson2d")
