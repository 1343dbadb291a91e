"""Comparison figures: one row of magnitude panels (and error maps) written as PNG."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mrizoo._atomic import atomic_file

__all__ = ["save_panels", "save_figure", "calibration_plot"]


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.abs() if x.is_complex() else x
        return x.numpy()
    return np.abs(x) if np.iscomplexobj(x) else np.asarray(x)


def save_panels(
    path: str | os.PathLike[str],
    panels: Mapping[str, torch.Tensor | np.ndarray],
    *,
    reference: str | None = None,
    errors: bool = True,
    suptitle: str | None = None,
    captions: Mapping[str, str] | None = None,
    error_gain: float = 5.0,
    heatmaps: Mapping[str, torch.Tensor | np.ndarray] | None = None,
    heatmap_scale: Literal["error", "auto"] = "error",
) -> Path:
    """Write a PNG with one magnitude panel per entry (title = key).

    When ``reference`` names one of the panels and ``errors`` is set, a second row shows
    ``|panel - reference|`` (scaled by ``error_gain`` for visibility) for every other panel.
    ``captions`` adds a second title line under a panel (e.g. its metrics). Images share the
    grey scale of the reference (or of the first panel). ``heatmaps`` (e.g. posterior standard
    deviations) are appended to the first row with a labelled colour bar: with
    ``heatmap_scale="error"`` (default) on the fixed scale of the error panels, ``0 .. vmax /
    error_gain`` in image units (``vmax``: the grey scale's top), so a posterior std and an
    error of the same size look the same and a collapsed sampler shows as a dark panel;
    ``"auto"`` gives each its own scale (its 99.5th percentile).
    The file is written to a temporary name and renamed, so a failed write leaves nothing behind.
    """
    # imported on use: a heavy package that most calls of this module do not need
    import matplotlib

    matplotlib.use("Agg", force=False)
    # imported on use: a heavy package that most calls of this module do not need
    import matplotlib.pyplot as plt

    images = {k: _np(v) for k, v in panels.items()}
    if not images:
        raise ValueError("save_panels needs at least one panel")
    if heatmap_scale not in ("error", "auto"):
        raise ValueError(f"heatmap_scale must be 'error' or 'auto'; got {heatmap_scale!r}")
    scale_key = reference if reference in images else next(iter(images))
    vmax = float(np.percentile(images[scale_key], 99.5)) or 1.0
    emax = vmax / error_gain  # top of the error (and std) colour scale, in image units
    others = [k for k in images if k != reference] if reference in images and errors else []
    heat = {k: _np(v) for k, v in (heatmaps or {}).items()}
    rows = 2 if others else 1
    cols = len(images) + len(heat)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows), squeeze=False, layout="constrained")
    for ax, (title, img) in zip(axes[0], images.items()):
        ax.imshow(img, cmap="gray", vmin=0, vmax=vmax)
        caption = (captions or {}).get(title)
        ax.set_title(f"{title}\n{caption}" if caption else title, fontsize=9)
    if others:
        ref = images[reference]
        axes[1][0].axis("off")
        axes[1][0].text(0.5, 0.5, f"|error|, scale 0 .. {emax:.3g}\n(grey max / {error_gain:g})", ha="center",
                        va="center", fontsize=10)
        shown = None
        for ax, key in zip(axes[1][1:], others):
            shown = ax.imshow(np.abs(images[key] - ref), cmap="inferno", vmin=0, vmax=emax)
            ax.set_title(f"|{key} - {reference}|", fontsize=8)
        if shown is not None:
            bar = fig.colorbar(shown, ax=axes[1][len(others)], fraction=0.046, pad=0.02)
            bar.set_label("|error| (image units)", fontsize=7)
        for ax in axes[1][len(images):]:
            ax.axis("off")
    for ax, (title, img) in zip(axes[0][len(images):], heat.items()):
        if heatmap_scale == "error":
            shown = ax.imshow(img, cmap="inferno", vmin=0, vmax=emax)
            label = "std, image units (scale of the errors)"
        else:
            shown = ax.imshow(img, cmap="magma", vmin=0, vmax=float(np.percentile(img, 99.5)) or 1.0)
            label = "own scale"
        bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
        bar.set_label(label, fontsize=7)
        caption = (captions or {}).get(title)
        ax.set_title(f"{title}\n{caption}" if caption else title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return save_figure(fig, path, dpi=100)


def save_figure(fig, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write a matplotlib figure as PNG atomically (nothing is left behind on failure), then close it."""
    # imported on use: a heavy package that most calls of this module do not need
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def calibration_plot(
    curves: Mapping[str, object], path: str | os.PathLike[str], *, title: str | None = None,
) -> Path:
    """Binned calibration curves: predicted error std against observed RMS error, log-log.

    ``curves``: label -> :class:`~mrizoo.metrics.calibration.Calibration` (e.g. one per model and
    test set). Both axes are in units of the data range; a calibrated sampler lies on the dashed
    identity line, a collapsed one far above it (errors much larger than its spread). The
    legend gives each curve's variance/error ratio and 2-sigma coverage.
    """
    # imported on use: a heavy package that most calls of this module do not need
    import matplotlib

    matplotlib.use("Agg", force=False)
    # imported on use: a heavy package that most calls of this module do not need
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("calibration_plot needs at least one curve")
    fig, ax = plt.subplots(figsize=(5.2, 4.6), layout="constrained")
    lo, hi = np.inf, 0.0
    for i, (label, cal) in enumerate(curves.items()):
        x = np.asarray(getattr(cal, "curve_std"), dtype=float)
        y = np.asarray(getattr(cal, "curve_error"), dtype=float)
        ok = (x > 0) & (y > 0)
        if not ok.any():
            continue
        lo, hi = min(lo, x[ok].min(), y[ok].min()), max(hi, x[ok].max(), y[ok].max())
        ax.plot(x[ok], y[ok], "o-", ms=3, lw=1, color=f"C{i % 10}",
                label=f"{label}: ratio {cal.var_error_ratio:.3g}, 2σ cover {cal.coverage_2sd:.0%} (P={cal.samples})")
    if hi > 0:
        grid = np.array([lo / 1.5, hi * 1.5])
        ax.plot(grid, grid, "k--", lw=0.8, label="calibrated (y = x)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted error std  s·√(1+1/P)  (fraction of data range)")
    ax.set_ylabel("observed RMS error of the P-sample mean")
    ax.set_title(title or "posterior calibration (binned by predicted std)", fontsize=10)
    ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=120)
