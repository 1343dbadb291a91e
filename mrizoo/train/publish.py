"""The end of a run: publish the selected weights with a training summary, plot, install.

``RUN_DIR/selected/`` holds the weights of the selected validation (written when it happened);
they are copied with ``training_summary.json`` to ``RUN_DIR/model/`` and, for a finished full run
of a zoo entry's own recipe, to the local zoo where ``mrizoo.load(name)`` finds them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from mrizoo._atomic import atomic_dir
from mrizoo.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, save_pretrained
from mrizoo.models.provenance import TrainingSummary
from mrizoo.train.plot import plot_metrics, read_metrics
from mrizoo.train.recipe import RecipeInfo, TrainingRecipe
from mrizoo.train.run_folder import METRICS_NAME, MODEL_DIR, SUMMARY_NAME, jsonable
from mrizoo.train.task_base import Task
from mrizoo.zoo.local import local_zoo_dir
from mrizoo.zoo.registry import REGISTRY

__all__ = ["copy_checkpoint", "describe_hardware", "epoch_of", "publish_run", "stop_reason", "training_summary"]


def epoch_of(step: int, steps_per_epoch: int) -> int:
    """The 1-based epoch that optimizer step ``step`` falls in."""
    return max(1, math.ceil(step / max(1, steps_per_epoch)))


def describe_hardware(accelerator: Any) -> str:
    """``"<processes> x <device name>"``."""
    device = accelerator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return f"{accelerator.num_processes} x {name}"


def copy_checkpoint(src: Path, dst: Path, extra_files: dict[str, str]) -> Path:
    """Copy a checkpoint folder (config + weights) plus ``extra_files`` (name -> text) atomically."""
    with atomic_dir(dst) as tmp:
        if dst.is_dir():  # keep files such as a model card
            for item in dst.iterdir():
                if item.is_file() and item.name not in (CONFIG_NAME, WEIGHTS_NAME, *extra_files):
                    shutil.copy2(item, tmp / item.name)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copy2(src / name, tmp / name)
        for name, text in extra_files.items():
            (tmp / name).write_text(text)
    return dst


def _is_entry_recipe(recipe: TrainingRecipe, info: RecipeInfo) -> bool:
    """Whether the recipe is a zoo entry's own (its name is the entry's): only those install."""
    return info.name == recipe.model and recipe.model in REGISTRY.names()


def stop_reason(spec: TrainingRecipe, state: Any, *, finished: bool, total_steps: int) -> str:
    """Why the run ended, in words (early stopping, interrupted, or the budget spent)."""
    if state.stopped:
        return state.stop_reason
    if not finished:
        return f"interrupted after step {state.step} of {total_steps} (max_steps); resume to finish"
    es = spec.early_stopping
    which = "in-distribution" if es.rule != "ood" else (f"OOD ({es.ood_set})" if es.ood_set else "mean OOD")
    return f"not triggered ({es.rule} rule); the validation with the best {which} {es.metric} was kept"


def selected_metrics(selected: dict[str, Any] | None) -> dict[str, float]:
    """The selected validation's metrics, OOD sets as ``ood/<set>/<metric>``."""
    if selected is None:
        return {}
    metrics = {k: float(v) for k, v in selected["id"].items() if k != "volumes"}
    for name, r in selected["ood"].items():
        metrics.update({f"ood/{name}/{k}": float(v) for k, v in r.items() if k != "volumes"})
    return metrics


def training_summary(spec: TrainingRecipe, info: RecipeInfo, state: Any, *, reason: str, total_steps: int,
                     steps_per_epoch: int, hardware: str, smoke: bool) -> TrainingSummary:
    """The provenance written beside the published weights."""
    selected = state.selected
    epochs = epoch_of(state.step, steps_per_epoch)
    max_epochs = spec.epochs if spec.epochs is not None else epoch_of(total_steps, steps_per_epoch)
    return TrainingSummary(
        recipe=info.name,
        epochs_trained=epochs,
        max_epochs=max(max_epochs, epochs),
        checkpoint_epoch=None if selected is None else int(selected["epoch"]),
        early_stopping=reason,
        steps=max(1, state.step),
        validation={k: v for k, v in selected_metrics(selected).items() if math.isfinite(v)},
        hardware=hardware,
        wall_time_hours=state.wall_seconds / 3600.0,
        recipe_sha256=info.sha256,
        notes=(f"selected step {selected['step']} (epoch {selected['epoch']}) of {state.step}"
               if selected is not None else "no validation ran; the last weights are published")
              + ("; smoke run" if smoke else ""),
    )


def publish_run(spec: TrainingRecipe, info: RecipeInfo, task: Task, state: Any, run_dir: Path, *,
                summary: TrainingSummary, install: bool) -> Path | None:
    """Main process only: write the summary, publish ``RUN_DIR/model``, plot, install when asked.

    Returns the local-zoo folder the weights were installed to, or None.
    """
    summary_text = json.dumps(jsonable(dataclasses.asdict(summary)), indent=1) + "\n"
    selected = state.selected
    (run_dir / SUMMARY_NAME).write_text(summary_text)
    source = run_dir / "selected"
    if selected is not None and (source / CONFIG_NAME).is_file():
        on_disk = json.loads((source / CONFIG_NAME).read_text()).get("training_step")
        if on_disk != selected["step"]:
            print(f"mrizoo train: warning: {source} holds the weights of step {on_disk}, the selected "
                  f"validation is at step {selected['step']}", file=sys.stderr)
    if selected is None or not (source / CONFIG_NAME).is_file():
        save_pretrained(task.eval_model(), source, recipe_file=info.path, overwrite=True,
                        extra={"training_recipe": info.name, "training_step": state.step})
    model_dir = copy_checkpoint(source, run_dir / MODEL_DIR, {SUMMARY_NAME: summary_text})
    plot_metrics(read_metrics(run_dir / METRICS_NAME), run_dir / "metrics.png",
                 selected_step=None if selected is None else int(selected["step"]),
                 stop_step=state.step if state.stopped else None,
                 title=f"{info.name}: validation ({spec.early_stopping.rule} rule)")
    if install and _is_entry_recipe(spec, info):
        return copy_checkpoint(model_dir, local_zoo_dir(spec.model), {SUMMARY_NAME: summary_text})
    return None
