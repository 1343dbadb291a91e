"""The card sections built from tables and nested facts: what the model does, its training data
and its training procedure. (The fixed prose of the card lives in ``template.md.j2``.)"""

from __future__ import annotations

import json
from typing import Any

from mrizoo._dataclass_io import to_dict
from mrizoo.cards.inputs import PoolDescription
from mrizoo.cards.text import (
    METRIC_HEADERS,
    TARGETS,
    accelerations,
    anatomy_text,
    cite,
    coils_text,
    fmt_metric,
    image_size,
    is_posterior,
    mask_text,
    sentence,
    table,
    weights_line,
    yaml_block,
)
from mrizoo.models.provenance import TrainingSummary
from mrizoo.zoo.entry import ModelEntry

__all__ = ["section_what", "section_data", "section_training"]


def section_what(entry: ModelEntry, config: Any, arch_description: str, load_spec: str | None = None) -> str:
    """``## What the model does``: one sentence, the task table and the architecture configuration."""
    t = entry.task
    kind = "posterior sampler" if is_posterior(entry) else "reconstruction method"
    domain = "single-coil" if t.coils == "single" else "multi-coil"
    out = (f"Reconstructs {domain} 2D Cartesian MRI from undersampled k-space: a {kind} "
           f"producing the {TARGETS[t.target]}.")
    rows = [
        ["Architecture", f"`{entry.model.arch}`" + (f" (preset `{entry.model.preset}`)" if entry.model.preset else "")
         + f": {arch_description}"],
        ["Anatomy", anatomy_text(entry)],
        ["Acceleration", accelerations(entry)],
        ["Mask", mask_text(entry)],
        ["Coils", coils_text(entry)],
        ["Target", f"`{t.target}`: {TARGETS[t.target]}"],
        ["Weights", "this checkpoint (`model.safetensors`, sha256 below)" if load_spec else weights_line(entry)],
    ]
    if image_size(entry):
        rows.insert(5, ["Image size", f"{image_size(entry)} (as trained)"])
    parts = ["## What the model does", "", out, "", table(["Property", "Value"], rows)]
    if config is not None:
        parts += ["", "Architecture configuration:", "", yaml_block(to_dict(config))]
    return "\n".join(parts)


def section_data(entry: ModelEntry, pool: PoolDescription | None, training: dict[str, Any] | None) -> str:
    """``## Training data``: what the weights saw, with the pool table once the pool is built."""
    parts = ["## Training data", ""]
    w, t = entry.weights, entry.task
    if w.kind == "builtin" and "untrained" in entry.tags:
        parts.append("None: an un-trained network, fitted from a random initialisation to the measurements of the "
                     "scan it reconstructs; no other data is ever used.")
        return "\n".join(parts)
    if w.kind == "builtin":
        parts.append("None: a classical method without learned parameters.")
        return "\n".join(parts)
    if w.kind == "upstream":
        parts.append(f"{sentence(t.data)} The original authors trained these weights{cite(entry)}; "
                     "mrizoo did not retrain them.")
    else:
        parts.append(sentence(t.data))
    if t.contrasts:
        parts += ["", f"Contrasts: {', '.join(t.contrasts)}."]
    pool_name = training.get("pool") if training else None
    if isinstance(pool_name, dict):
        pool_name = pool_name.get("name")
    if pool is not None:
        rows = [[d.name, d.anatomy or "-", ", ".join(d.contrasts) or "-",
                 "-" if d.volumes is None else f"{d.volumes:,}", f"{d.slices:,}"] for d in pool.datasets]
        rows.append(["**total**", "", "", "", f"**{pool.total_slices:,}**"])
        parts += ["", f"Training pool `{pool.name}` ({len(pool.datasets)} datasets, {pool.total_slices:,} slices):",
                  "", table(["Dataset", "Anatomy", "Contrasts", "Volumes", "Slices"], rows)]
        if pool.notes:
            parts += ["", pool.notes]
    elif pool_name or "pool" in entry.tags:
        named = f" `{pool_name}`" if pool_name else ""
        parts += ["", f"The model trains on the data pool{named} its recipe selects. The per-dataset table "
                      "(datasets and slice counts) is added here once the pool is built."]
    return "\n".join(parts)


