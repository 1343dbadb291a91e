"""The figures of a study, drawn from ``results.json``-shaped results (matplotlib, PNG, written atomically).

- ``bars`` (Lin & Heckel 2024, Figure 3): one group of bars per evaluation set, one bar per arm
  (mean over seeds, error bar: the spread over seeds), the arm's number of training slices in
  the legend.
- ``scatter`` (Figures 4/9): out-of-distribution against in-distribution metric; small points are
  the validations during training (models sampled by early stopping), large ones the final
  models; one colour and one least-squares line per group; ``y = x`` dashed.
- ``curves`` (Figure 8): ID and OOD metric against training epochs per arm (seed means), with the
  validations the paper's ID-only rule and the OOD-aware rule select when a
  ``distributional_overfitting`` finding concerns that arm.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from mrizoo._atomic import atomic_file
from mrizoo.study.findings import Verdict, arm_final, arm_points, running_mean
from mrizoo.study.schema import OWN_VAL, FigureSpec, StudySpec

__all__ = ["draw_figures"]


def _plt() -> Any:
    # imported on use: a heavy package that most calls of this module do not need
    import matplotlib

    matplotlib.use("Agg", force=False)
    # imported on use: a heavy package that most calls of this module do not need
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    _plt().close(fig)
    return path


def _arms(spec: StudySpec, f: FigureSpec) -> list[str]:
    return list(f.arms) or list(spec.arms)


def _label(spec: StudySpec, arm: str) -> str:
    return spec.arms[arm].label or arm


def _bars(spec: StudySpec, f: FigureSpec, results: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    arms, sets = _arms(spec, f), list(f.sets) or list(results["sets"])
    width = 0.8 / max(1, len(arms))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 + 0.6 * len(sets) * max(1, len(arms))), 5.0))
    lo = math.inf
    for i, arm in enumerate(arms):
        stats = [arm_final(results, arm, [s], f.metric) for s in sets]
        means = np.array([s[0] for s in stats])
        errs = np.array([s[1] if s[2] > 1 else 0.0 for s in stats])
        slices = {r["train_slices"] for r in results["runs"] if r["arm"] == arm}
        n = next(iter(slices)) if len(slices) == 1 else None
        label = _label(spec, arm) + (f" ({n} slices)" if n else "")
        xs = np.arange(len(sets)) + (i - (len(arms) - 1) / 2) * width
        ax.bar(xs, means, width * 0.92, yerr=errs if errs.any() else None, label=label, color=f"C{i}", capsize=3)
        for xi, mi in zip(xs, means):
            if math.isfinite(mi):
                ax.annotate(f"{mi:.3f}" if f.metric != "psnr" else f"{mi:.1f}", (xi, mi), ha="center", va="bottom",
                            fontsize=7, rotation=90, xytext=(0, 2), textcoords="offset points")
        finite = means[np.isfinite(means)]
        lo = min(lo, float(finite.min()) if finite.size else lo)
    if math.isfinite(lo):
        ax.set_ylim(bottom=max(0.0, lo - 0.1 * abs(lo)) if f.metric != "psnr" else lo - 2)
    ax.set_xticks(np.arange(len(sets)), [f"tested on {s}" for s in sets])
    ax.set_ylabel(f.metric.upper())
    ax.set_title(f.title or f"{spec.name}: {f.metric.upper()} of each arm on each set")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def _finding_scatter(spec: StudySpec, f: FigureSpec, verdicts: list[Verdict]) -> FigureSpec | None:
    """The plain scatter of an ``effective_robustness`` finding (P_best's set on x), or None if it was not judged."""
    finding = spec.findings[str(f.finding)]
    verdict = next((v for v in verdicts if v.name == f.finding), None)
    best = None if verdict is None else verdict.numbers.get("p_best")
    if best is None:
        return None
    groups = {f"P_best: {_label(spec, best)}": (best,), f"diverse P: {_label(spec, str(finding.diverse))}": (str(finding.diverse),)}
    if finding.reference:
        groups[f"P and Q: {_label(spec, finding.reference)}"] = (finding.reference,)
    for arm in finding.candidates:
        if arm != best:
            groups[f"other P_i: {_label(spec, arm)}"] = (arm,)
    title = f.title or f"{spec.name}: effective robustness (Figure 4)"
    return dataclasses.replace(f, x=(finding.candidates[best],), y=finding.y, groups=groups, finding=None, title=title)


def _scatter(spec: StudySpec, f: FigureSpec, results: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    allv: list[float] = []
    for i, (group, members) in enumerate(f.groups.items()):
        gx, gy = [], []
        for arm in members:
            vx, vy, fx, fy = arm_points(results, arm, f.x, f.y, f.metric)
            ax.scatter(vx, vy, s=10, color=f"C{i}", alpha=0.35, linewidths=0)
            ax.scatter(fx, fy, s=60, color=f"C{i}", edgecolors="k", zorder=3)
            gx += [*vx, *fx]
            gy += [*vy, *fy]
        x, y = np.asarray(gx, float), np.asarray(gy, float)
        ok = np.isfinite(x) & np.isfinite(y)
        allv += [*x[ok], *y[ok]]
        label = group
        if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
            slope, icpt = np.polyfit(x[ok], y[ok], 1)
            grid = np.linspace(x[ok].min(), x[ok].max(), 2)
            ax.plot(grid, slope * grid + icpt, color=f"C{i}", lw=1.2)
            label += f" (fit: {slope:.2f} x {icpt:+.2f})"
        ax.plot([], [], "o", color=f"C{i}", label=label)
    if allv:
        lo, hi = min(allv), max(allv)
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.7, label="y = x")
    ax.set_xlabel(f"in-distribution {f.metric.upper()} ({', '.join(f.x)})")
    ax.set_ylabel(f"out-of-distribution {f.metric.upper()} ({', '.join(f.y)})")
    ax.set_title(f.title or f"{spec.name}: effective robustness", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.text(0.99, 0.01, "small: validations during training; large: final models", transform=ax.transAxes,
            ha="right", va="bottom", fontsize=7, color="0.4")
    fig.tight_layout()
    return _save(fig, path)


def _mean_curve(results: dict[str, Any], arm: str, sets: tuple[str, ...], metric: str) -> tuple[np.ndarray, np.ndarray]:
    by_step: dict[float, list[float]] = {}
    for r in results["runs"]:
        if r["arm"] != arm:
            continue
        for h in r["history"]:
            vals = [(h["val"] if s == OWN_VAL else h["sets"].get(s, {})).get(metric, math.nan) for s in sets]
            by_step.setdefault(h["epoch"], []).append(float(np.mean(vals)))
    xs = np.array(sorted(by_step))
    return xs, np.array([np.mean(by_step[x]) for x in xs])


def _curves(spec: StudySpec, f: FigureSpec, results: dict[str, Any], verdicts: list[Verdict], path: Path) -> Path:
    plt = _plt()
    arms = _arms(spec, f)
    x_sets = f.x or (OWN_VAL,)
    fig, axes = plt.subplots(1, len(arms), figsize=(6.4 * len(arms), 4.8), squeeze=False)
    for ax, arm in zip(axes[0], arms):
        ex, ey = _mean_curve(results, arm, x_sets, f.metric)
        ox, oy = _mean_curve(results, arm, f.y, f.metric)
        window = max([fs.smooth for fs in spec.findings.values() if fs.kind == "distributional_overfitting"
                      and fs.arm == arm and tuple(fs.y) == tuple(f.y)] or [1])
        ax2 = ax.twinx()
        if window > 1:
            ax.plot(ex, ey, "o-", ms=2, lw=0.8, color="C0", alpha=0.35)
            ax2.plot(ox, oy, "s-", ms=2, lw=0.8, color="C3", alpha=0.35)
            ey, oy = running_mean(ey, window), running_mean(oy, window)
        suffix = f", running mean of {window}" if window > 1 else ""
        ax.plot(ex, ey, "o-", ms=3, color="C0", label=f"in-distribution ({', '.join(x_sets)}{suffix})")
        ax2.plot(ox, oy, "s-", ms=3, color="C3", label=f"out-of-distribution ({', '.join(f.y)}{suffix})")
        ax.set_xlabel("training epoch")
        ax.set_ylabel(f"ID {f.metric.upper()}", color="C0")
        ax2.set_ylabel(f"OOD {f.metric.upper()}", color="C3")
        for v in verdicts:
            seeds = v.numbers.get("seeds") if v.kind == "distributional_overfitting" else None
            finding = spec.findings[v.name]
            if not seeds or finding.arm != arm or tuple(finding.y) != tuple(f.y) or tuple(finding.x) != tuple(x_sets):
                continue
            rules = seeds[0]["rules"]
            for rule, style, text in (("paper", ":", "ID-only rule"), ("ood", "--", "OOD-aware rule")):
                ax.axvline(rules[rule]["epoch"], color="k", ls=style, lw=1, label=f"{text} selects (seed {seeds[0]['seed']})")
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        ax.set_title(f"{_label(spec, arm)}", fontsize=10)
    fig.suptitle(f.title or f"{spec.name}: {f.metric.upper()} during training", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def draw_figures(spec: StudySpec, results: dict[str, Any], verdicts: list[Verdict], folder: Path) -> dict[str, Path]:
    """Draw every figure of the study into ``folder``; returns name -> PNG path."""
    out = {}
    for name, f in spec.figures.items():
        path = folder / f"{name}.png"
        if f.kind == "bars":
            out[name] = _bars(spec, f, results, path)
        elif f.kind == "scatter":
            plain = _finding_scatter(spec, f, verdicts) if f.finding is not None else f
            if plain is not None:
                out[name] = _scatter(spec, plain, results, path)
        else:
            out[name] = _curves(spec, f, results, verdicts, path)
    return out
