"""A PNG of the validation metrics of a run: in-distribution and every OOD set against training time.

Read from the ``val`` lines of ``metrics.jsonl``; the selected checkpoint and the point where
training stopped are marked, so distributional overfitting (the in-distribution curve still
rising while OOD curves fall) and the early-stopping decision can be seen at a glance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mrizoo.figures import save_figure

__all__ = ["read_metrics", "plot_metrics"]

_LABELS = {"ssim": "SSIM", "psnr": "PSNR (dB)", "nmse": "NMSE", "loss": "validation loss"}


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All JSON lines of a ``metrics.jsonl`` file (an unfinished last line is skipped)."""
    out = []
    p = Path(path)
    if not p.is_file():
        return out
    for line in p.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _axis(records: list[dict[str, Any]]) -> tuple[str, list[float]]:
    per_epoch = all(r.get("at") == "epoch" for r in records)
    if per_epoch:
        return "epoch", [float(r["epoch"]) for r in records]
    return "step", [float(r["step"]) for r in records]


def plot_metrics(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    *,
    metrics: tuple[str, ...] = ("ssim", "psnr", "nmse"),
    selected_step: int | None = None,
    stop_step: int | None = None,
    title: str = "",
) -> Path | None:
    """Plot the validation records to ``path`` (PNG, written atomically); None when there is nothing to plot."""
    vals = [r for r in records if r.get("kind") == "val"]
    if not vals:
        return None
    # imported on use: a heavy package that most calls of this module do not need
    import matplotlib

    matplotlib.use("Agg", force=False)
    # imported on use: a heavy package that most calls of this module do not need
    import matplotlib.pyplot as plt

    shown = [m for m in metrics if any(m in (r.get("id") or {}) for r in vals)]
    if not shown:
        return None
    xname, xs = _axis(vals)
    step_to_x = {int(r["step"]): x for r, x in zip(vals, xs)}
    ood_names = sorted({name for r in vals for name in (r.get("ood") or {})})

    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], shown):
        series = [("in-distribution", [(r.get("id") or {}).get(metric) for r in vals], "-o")]
        series += [(f"OOD: {n}", [((r.get("ood") or {}).get(n) or {}).get(metric) for r in vals], "--.")
                   for n in ood_names]
        for label, ys, style in series:
            pts = [(x, y) for x, y in zip(xs, ys) if isinstance(y, (int, float))]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label, markersize=4,
                        linewidth=1.2)
        if selected_step is not None and selected_step in step_to_x:
            ax.axvline(step_to_x[selected_step], color="tab:green", linestyle=":", linewidth=1.5,
                       label="selected checkpoint")
        if stop_step is not None and stop_step in step_to_x and stop_step != selected_step:
            ax.axvline(step_to_x[stop_step], color="tab:red", linestyle=":", linewidth=1.5, label="stopped")
        ax.set_xlabel(xname)
        ax.set_ylabel(_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()

    return save_figure(fig, path, dpi=110)