def _summary_lines(summary: TrainingSummary) -> list[str]:
    """The paragraphs of a training summary: epochs and steps, stopping, validation, hardware, notes."""
    epochs = f"{summary.epochs_trained} epochs"
    if summary.max_epochs is not None:
        epochs += f" of {summary.max_epochs} planned"
    line = f"Trained with the recipe `{summary.recipe}` for {epochs}"
    line += f" ({summary.steps:,} steps)." if summary.steps else "."
    parts = [line]
    if summary.checkpoint_epoch is not None:
        parts += ["", f"Published weights: epoch {summary.checkpoint_epoch}."
                  + (f" Early stopping: {sentence(summary.early_stopping)}" if summary.early_stopping else "")]
    elif summary.early_stopping:
        parts += ["", f"Early stopping: {sentence(summary.early_stopping)}"]
    if summary.validation:
        vals = ", ".join(f"{METRIC_HEADERS.get(k, k)} {fmt_metric(k, v)}"
                         for k, v in sorted(summary.validation.items()))
        parts += ["", f"Validation at the published epoch: {vals}."]
    extra = []
    if summary.hardware:
        extra.append(f"hardware: {summary.hardware}")
    if summary.wall_time_hours is not None:
        extra.append(f"wall time: {summary.wall_time_hours:.1f} h")
    if summary.recipe_sha256:
        extra.append(f"recipe sha256: `{summary.recipe_sha256}`")
    if extra:
        text = "; ".join(extra)
        parts += ["", text[0].upper() + text[1:] + "."]
    if summary.notes:
        parts += ["", sentence(summary.notes)]
    return parts


def section_training(entry: ModelEntry, training: dict[str, Any] | None, summary: TrainingSummary | None) -> str:
    """``## Training procedure``: who trained the weights and how (summary, then the recipe's settings)."""
    parts = ["## Training procedure", ""]
    w = entry.weights
    recipe = f"`{entry.recipe}` (`recipes/{entry.recipe}.yaml`)" if entry.recipe else None
    if w.kind == "builtin" and "untrained" in entry.tags:
        parts.append("No training. For each slice a fresh, seeded network is fitted to the measured k-space by Adam; a "
                     "seeded part of the measured locations is held out, and the weights with the lowest held-out "
                     "error are kept (fitting stops when it has not improved for a while; see the configuration "
                     "above).")
        return "\n".join(parts)
    if w.kind == "builtin":
        parts.append("No training: the method has fixed parameters (see the configuration above).")
        return "\n".join(parts)
    if w.kind == "upstream":
        parts.append(f"Trained by the original authors{cite(entry)}; mrizoo downloads their published weights "
                     f"({w.url}) and converts them to safetensors with the converter `{w.converter}`.")
        return "\n".join(parts)
    if summary is not None:
        parts += _summary_lines(summary)
    elif w.kind in ("hub", "package"):
        parts.append(f"Trained with the recipe {recipe}; no training summary is recorded for these weights."
                     if recipe else "No training summary is recorded for these weights.")
    else:
        parts.append("Not trained yet. " + (f"The recipe {recipe} trains it." if recipe
                                            else "No recipe trains it yet."))
    if training:
        facts = []
        if "epochs" in training or "max_epochs" in training:
            facts.append(f"epochs: {training.get('epochs', training.get('max_epochs'))}")
        stop = training.get("early_stopping")
        if stop:
            facts.append(f"early stopping: {stop if isinstance(stop, str) else json.dumps(stop, sort_keys=True)}")
        parts += ["", "Recipe" + (f" ({'; '.join(facts)})" if facts else "") + ":", "", yaml_block(training)]
    elif recipe and summary is None:
        parts += ["", "The recipe file does not declare its training section yet."]
    return "\n".join(parts)
