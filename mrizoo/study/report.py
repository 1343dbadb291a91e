"""The Markdown report of a study: what was run, the table arm x set, each verdict with its numbers, the figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from mrizoo._atomic import atomic_file
from mrizoo.study.findings import Verdict
from mrizoo.study.schema import StudySpec

__all__ = ["write_report", "results_table"]


def _cell(vals: list[float], metric: str) -> str:
    vals = [v for v in vals if math.isfinite(v)]
    if not vals:
        return "n/a"
    fmt = ".2f" if metric == "psnr" else ".4f"
    text = format(float(np.mean(vals)), fmt)
    return text + (f" ± {format(float(np.std(vals)), fmt)}" if len(vals) > 1 else "")


def results_table(spec: StudySpec, results: dict[str, Any]) -> str:
    """One row per arm, one column per (set, metric): the mean over seeds (± spread over seeds)."""
    sets, metrics = results["sets"], results["metrics"]
    head = ["arm", "seeds", "training slices", "steps (selected)"] + [f"{s} {m.upper()}" for s in sets for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm in spec.arms:
        runs = [r for r in results["runs"] if r["arm"] == arm]
        if not runs:
            continue
        slices = sorted({str(r["train_slices"]) for r in runs})
        steps = ", ".join(f"{r['steps']} ({r['selected_step']})" for r in runs)
        cells = [_cell([float(r["final"].get(s, {}).get(m, math.nan)) for r in runs], m) for s in sets for m in metrics]
        label = spec.arms[arm].label or arm
        lines.append(f"| {label} | {', '.join(str(r['seed']) for r in runs)} | {', '.join(slices)} | {steps} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _verdict_md(v: Verdict) -> str:
    word = {True: "SUPPORTED", False: "NOT SUPPORTED", None: "NOT JUDGED"}[v.supported]
    out = [f"### {v.name}: {word}", ""]
    if v.claim:
        out += [f"Claim: {v.claim.strip()}", ""]
    out += [f"Verdict: {v.summary}.", ""]
    if v.header and v.rows:
        out += ["| " + " | ".join(v.header) + " |", "|" + "---|" * len(v.header)]
        out += ["| " + " | ".join(r) + " |" for r in v.rows]
        out.append("")
    return "\n".join(out)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def write_report(spec: StudySpec, results: dict[str, Any], verdicts: list[Verdict], path: Path) -> Path:
    """Write ``report.md`` next to ``figures/`` and ``results.json``."""
    runs = results["runs"]
    total = sum(float(r.get("wall_seconds") or 0) for r in runs)
    lines = [f"# Study `{spec.name}`" + (" (smoke run)" if results["smoke"] else ""), ""]
    if spec.description:
        lines += [spec.description.strip(), ""]
    lines += [
        "- Invocations of this study folder (command, wall time, runs trained / reused, threads):",
        *[f"  {i}. `{v['command']}`: {_minutes(v['wall_seconds'])}, {v['trained']} trained / {v['skipped']} reused "
          f"({v['finished']}; {v['threads']})" for i, v in enumerate(results.get("invocations", []), 1)],
        f"- Training time of the {len(runs)} runs (each measured when it was trained): {_minutes(total)}",
        f"- Study file: `{results['file']}` (sha256 `{results['sha256'][:16]}...`); data root: `{results['data_root']}`",
        "- Evaluation sets: " + "; ".join(f"`{k}` = `{v.pool or v.folder}`" for k, v in spec.evaluation.sets.items())
        + " (every run is validated on each during training)",
        "",
        "## Scores of the selected models (`mrizoo evaluate`), mean over seeds",
        "",
        results_table(spec, results),
        "## Findings",
        "",
    ]
    lines += [_verdict_md(v) for v in verdicts] or ["(the study declares no findings)", ""]
    if results.get("figures"):
        lines += ["## Figures", ""]
        for name, rel in results["figures"].items():
            lines += [f"![{name}]({rel})", ""]
    lines += ["## Runs", "", "| run | steps | selected step | stopped | training time |", "|---|---|---|---|---|"]
    for r in runs:
        reason = (r.get("stop_reason") or "").replace("|", "/")
        lines.append(f"| {Path(r['run_dir']).name} | {r['steps']} | {r['selected_step']} | {reason} | "
                     f"{(r.get('wall_seconds') or 0):.0f} s{' (earlier)' if r.get('skipped') else ''} |")
    with atomic_file(path, suffix=".md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
