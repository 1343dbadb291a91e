"""Comparison figures: one row of magnitude panels (and error maps) written as PNG."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from mrizoo._atomic import atomic_file

__all__ = ["save_panels", "save_figure"]


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
) -> Path:
    """Write a PNG with one magnitude panel per entry (title = key).

    When ``reference`` names one of the panels and ``errors`` is set, a second row shows
    ``|panel - reference|`` (scaled by ``error_gain`` for visibility) for every other panel.
    ``captions`` adds a second title line under a panel (e.g. its metrics). Images share the
    grey scale of the reference (or of the first panel). ``heatmaps`` (e.g. posterior standard
    deviations) are appended to the first row, each with its own colour scale and colour bar.
    The file is written to a temporary name and renamed, so a failed write leaves nothing behind.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    images = {k: _np(v) for k, v in panels.items()}
    if not images:
        raise ValueError("save_panels needs at least one panel")
    scale_key = reference if reference in images else next(iter(images))
    vmax = float(np.percentile(images[scale_key], 99.5)) or 1.0
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
        axes[1][0].text(0.5, 0.5, f"error x{error_gain:g}", ha="center", va="center", fontsize=10)
        for ax, key in zip(axes[1][1:], others):
            ax.imshow(np.abs(images[key] - ref) * error_gain, cmap="inferno", vmin=0, vmax=vmax)
            ax.set_title(f"|{key} - {reference}|", fontsize=8)
        for ax in axes[1][len(images):]:
            ax.axis("off")
    for ax, (title, img) in zip(axes[0][len(images):], heat.items()):
        shown = ax.imshow(img, cmap="magma", vmin=0, vmax=float(np.percentile(img, 99.5)) or 1.0)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
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
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return Path(path)
