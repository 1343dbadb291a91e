"""Training provenance written beside a checkpoint: how it was trained and what its files hold.

A training run writes a :class:`TrainingSummary` as ``training_summary.json`` next to the
published ``config.json`` and ``model.safetensors``; model cards read it back. The facts of a
concrete checkpoint file (:class:`CheckpointFacts`: sha256, parameter count) are measured when a
checkpoint is checked for publishing. Plain data only: this module imports no model, zoo or card code.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mrizoo._dataclass_io import from_dict
from mrizoo.errors import InputError

__all__ = ["TRAINING_SUMMARY_NAME", "TrainingSummary", "CheckpointFacts", "load_training_summary"]

#: File name of the training summary beside a checkpoint (and in a training run folder).
TRAINING_SUMMARY_NAME = "training_summary.json"

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class TrainingSummary:
    """How a published checkpoint was trained: written by the training run, read by the card.

    ``checkpoint_epoch`` is the epoch whose weights are published and ``early_stopping`` says
    why training stopped there (e.g. in-distribution validation SSIM stopped improving).
    """

    recipe: str
    epochs_trained: int
    max_epochs: int | None = None
    checkpoint_epoch: int | None = None
    early_stopping: str = ""
    steps: int | None = None
    validation: dict[str, float] = field(default_factory=dict)
    hardware: str = ""
    wall_time_hours: float | None = None
    recipe_sha256: str | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.epochs_trained < 1:
            raise InputError("epochs_trained must be >= 1", field="epochs_trained", got=self.epochs_trained)
        if self.max_epochs is not None and self.max_epochs < self.epochs_trained:
            raise InputError("more epochs trained than planned", field="max_epochs",
                             expected=f">= epochs_trained ({self.epochs_trained})", got=self.max_epochs)
        if self.checkpoint_epoch is not None and not 1 <= self.checkpoint_epoch <= self.epochs_trained:
            raise InputError("checkpoint epoch outside the epochs trained", field="checkpoint_epoch",
                             expected=f"1..{self.epochs_trained}", got=self.checkpoint_epoch)
        if self.steps is not None and self.steps < 1:
            raise InputError("steps must be >= 1", field="steps", got=self.steps)
        if self.wall_time_hours is not None and not self.wall_time_hours >= 0:
            raise InputError("wall_time_hours must be >= 0", field="wall_time_hours", got=self.wall_time_hours)
        if self.recipe_sha256 is not None and not _SHA256.fullmatch(self.recipe_sha256):
            raise InputError("recipe_sha256 must be 64 lowercase hex digits", field="recipe_sha256",
                             got=repr(self.recipe_sha256))


@dataclass(frozen=True)
class CheckpointFacts:
    """What a card says about one concrete checkpoint (measured when the checkpoint is checked)."""

    weights_sha256: str
    num_parameters: int
    num_tensors: int
    mrizoo_version: str | None = None
    recipe_sha256: str | None = None


def load_training_summary(path: str | os.PathLike[str]) -> TrainingSummary:
    """Read and validate a training summary JSON file; errors name the file and the field."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("training summary not found", path=p) from None
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError) as err:
        raise InputError(f"not a valid JSON training summary ({err})", path=p) from None
    try:
        return from_dict(TrainingSummary, doc, source=str(p))
    except InputError as err:
        if err.path is None:
            raise InputError(err.problem, path=p, field=err.field, expected=err.expected, got=err.got) from None
        raise
