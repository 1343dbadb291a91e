"""Reporting an evaluation: the Markdown table of mean scores and the effective-robustness plot."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mrizoo.evaluate_records import Evaluation

__all__ = ["markdown_table", "robustness_plot"]

_TABLE_METRICS = ("ssim", "psnr", "nmse", "ssim_masked", "psnr_masked", "ssim_matched", "psnr_matched",
                  "artifact", "apsd", "cfid", "var_error_ratio", "coverage_1sd", "coverage_2sd", "prop33_ratio",
                  "seconds_per_slice")


def markdown_table(evaluation: Evaluation, metrics: Sequence[str] | None = None) -> str:
    """One row per (model, test set): the mean of each metric over volumes (``±`` std)."""
    present = {k for sc in evaluation.models.values() for v in sc.volumes for k in v.metrics}
    present |= {k for sc in evaluation.models.values() for d in sc.set_metrics.values() for k in d}
    cols = [m for m in (metrics or _TABLE_METRICS) if m in present]
    p_cols = sorted((k for k in present if re.fullmatch(r"(ssim|psnr)_p\d+", k)),
                    key=lambda k: (k.split("_")[0], int(k.split("_p")[1])))
    cols += [c for c in p_cols if c not in cols] if metrics is None else []
    lines = ["| model | dataset | dist | vols | " + " | ".join(cols) + " |",
             "|" + "---|" * (4 + len(cols))]
    for label, sc in evaluation.models.items():
        for s in evaluation.sets:
            means, stds, nvol, _ = sc.summary(s.name)
            if not nvol:
                continue
            cells = []
            for c in cols:
                if c not in means:
                    cells.append("")
                    continue
                fmt = ".2f" if c.startswith("psnr") else ".4g" if c in (
                    "nmse", "artifact", "cfid", "apsd", "seconds_per_slice") else ".4f"
                cell = format(means[c], fmt)
                if c in stds and nvol > 1:
                    cell += " ± " + format(stds[c], fmt)
                cells.append(cell)
            lines.append(f"| {label} | {s.name} | {s.distribution} | {nvol} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def robustness_plot(evaluation: Evaluation, path: str | os.PathLike[str], metric: str = "ssim") -> Path | None:
    """Effective-robustness scatter (Lin & Heckel 2024, Fig. 4): mean OOD ``metric`` against mean
    in-distribution ``metric``, one point per model, with ``y = x`` and a least-squares line.

    Returns ``None`` (and writes nothing) when the evaluation lacks ID or OOD sets."""
    ids = [s.name for s in evaluation.sets if s.distribution == "in"]
    oods = [s.name for s in evaluation.sets if s.distribution == "out"]
    if not ids or not oods:
        return None
    import matplotlib  # pyplot takes ~4 s to import: only when a plot is drawn

    matplotlib.use("Agg", force=False)  # before pyplot: no display needed
    import matplotlib.pyplot as plt  # after choosing the backend

    pts: list[tuple[str, float, float]] = []
    for label, sc in evaluation.models.items():
        xs = [sc.summary(n)[0].get(metric, math.nan) for n in ids]
        ys = [sc.summary(n)[0].get(metric, math.nan) for n in oods]
        pts.append((label, float(np.nanmean(xs)), float(np.nanmean(ys))))
    fig, ax = plt.subplots(figsize=(5, 4.5))
    x = np.array([p[1] for p in pts])
    y = np.array([p[2] for p in pts])
    ax.scatter(x, y, zorder=3)
    for label, xi, yi in pts:
        ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    lo, hi = float(np.nanmin(np.r_[x, y])), float(np.nanmax(np.r_[x, y]))
    pad = 0.05 * (hi - lo or 1.0)
    grid = np.array([lo - pad, hi + pad])
    ax.plot(grid, grid, "k--", lw=0.8, label="y = x")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
        slope, icpt = np.polyfit(x[ok], y[ok], 1)
        ax.plot(grid, slope * grid + icpt, "C1-", lw=1, label="linear fit")
    ax.set_xlabel(f"in-distribution {metric.upper()} ({', '.join(ids)})")
    ax.set_ylabel(f"out-of-distribution {metric.upper()} ({', '.join(oods)})")
    ax.set_title(f"R = {evaluation.acceleration:g}, {evaluation.mask}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
