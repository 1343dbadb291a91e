"""Calibration of a posterior sampler: is its spread the size of its error?

Given ``P`` posterior samples ``x_1..x_P`` of an image and the reference ``x`` (both magnitude;
centre-cropped to the reference's size as :func:`mrizoo.metrics.score` does), per pixel:

- ``xbar = mean_i x_i``, the P-sample mean; ``e = xbar - x``, its error;
- ``s^2 = sum_i (x_i - xbar)^2 / (P - 1)``, the unbiased sample variance (``E[s^2] = tau^2``
  for a sampler whose samples have variance ``tau^2``).

If the reference is a draw from the true posterior ``N(mu, sigma^2)`` and the sampler draws
``N(mu, tau^2)`` independently of it, ``E[e^2] = Var(xbar) + Var(x) = tau^2 / P + sigma^2``.
A calibrated sampler (``tau = sigma``) thus has ``E[e^2] = sigma^2 (1 + 1/P)``: the error of the
mean exceeds the posterior variance by the finite-``P`` term. The metrics below are defined so
that a calibrated sampler scores its target at every ``P``:

- ``var_error_ratio = (1 + 1/P) mean(s^2) / mean(e^2)``, pooled over pixels: 1.0 when calibrated;
  ``< 1`` a spread too small for the error (overconfident, collapsed), ``> 1`` too large. For an
  unbiased sampler with ``tau = k sigma`` its expectation is ``k^2 (1 + 1/P) / (1 + k^2 / P)``
  (0.273 for ``k = 1/2``, ``P = 8``); a biased mean lowers it further.
- ``coverage_1sd`` / ``coverage_2sd``: the share of pixels whose error lies within the 1- and
  2-sigma prediction interval that the samples give, ``|e| <= q_k s sqrt(1 + 1/P)`` with ``q_k`` the
  Student-t quantile (``P - 1`` degrees of freedom) of the normal's central mass within ``k``
  sigma. ``(x - xbar) / (s sqrt(1 + 1/P))`` is t-distributed for a calibrated Gaussian sampler,
  so it scores 0.6827 and 0.9545 at any ``P`` (``q_1 = 1.077``, ``q_2 = 2.429`` at ``P = 8``).
- ``prop33_ratio = E1 / EP``: the squared error of one sample over that of the P-sample mean
  (Bendel et al. 2023, Prop. 3.3: ``2P / (P + 1)`` when calibrated, reported as
  ``prop33_target``). ``E1`` averages all ``P`` single samples; since
  ``mean_i (x_i - x)^2 = e^2 + (P - 1) s^2 / P`` exactly, ``prop33_ratio = 1 + (P - 1) /
  (P + 1) * var_error_ratio``: the two say the same thing on different scales.
- a binned calibration curve: pixels grouped by their predicted error std ``s sqrt(1 + 1/P)``
  (fixed log-spaced bins in units of the data range), the RMS predicted std against the RMS
  observed error per bin; a calibrated sampler lies on the identity line (up to the regression
  to the mean that binning by a noisy estimate brings at small ``P``).

Errors and spreads are in units of the data range (the reference maximum over the volume, as
for PSNR), so statistics of several volumes pool (:meth:`CalibrationStats.merge`) with every
pixel weighted alike.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from mrizoo.errors import InputError
from mrizoo.metrics._inputs import ArrayLike, to_tensor
from mrizoo.metrics.region import center_crop, metric_region

__all__ = ["BIN_EDGES", "CalibrationStats", "Calibration", "calibration_stats", "calibration",
           "interval_quantile", "expected_ratio"]

#: Edges of the calibration-curve bins of predicted std, in units of the data range: 4 per
#: decade from 1e-4 to 1, with an underflow bin from 0 and an overflow bin to infinity.
BIN_EDGES: tuple[float, ...] = (0.0, *(10.0 ** (e / 4) for e in range(-16, 1)), math.inf)


def _t_central_mass(x: float, dof: int) -> float:
    """``P(|T| <= x)`` for Student's t with ``dof`` degrees of freedom (Simpson's rule on the pdf)."""
    if x <= 0:
        return 0.0
    n = 4000  # even; the pdf is smooth, so this is accurate to ~1e-12
    t = np.linspace(0.0, x, n + 1)
    log_c = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    pdf = np.exp(log_c - (dof + 1) / 2 * np.log1p(t * t / dof))
    simpson = (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum()) * (x / n) / 3
    return float(2 * simpson)


@functools.lru_cache(maxsize=64)
def interval_quantile(k: float, samples: int) -> float:
    """Half-width, in predictive stds, of the ``k``-sigma prediction interval from ``samples`` draws.

    The Student-t (``samples - 1`` degrees of freedom) quantile whose central mass is the
    normal's within ``k`` sigma, ``erf(k / sqrt 2)``.
    """
    if samples < 2:
        raise InputError("a prediction interval needs at least 2 samples", field="samples",
                         expected=">= 2", got=samples)
    level = math.erf(k / math.sqrt(2))
    lo, hi = 0.0, max(4 * k, 1.0)
    while _t_central_mass(hi, samples - 1) < level:
        hi *= 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _t_central_mass(mid, samples - 1) < level else (lo, mid)
    return 0.5 * (lo + hi)


def expected_ratio(spread: float, samples: int) -> float:
    """Expected ``var_error_ratio`` of an unbiased sampler whose std is ``spread`` times the true one."""
    return spread**2 * (1 + 1 / samples) / (1 + spread**2 / samples)


@dataclass(frozen=True)
class Calibration:
    """Calibration summary of ``samples`` posterior samples over ``pixels`` pixels (module docstring)."""

    samples: int
    pixels: int
    var_error_ratio: float
    coverage_1sd: float
    coverage_2sd: float
    prop33_ratio: float
    prop33_target: float
    rms_std: float
    """Root of the mean unbiased posterior variance, in units of the data range."""
    rmse: float
    """RMS error of the P-sample mean, in units of the data range."""
    curve_std: tuple[float, ...] = ()
    """Per non-empty bin: RMS predicted error std ``s sqrt(1 + 1/P)`` (units of the data range)."""
    curve_error: tuple[float, ...] = ()
    """Per non-empty bin: RMS observed error of the P-sample mean."""
    curve_count: tuple[int, ...] = ()

    def metrics(self) -> dict[str, float]:
        """The scalar results, under the metric names of evaluation results files."""
        return {"calib_samples": float(self.samples), "var_error_ratio": self.var_error_ratio, "coverage_1sd": self.coverage_1sd,
                "coverage_2sd": self.coverage_2sd, "prop33_ratio": self.prop33_ratio,
                "prop33_target": self.prop33_target, "calib_rms_std": self.rms_std,
                "calib_rmse": self.rmse}


def _zeros() -> list[float]:
    return [0.0] * (len(BIN_EDGES) - 1)


@dataclass
class CalibrationStats:
    """Pixel sums behind :class:`Calibration`; stats of several volumes add up exactly."""

    samples: int
    pixels: int = 0
    sum_var: float = 0.0
    sum_err2: float = 0.0
    sum_single_err2: float = 0.0
    within_1: int = 0
    within_2: int = 0
    bin_count: list[float] = field(default_factory=_zeros)
    bin_pred_var: list[float] = field(default_factory=_zeros)
    bin_err2: list[float] = field(default_factory=_zeros)

    def merge(self, other: "CalibrationStats") -> "CalibrationStats":
        """The stats of both pixel sets together (same number of samples)."""
        if other.samples != self.samples:
            raise InputError("calibration stats of different sample counts do not pool", field="samples",
                             expected=self.samples, got=other.samples)
        add = lambda a, b: [x + y for x, y in zip(a, b)]  # noqa: E731
        return CalibrationStats(
            self.samples, self.pixels + other.pixels, self.sum_var + other.sum_var,
            self.sum_err2 + other.sum_err2, self.sum_single_err2 + other.sum_single_err2,
            self.within_1 + other.within_1, self.within_2 + other.within_2,
            add(self.bin_count, other.bin_count), add(self.bin_pred_var, other.bin_pred_var),
            add(self.bin_err2, other.bin_err2))

    def summary(self) -> Calibration:
        """The calibration metrics of all pixels pooled."""
        if self.pixels == 0:
            raise InputError("no pixels to summarise", field="pixels", expected=">= 1")
        p = self.samples
        err2 = self.sum_err2 / self.pixels
        var = self.sum_var / self.pixels
        ratio = (1 + 1 / p) * var / err2 if err2 > 0 else math.inf
        prop33 = self.sum_single_err2 / self.sum_err2 if self.sum_err2 > 0 else math.inf
        keep = [i for i, n in enumerate(self.bin_count) if n > 0]
        return Calibration(
            samples=p, pixels=self.pixels, var_error_ratio=ratio,
            coverage_1sd=self.within_1 / self.pixels, coverage_2sd=self.within_2 / self.pixels,
            prop33_ratio=prop33, prop33_target=2 * p / (p + 1), rms_std=math.sqrt(var), rmse=math.sqrt(err2),
            curve_std=tuple(math.sqrt(self.bin_pred_var[i] / self.bin_count[i]) for i in keep),
            curve_error=tuple(math.sqrt(self.bin_err2[i] / self.bin_count[i]) for i in keep),
            curve_count=tuple(int(self.bin_count[i]) for i in keep),
        )


def calibration_stats(samples: ArrayLike, reference: ArrayLike, *, maxval: float | None = None,
                      region: tuple[int, int] | None = None) -> CalibrationStats:
    """Pixel sums of ``samples [P, H, W]`` or ``[P, S, H, W]`` against ``reference [H, W]`` /
    ``[S, H, W]`` (real magnitude images).

    Both are centre-cropped to ``region`` (default: the reference's size, capped by the samples'
    size), as :func:`mrizoo.metrics.score` crops; ``maxval`` (default: the cropped reference's
    maximum) is the data range that errors and spreads are divided by.
    """
    s = to_tensor(samples, "samples")
    ref = to_tensor(reference, "reference")
    ref = ref.to(s.device)
    if ref.ndim not in (2, 3) or s.ndim != ref.ndim + 1 or (ref.ndim == 3 and s.shape[1] != ref.shape[0]):
        raise InputError("samples do not fit the reference", field="samples",
                         expected="samples [P, H, W] for a reference [H, W], or [P, S, H, W] for [S, H, W]",
                         got=f"samples {tuple(s.shape)}, reference {tuple(ref.shape)}")
    p = s.shape[0]
    if p < 2:
        raise InputError("calibration needs at least 2 samples", field="samples",
                         expected="P >= 2 along axis 0", got=f"P = {p}")
    want = tuple(ref.shape[-2:]) if region is None else (int(region[0]), int(region[1]))
    hw = metric_region(metric_region(want, tuple(ref.shape[-2:])), tuple(s.shape[-2:]))
    s, ref = center_crop(s, hw), center_crop(ref, hw)
    scale = float(ref.max()) if maxval is None else float(maxval)
    if not scale > 0 or not math.isfinite(scale):
        raise InputError("the data range must be a positive number", field="maxval",
                         expected="> 0 (a reference that is not all zero)", got=scale)
    s, ref = s / scale, ref / scale
    mean = s.mean(0)
    var = s.var(0, correction=1)
    err2 = (mean - ref) ** 2
    single = ((s - ref) ** 2).mean(0)
    pred = (var * (1 + 1 / p)).sqrt()
    err = err2.sqrt()
    stats = CalibrationStats(
        samples=p, pixels=int(ref.numel()), sum_var=float(var.sum()), sum_err2=float(err2.sum()),
        sum_single_err2=float(single.sum()),
        within_1=int((err <= interval_quantile(1.0, p) * pred).sum()),
        within_2=int((err <= interval_quantile(2.0, p) * pred).sum()),
    )
    edges = torch.tensor(BIN_EDGES[1:-1], dtype=torch.float64, device=pred.device)
    idx = torch.bucketize(pred.flatten(), edges, right=True)
    nb = len(BIN_EDGES) - 1
    stats.bin_count = torch.bincount(idx, minlength=nb).double().tolist()
    stats.bin_pred_var = torch.bincount(idx, weights=(pred**2).flatten(), minlength=nb).tolist()
    stats.bin_err2 = torch.bincount(idx, weights=err2.flatten(), minlength=nb).tolist()
    return stats


def calibration(samples: ArrayLike, reference: ArrayLike, *, maxval: float | None = None,
                region: tuple[int, int] | None = None) -> Calibration:
    """:class:`Calibration` of ``samples`` against ``reference`` (see :func:`calibration_stats`)."""
    return calibration_stats(samples, reference, maxval=maxval, region=region).summary()
