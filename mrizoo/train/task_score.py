"""NCSNv2 training: denoising score matching on complex coil-combined (SENSE) images normalised
by their 99th-percentile magnitude, with an EMA of the weights; the EMA weights are validated and
published. Validation denoises at one noise level with Tweedie's formula ``x + sigma^2 s(x, sigma)``
(and reports the DSM loss), which needs no slow sampling.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mrizoo.data.slices import SampleBatch
from mrizoo.errors import InputError
from mrizoo.physics.coils import sense_combine
from mrizoo.physics.fft import ifft2c
from mrizoo.train.ema import EMA
from mrizoo.train.losses import dsm_loss
from mrizoo.train.recipe import DSMParams, TrainingRecipe, loss_params
from mrizoo.train.task_base import Prediction, Task, crop_to, make_optimizer

__all__ = ["ScoreTask"]


def _percentile_normalise(image: torch.Tensor, q: float = 0.99) -> torch.Tensor:
    scale = torch.quantile(image.abs().flatten(1).float(), q, dim=1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return image / scale.view(-1, 1, 1).to(image.real.dtype)


class ScoreTask(Task):
    """NCSNv2 denoising score matching with an EMA of the weights."""

    undersampled_validation = False  # validation denoises fully sampled images

    def __init__(self, model: nn.Module, recipe: TrainingRecipe, accelerator: Any, **kwargs: Any) -> None:
        super().__init__(model, recipe, accelerator, **kwargs)
        p = loss_params(recipe.loss)
        assert isinstance(p, DSMParams)
        self.params = p
        opt = make_optimizer(model.parameters(), recipe.optimizer, recipe.optimizer.lr, recipe.optimizer.betas)
        self._scheduler(opt)
        self.ema = EMA(model, p.ema)
        self.net, self.optimizer = accelerator.prepare(model, opt)
        self.optimizers = [self.optimizer]
        sig = accelerator.unwrap_model(self.net).net.sigmas.detach().cpu()
        self.val_level = int(torch.argmin((sig.log() - math.log(0.1)).abs()))  # the level nearest 0.1

    @property
    def prepared(self) -> list[nn.Module]:
        return [self.net]

    def checkpoint_objects(self) -> list[Any]:
        return [*self.schedulers, self.ema]

    @staticmethod
    def images(batch: SampleBatch) -> torch.Tensor:
        """Normalised complex SENSE images ``[B, 2, h, w]`` (real, imag) of fully sampled k-space."""
        if batch.maps is None:
            raise InputError("score-model training needs coil maps in the samples", field="maps")
        img = sense_combine(ifft2c(batch.kspace), batch.maps)
        img = _percentile_normalise(crop_to(img, batch.target))
        return torch.view_as_real(img).permute(0, 3, 1, 2).contiguous()

    def train_step(self, batch: SampleBatch, mask: torch.Tensor, *, epoch: int,
                   generator: torch.Generator) -> dict[str, float]:
        x = self.images(batch)
        sigmas = self.accelerator.unwrap_model(self.net).net.sigmas
        loss = dsm_loss(self.net, x, sigmas, anneal_power=self.params.anneal_power, generator=generator)
        self.accelerator.backward(loss)
        self._clip(self.net)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": float(loss.detach())}

    def after_optimizer_step(self) -> None:
        super().after_optimizer_step()
        self.ema.update(self.accelerator.unwrap_model(self.net))

    def eval_model(self) -> nn.Module:
        model = self.accelerator.unwrap_model(self.net)
        return self.ema.averaged(model)

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: SampleBatch, generator: torch.Generator) -> Prediction:
        x = self.images(batch)
        net = model.net
        b = x.shape[0]
        loss = float(dsm_loss(net, x, net.sigmas, anneal_power=self.params.anneal_power, generator=generator))
        labels = torch.full((b,), self.val_level, dtype=torch.long, device=x.device)
        sigma = float(net.sigmas[self.val_level])
        noisy = x + sigma * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        denoised = noisy + sigma**2 * net(noisy, labels)
        mag = lambda t: torch.linalg.vector_norm(t, dim=1).float().cpu()  # noqa: E731
        clean = mag(x)
        return Prediction(pred=mag(denoised), target=clean, max_value=clean.flatten(1).amax(1), loss=loss)

    def val_keys(self) -> list[str]:
        return ["ssim", "psnr", "nmse", "loss"]
