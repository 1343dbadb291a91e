"""The measured numbers of a card: the ``## Evaluation`` tables and the Hub metadata's eval results.

Both come from one :class:`~mrizoo.results.EvaluationResults`; the calibration and adaptation
rows it may carry have their own sections (:mod:`mrizoo.cards.calibration`,
:mod:`mrizoo.cards.adaptation`).
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import EvalResult

from mrizoo.cards.calibration import CALIBRATION_KEYS
from mrizoo.cards.text import METRIC_HEADERS, fmt_metric, fmt_num, is_posterior, table
from mrizoo.results import POSTERIOR_METRICS, REQUIRED_METRICS, DatasetResult, EvaluationResults
from mrizoo.zoo.entry import ModelEntry

__all__ = ["section_evaluation", "eval_results"]


def _metric_cell(d: DatasetResult, key: str) -> str:
    if key not in d.metrics:
        return "-"
    text = fmt_metric(key, d.metrics[key])
    if key in d.std:
        text += f" ± {fmt_metric(key, d.std[key])}"
    return text


def section_evaluation(entry: ModelEntry, results: EvaluationResults | None) -> str:
    """``## Evaluation``: one table in distribution and one out of distribution, then the notes."""
    parts = ["## Evaluation", ""]
    if results is None:
        parts.append("Not evaluated yet.")
        return "\n".join(parts)
    columns = list(REQUIRED_METRICS) + (list(POSTERIOR_METRICS) if is_posterior(entry) else [])
    extra = sorted({k for d in results.datasets for k in d.metrics} - set(columns) - set(CALIBRATION_KEYS))
    columns += extra
    header = ["Dataset", "Split", "R", "Mask", "Volumes", "Slices"] + [METRIC_HEADERS.get(c, c) for c in columns]
    parts.append("Means over volumes (± standard deviation where recorded), fastMRI conventions "
                 "(`mrizoo.metrics`).")
    for title, group in (("In distribution", results.in_distribution()),
                         ("Out of distribution", results.out_of_distribution())):
        parts += ["", f"### {title}", ""]
        if not group:
            parts.append("No results.")
            continue
        rows = []
        for d in group:
            mask = d.mask + (f" ({fmt_num(d.center_fraction)})" if d.center_fraction is not None else "")
            rows.append([d.dataset, d.split, f"{fmt_num(d.acceleration)}x", mask, f"{d.volumes:,}",
                         f"{d.slices:,}"] + [_metric_cell(d, c) for c in columns])
        parts.append(table(header, rows))
    notes = [f"{d.dataset}: {d.notes}" for d in results.datasets if d.notes]
    samples = sorted({d.samples for d in results.datasets if d.samples is not None})
    if samples and is_posterior(entry):
        notes.append(f"Posterior metrics use {', '.join(map(str, samples))} samples per slice.")
    if results.notes:
        notes.append(results.notes)
    if notes:
        parts += [""] + [f"- {n}" for n in notes]
    return "\n".join(parts)


def eval_results(results: EvaluationResults) -> list[Any]:
    """The results as ``huggingface_hub.EvalResult`` rows (the card metadata's ``model-index``)."""
    out = []
    for d in results.datasets:
        config = f"r{fmt_num(d.acceleration)}-{d.mask}"
        args = {"distribution": d.distribution, "volumes": d.volumes, "slices": d.slices}
        if d.center_fraction is not None:
            args["center_fraction"] = d.center_fraction
        known = [k for k in METRIC_HEADERS if k in d.metrics]
        for key in known + sorted(set(d.metrics) - set(known)):
            out.append(EvalResult(
                task_type="mri-reconstruction",
                task_name=f"Accelerated MRI reconstruction ({fmt_num(d.acceleration)}x, {d.mask})",
                dataset_type=d.slug,
                dataset_name=d.dataset,
                dataset_config=config,
                dataset_split=d.split,
                dataset_args=args,
                metric_type=key,
                metric_name=METRIC_HEADERS.get(key, key),
                metric_value=d.metrics[key],
            ))
    return out
