"""Which training task trains a model: the architecture's ``task`` flag picks the task class.

- ``supervised`` (:class:`~mrizoo.train.task_supervised.SupervisedTask`): U-Net, ViT, VarNet, MoDL.
- ``rcgan`` (:class:`~mrizoo.train.task_rcgan.RCGANTask`): rcGAN and the cGANs it is compared with.
- ``ncsnv2`` (:class:`~mrizoo.train.task_score.ScoreTask`): NCSNv2 denoising score matching.

The interface every task implements is :class:`~mrizoo.train.task_base.Task`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mrizoo.errors import InputError
from mrizoo.models.registry import ARCHITECTURES, get_architecture
from mrizoo.train.recipe import TrainingRecipe
from mrizoo.train.task_base import Prediction, Task
from mrizoo.train.task_rcgan import RCGANTask
from mrizoo.train.task_score import ScoreTask
from mrizoo.train.task_supervised import SupervisedTask

__all__ = [
    "Task",
    "SupervisedTask",
    "RCGANTask",
    "ScoreTask",
    "Prediction",
    "make_task",
    "task_class",
    "task_family",
    "needs_maps",
]

#: ``Architecture.task`` -> the class that trains it (``none``: not trainable).
_TASKS: dict[str, type[Task]] = {"supervised": SupervisedTask, "rcgan": RCGANTask, "ncsnv2": ScoreTask}


def task_family(model: nn.Module) -> str:
    """The architecture family of a zoo model (``unet``, ``rcgan``, ...)."""
    entry = getattr(model, "zoo_entry", None)
    if entry is None:
        raise InputError("model has no zoo entry", field="model", expected="a model built by mrizoo.create")
    return entry.model.arch


def needs_maps(family: str) -> bool:
    """Whether samples must carry ESPIRiT maps (MoDL's forward model, SENSE images for NCSNv2)."""
    return get_architecture(family).needs_maps


def task_class(family: str) -> type[Task]:
    """The task class that trains the architecture ``family``."""
    kind = get_architecture(family).task
    if kind not in _TASKS:
        trainable = sorted(a.name for a in ARCHITECTURES.values() if a.task in _TASKS)
        raise InputError("this architecture has no training task", field="model",
                         expected=f"one of {trainable}", got=family)
    return _TASKS[kind]


def make_task(model: nn.Module, recipe: TrainingRecipe, accelerator: Any, *, total_steps: int,
              steps_per_epoch: int) -> Task:
    """The task for the model's architecture family."""
    return task_class(task_family(model))(model, recipe, accelerator, total_steps=total_steps,
                                          steps_per_epoch=steps_per_epoch)
