"""The posterior-calibration section of a model card, from evaluation results.

``mrizoo evaluate`` stores, per test set, the calibration of a posterior model's ``P``-sample
mean (:mod:`mrizoo.metrics.calibration`). The card shows them in one table for every test set
that has them, in distribution first, with a plain verdict: calibrated when the variance/error
ratio lies in ``[0.8, 1.25]`` and at least 85% of pixels lie within 2 sigma; a ratio in the band
with fewer is a spread of the right size in the wrong places; otherwise over- or underconfident by
the factor its standard deviation is off (``sqrt`` of the ratio).
"""

from __future__ import annotations

import math

from mrizoo.results import DatasetResult, EvaluationResults

__all__ = ["CALIBRATION_KEYS", "CALIBRATED_BAND", "MIN_COVERAGE_2SD", "calibration_verdict", "section_calibration"]

#: Metric names the calibration section shows (the main evaluation table leaves them out).
CALIBRATION_KEYS = ("calib_samples", "var_error_ratio", "coverage_1sd", "coverage_2sd", "prop33_ratio",
                    "prop33_target", "calib_rms_std", "calib_rmse")

#: Variance/error ratios called calibrated.
CALIBRATED_BAND = (0.8, 1.25)

#: Least share of pixels within 2 sigma (95.4% when calibrated) for a ratio in the band to be called
#: calibrated: a pooled ratio can be right while the spread sits where the error is not.
MIN_COVERAGE_2SD = 0.85


def calibration_verdict(ratio: float, coverage_2sd: float | None = None) -> str:
    """``calibrated`` inside :data:`CALIBRATED_BAND` with enough 2-sigma coverage (when known), else
    how the spread is off: misplaced, or too small or large by a factor."""
    lo, hi = CALIBRATED_BAND
    if not math.isfinite(ratio) or ratio <= 0:
        return "no spread" if ratio == 0 else "undefined"
    if lo <= ratio <= hi:
        if coverage_2sd is not None and coverage_2sd < MIN_COVERAGE_2SD:
            return f"right size on average, misplaced: {coverage_2sd:.0%} within 2σ"
        return "calibrated"
    factor = math.sqrt(ratio)
    if ratio < lo:
        return f"overconfident: std {1 / factor:.3g}x too small"
    return f"underconfident: std {factor:.3g}x too large"


def _row(d: DatasetResult) -> list[str]:
    m = d.metrics
    p = int(m["calib_samples"]) if "calib_samples" in m else d.samples
    target = m.get("prop33_target", 2 * p / (p + 1) if p else math.nan)
    cells = [d.dataset, d.distribution, f"{d.acceleration:g}x", str(p) if p else "-",
             f"{m['var_error_ratio']:.3g}",
             f"{m['coverage_1sd']:.1%}" if "coverage_1sd" in m else "-",
             f"{m['coverage_2sd']:.1%}" if "coverage_2sd" in m else "-",
             f"{m['prop33_ratio']:.3f} / {target:.3f}" if "prop33_ratio" in m else "-",
             f"{m['calib_rms_std']:.3g} / {m['calib_rmse']:.3g}" if {"calib_rms_std", "calib_rmse"} <= set(m) else "-",
             calibration_verdict(m["var_error_ratio"], m.get("coverage_2sd"))]
    return cells


def section_calibration(results: EvaluationResults | None) -> str | None:
    """The ``## Posterior calibration`` section, or None when no test set carries calibration."""
    if results is None:
        return None
    rows = [d for d in (*results.in_distribution(), *results.out_of_distribution())
            if "var_error_ratio" in d.metrics]
    if not rows:
        return None
    header = ["Dataset", "Distribution", "R", "P", "Variance / error", "Within 1σ", "Within 2σ",
              "E1/EP (calibrated)", "RMS std / RMSE", "Verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_row(d)) + " |" for d in rows]
    lo, hi = CALIBRATED_BAND
    return "\n".join([
        "## Posterior calibration",
        "",
        "Does the spread of the samples match the error of their mean? Per test set, pooled over every "
        "pixel of fastMRI's region (`mrizoo.metrics.calibration`): *variance / error* is "
        "(1 + 1/P) x the mean unbiased pixel variance of the P samples over the mean squared error of "
        "their mean (1.0 for a calibrated sampler; below 1 the model is overconfident); *within 1σ / 2σ* "
        "is the share of pixels whose error lies inside the 1- and 2-sigma prediction interval of the "
        "samples (68.3% / 95.4% when calibrated); *E1/EP* is the squared error of one sample over that of "
        f"the P-sample mean, 2P/(P+1) when calibrated (Bendel et al. 2023, Prop. 3.3). Called calibrated "
        f"when variance / error lies in [{lo:g}, {hi:g}] and at least {MIN_COVERAGE_2SD:.0%} of pixels lie within "
        "2σ (a ratio in that band with fewer: a spread of the right size in the wrong places). RMS std and "
        "RMSE are fractions of the data range.",
        "",
        *lines,
    ])
