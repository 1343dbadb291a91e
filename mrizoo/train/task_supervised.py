"""Supervised training (U-Net, ViT, VarNet, MoDL): the model's ``reconstruct`` on the
undersampled k-space, centre-cropped to the target, and an image loss (SSIM with the data range
of the target volume, L1, or both)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mrizoo.data.slices import SampleBatch
from mrizoo.train.losses import build_image_loss
from mrizoo.train.recipe import TrainingRecipe
from mrizoo.train.task_base import CallMethod, Prediction, Task, crop_to, make_optimizer

__all__ = ["SupervisedTask"]


class SupervisedTask(Task):
    """Image-loss training of ``reconstruct`` (U-Net, ViT, VarNet, MoDL)."""

    def __init__(self, model: nn.Module, recipe: TrainingRecipe, accelerator: Any, **kwargs: Any) -> None:
        super().__init__(model, recipe, accelerator, **kwargs)
        self.criterion = build_image_loss(recipe.loss)
        opt = make_optimizer(model.parameters(), recipe.optimizer, recipe.optimizer.lr, recipe.optimizer.betas)
        self._scheduler(opt)
        self.net, self.optimizer = accelerator.prepare(CallMethod(model, "reconstruct"), opt)
        self.optimizers = [self.optimizer]

    @property
    def prepared(self) -> list[nn.Module]:
        return [self.net]

    def train_step(self, batch: SampleBatch, mask: torch.Tensor, *, epoch: int,
                   generator: torch.Generator) -> dict[str, float]:
        kspace = batch.kspace * mask.unsqueeze(1)
        out = crop_to(self.net(kspace, mask, batch.maps), batch.target)
        loss = self.criterion(out.float(), batch.target, batch.max_value)
        self.accelerator.backward(loss)
        self._clip(self.net)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": float(loss.detach())}

    def eval_model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.net).model

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: SampleBatch, generator: torch.Generator) -> Prediction:
        out = crop_to(model.reconstruct(batch.kspace, batch.mask, batch.maps), batch.target).float()
        loss = float(self.criterion(out, batch.target, batch.max_value))
        return Prediction(pred=out.cpu(), loss=loss)

    def val_keys(self) -> list[str]:
        return ["ssim", "psnr", "nmse", "loss"]
