"""What every training task shares: the :class:`Task` interface, validation output and helpers.

A task prepares its models and optimizers with the ``Accelerator`` (DDP on several processes),
runs inside ``accelerator.accumulate`` (the trainer opens it) and steps its learning-rate
schedulers itself once per optimizer step. Every random draw of a step comes from a generator
seeded by the trainer, so a resumed run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mrizoo.data.slices import SampleBatch, center_crop
from mrizoo.train.recipe import TrainingRecipe
from mrizoo.train.schedules import build_scheduler

__all__ = ["Task", "Prediction", "CallMethod", "make_optimizer", "to_device", "crop_to"]


@dataclass
class Prediction:
    """Validation output of one batch: images ``[B, h, w]`` on the CPU (float32).

    ``pred`` is scored against ``target`` per volume (SSIM/PSNR/NMSE); every image in ``extra``
    gets a PSNR against ``target`` (``psnr_<name>``); ``loss`` is a batch-mean validation loss.
    ``target``/``max_value`` replace the dataset's when a task scores another quantity.
    """

    pred: torch.Tensor
    target: torch.Tensor | None = None
    max_value: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    loss: float | None = None


class CallMethod(nn.Module):
    """Makes a model method the ``forward`` of a module, so DDP synchronises its gradients."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.model, self.method)(*args, **kwargs)


def make_optimizer(params: Any, spec: Any, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    """Adam or AdamW (``spec.name``) over the trainable ``params``."""
    cls = torch.optim.AdamW if spec.name == "adamw" else torch.optim.Adam
    return cls([p for p in params if p.requires_grad], lr=lr, betas=tuple(betas),
               weight_decay=spec.weight_decay)


def to_device(batch: SampleBatch, device: torch.device) -> SampleBatch:
    """``batch`` with every tensor on ``device``."""

    def move(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(device, non_blocking=True)

    return dataclasses.replace(batch, kspace=move(batch.kspace), mask=move(batch.mask), target=move(batch.target),
                               max_value=move(batch.max_value), maps=move(batch.maps))


def crop_to(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``x`` centre-cropped to the image size of ``target``."""
    shape = tuple(target.shape[-2:])
    return x if tuple(x.shape[-2:]) == shape else center_crop(x, shape)


class Task:
    """Base class: one family's models, optimizers, schedulers and steps."""

    #: validation runs on undersampled inputs (False: on the fully sampled data, e.g. denoising)
    undersampled_validation = True

    def __init__(self, model: nn.Module, recipe: TrainingRecipe, accelerator: Any, *, total_steps: int,
                 steps_per_epoch: int) -> None:
        self.model = model
        self.recipe = recipe
        self.accelerator = accelerator
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.schedulers: list[Any] = []
        self.optimizers: list[Any] = []

    # -- set-up helpers ---------------------------------------------------------------
    def _scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        sched = build_scheduler(optimizer, self.recipe.schedule, total_steps=self.total_steps,
                                steps_per_epoch=self.steps_per_epoch)
        self.schedulers.append(sched)
        return sched

    # -- interface --------------------------------------------------------------------
    @property
    def prepared(self) -> list[nn.Module]:
        """The prepared (possibly DDP-wrapped) modules trained together (for ``accumulate``)."""
        raise NotImplementedError

    def train_step(self, batch: SampleBatch, mask: torch.Tensor, *, epoch: int,
                   generator: torch.Generator) -> dict[str, float]:
        """Forward, backward and (when gradients sync) clip + optimizer step; returns logs."""
        raise NotImplementedError

    def after_optimizer_step(self) -> None:
        """Once per optimizer step: advance the schedulers (and EMA, where used)."""
        if not self.accelerator.optimizer_step_was_skipped:
            for sched in self.schedulers:
                sched.step()

    @property
    def lr(self) -> float:
        return float(self.optimizers[0].param_groups[0]["lr"]) if self.optimizers else math.nan

    def eval_model(self) -> nn.Module:
        """The model to validate and publish (unwrapped; EMA weights where used)."""
        return self.accelerator.unwrap_model(self.model)

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: SampleBatch, generator: torch.Generator) -> Prediction:
        raise NotImplementedError

    def after_validation(self, metrics: dict[str, float]) -> dict[str, float]:
        """Hook after the in-distribution validation (e.g. rcGAN's beta_SD auto-tune); returns logs."""
        return {}

    def attach_validation(self, dataset: Any) -> None:
        """Hook once before training with the in-distribution validation set (e.g. a fixed batch
        for rcGAN's step-wise beta_SD auto-tune)."""

    def checkpoint_objects(self) -> list[Any]:
        """Objects with ``state_dict``/``load_state_dict`` saved with every checkpoint."""
        return list(self.schedulers)

    def val_keys(self) -> list[str]:
        """Metric names of one validated volume, in a fixed order (the same on every process)."""
        return ["ssim", "psnr", "nmse"]

    # -- helpers ----------------------------------------------------------------------
    def _clip(self, module: nn.Module) -> None:
        if self.recipe.grad_clip is not None and self.accelerator.sync_gradients:
            self.accelerator.clip_grad_norm_(module.parameters(), self.recipe.grad_clip)
