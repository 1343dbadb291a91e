"""What one training step and one validation prediction are for each model family.

- :class:`SupervisedTask` (U-Net, ViT, VarNet, MoDL): the model's ``reconstruct`` on the
  undersampled k-space, centre-cropped to the target, and an image loss (SSIM with the data
  range of the target volume, L1, or both).
- :class:`RCGANTask`: rcGAN (Bendel et al. 2023): one critic step (WGAN-GP + drift) and one
  generator step with ``p_train`` samples per item (L1 of their mean, SD reward, adversarial
  term with the epoch's ``beta_adv``); ``beta_sd`` is auto-tuned after each validation from the
  PSNR gain of the ``p_val``-sample average over a single sample.
- :class:`ScoreTask`: NCSNv2 denoising score matching on complex coil-combined (SENSE) images
  normalised by their 99th-percentile magnitude, with an EMA of the weights; the EMA weights
  are validated and published. Validation denoises at one noise level with Tweedie's formula
  ``x + sigma^2 s(x, sigma)`` (and reports the DSM loss), which needs no slow sampling.

A task prepares its models and optimizers with the ``Accelerator`` (DDP on several processes),
runs inside ``accelerator.accumulate`` (the trainer opens it) and steps its learning-rate
schedulers itself once per optimizer step. Every random draw of a step comes from a generator
seeded by the trainer, so a resumed run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mrizoo.data.slices import SampleBatch, center_crop
from mrizoo.errors import InputError
from mrizoo.models.rcgan import normalized_measurement, stack_coils
from mrizoo.physics.coils import coil_compress, sense_combine
from mrizoo.physics.fft import ifft2c
from mrizoo.train.recipe import DSMParams, RCGANParams, TrainingRecipe, loss_params

__all__ = [
    "Task",
    "SupervisedTask",
    "RCGANTask",
    "ScoreTask",
    "Prediction",
    "make_task",
    "task_family",
    "needs_maps",
]


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


class _Call(nn.Module):
    """Makes a model method the ``forward`` of a module, so DDP synchronises its gradients."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.model, self.method)(*args, **kwargs)


def _optimizer(params: Any, spec: Any, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if spec.name == "adamw" else torch.optim.Adam
    return cls([p for p in params if p.requires_grad], lr=lr, betas=tuple(betas),
               weight_decay=spec.weight_decay)


def task_family(model: nn.Module) -> str:
    """The architecture family of a zoo model (``unet``, ``rcgan``, ...)."""
    entry = getattr(model, "zoo_entry", None)
    if entry is None:
        raise InputError("model has no zoo entry", field="model", expected="a model built by mrizoo.create")
    return entry.model.arch.split("_")[0]


def needs_maps(family: str) -> bool:
    """Whether samples must carry ESPIRiT maps (MoDL's forward model, SENSE images for NCSNv2)."""
    return family in ("modl", "ncsnv2")


def _crop_to(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    shape = tuple(target.shape[-2:])
    return x if tuple(x.shape[-2:]) == shape else center_crop(x, shape)


class Task:
    """Base class: one family's models, optimizers, schedulers and steps."""

    family = ""
    #: whether validation data is undersampled by the recipe's masks (False: fully sampled)
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
        from mrizoo.train.schedules import build_scheduler

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


# ------------------------------------------------------------------------------ supervised


class SupervisedTask(Task):
    """Image-loss training of ``reconstruct`` (U-Net, ViT, VarNet, MoDL)."""

    family = "supervised"

    def __init__(self, model: nn.Module, recipe: TrainingRecipe, accelerator: Any, **kwargs: Any) -> None:
        super().__init__(model, recipe, accelerator, **kwargs)
        from mrizoo.train.losses import build_image_loss

        self.criterion = build_image_loss(recipe.loss)
        opt = _optimizer(model.parameters(), recipe.optimizer, recipe.optimizer.lr, recipe.optimizer.betas)
        self._scheduler(opt)
        self.net, self.optimizer = accelerator.prepare(_Call(model, "reconstruct"), opt)
        self.optimizers = [self.optimizer]

    @property
    def prepared(self) -> list[nn.Module]:
        return [self.net]

    def train_step(self, batch: SampleBatch, mask: torch.Tensor, *, epoch: int,
                   generator: torch.Generator) -> dict[str, float]:
        kspace = batch.kspace * mask.unsqueeze(1)
        out = _crop_to(self.net(kspace, mask, batch.maps), batch.target)
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
        out = _crop_to(model.reconstruct(batch.kspace, batch.mask, batch.maps), batch.target).float()
        loss = float(self.criterion(out, batch.target, batch.max_value))
        return Prediction(pred=out.cpu(), loss=loss)

    def val_keys(self) -> list[str]:
        return ["ssim", "psnr", "nmse", "loss"]


# ----------------------------------------------------------------------------------- rcGAN


class RCGANTask(Task):
    """rcGAN: a critic step, then a generator step with ``p_train`` samples per item."""

    family = "rcgan"

    def __init__(self, model: nn.Module, recipe: TrainingRecipe, accelerator: Any, **kwargs: Any) -> None:
        super().__init__(model, recipe, accelerator, **kwargs)
        from mrizoo.models.rcgan import build_rcgan_discriminator
        from mrizoo.train.losses import BetaAdvSchedule, BetaSDTuner

        p = loss_params(recipe.loss)
        assert isinstance(p, RCGANParams)
        self.params = p
        self.config = model.config
        critic = build_rcgan_discriminator(model.config)
        o = recipe.optimizer
        opt_g = _optimizer(model.parameters(), o, o.lr, o.betas)
        opt_d = _optimizer(critic.parameters(), o, o.d_lr or o.lr, o.d_betas or o.betas)
        self._scheduler(opt_g)
        self._scheduler(opt_d)
        self.gen, self.critic, self.opt_g, self.opt_d = accelerator.prepare(model, critic, opt_g, opt_d)
        self.optimizers = [self.opt_g, self.opt_d]
        self.beta_adv = BetaAdvSchedule(p.beta_adv, p.beta_adv_milestones)
        self.tuner = BetaSDTuner(p.beta_sd, p.p_val, p.autotune_rate, p.beta_sd_autotune)

    @property
    def prepared(self) -> list[nn.Module]:
        return [self.gen, self.critic]

    def checkpoint_objects(self) -> list[Any]:
        return [*self.schedulers, self.tuner]

    def _coils(self, kspace: torch.Tensor) -> torch.Tensor:
        c = self.config.in_coils
        if kspace.shape[1] > c:
            return coil_compress(kspace, c)
        if kspace.shape[1] < c:
            raise InputError(f"the rcGAN takes {c} coils but the data has {kspace.shape[1]}",
                             field="data", expected=f">= {c} coils", got=kspace.shape[1])
        return kspace

    def train_step(self, batch: SampleBatch, mask: torch.Tensor, *, epoch: int,
                   generator: torch.Generator) -> dict[str, float]:
        acc, p = self.accelerator, self.params
        full = self._coils(batch.kspace)
        b, _, h, w = full.shape
        under = full * mask.unsqueeze(1)
        y, mean, std = normalized_measurement(under)
        x = (stack_coils(ifft2c(full)) - mean) / std
        nz = self.config.noise_chans
        gen_module = acc.unwrap_model(self.gen)
        critic_module = acc.unwrap_model(self.critic)

        def noise(n: int) -> torch.Tensor:
            return torch.randn(n, nz, h, w, generator=generator).to(y.device, y.dtype)

        logs: dict[str, float] = {}
        from mrizoo.train.losses import rcgan_discriminator_loss, rcgan_generator_loss

        for _ in range(p.d_steps):
            with torch.no_grad():
                fake = gen_module(y, mask, noise(b))
            d_loss, d_logs = rcgan_discriminator_loss(self.critic, x, fake, y, gp_weight=p.gp_weight,
                                                      drift_weight=p.drift_weight, generator=generator)
            acc.backward(d_loss)
            self._clip(self.critic)
            self.opt_d.step()
            self.opt_d.zero_grad(set_to_none=True)
            logs.update(d_logs, d_loss=float(d_loss.detach()))

        critic_module.requires_grad_(False)
        try:
            k = p.p_train
            out = self.gen(y.repeat(k, 1, 1, 1), mask.repeat(k, 1, 1), noise(k * b))
            samples = out.view(k, b, *out.shape[1:]).transpose(0, 1)
            g_loss, g_logs = rcgan_generator_loss(critic_module, samples, x, y, beta_adv=self.beta_adv(epoch),
                                                  beta_sd=self.tuner.beta_sd, adv_reduction=p.adv_reduction)
            acc.backward(g_loss)
        finally:
            critic_module.requires_grad_(True)
        self._clip(self.gen)
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        logs.update(g_logs, loss=float(g_loss.detach()), beta_sd=self.tuner.beta_sd)
        return logs

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: SampleBatch, generator: torch.Generator) -> Prediction:
        kspace = self._coils(batch.kspace)
        maps = batch.maps if kspace.shape[1] == batch.kspace.shape[1] else None
        coil = model.sample_coil_images(kspace, batch.mask, self.params.p_val, generator)
        # the model's own coil combination (SENSE with its ESPIRiT settings, or RSS)
        mean = _crop_to(model._combine(coil.mean(0), kspace, maps), batch.target).float()
        single = _crop_to(model._combine(coil[0], kspace, maps), batch.target).float()
        return Prediction(pred=mean.cpu(), extra={"single": single.cpu()})

    def val_keys(self) -> list[str]:
        return ["ssim", "psnr", "nmse", "psnr_single"]

    def after_validation(self, metrics: dict[str, float]) -> dict[str, float]:
        psnr_1, psnr_p = metrics.get("psnr_single"), metrics.get("psnr")
        if psnr_1 is None or psnr_p is None or not (math.isfinite(psnr_1) and math.isfinite(psnr_p)):
            return {"beta_sd": self.tuner.beta_sd}
        gap = self.tuner.gap(psnr_1, psnr_p)
        beta = self.tuner.update(psnr_1, psnr_p)
        return {"beta_sd": beta, "psnr_gain_gap": gap}


# ----------------------------------------------------------------------------------- NCSNv2


def _percentile_normalise(image: torch.Tensor, q: float = 0.99) -> torch.Tensor:
    scale = torch.quantile(image.abs().flatten(1).float(), q, dim=1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return image / scale.view(-1, 1, 1).to(image.real.dtype)


class ScoreTask(Task):
    """NCSNv2 denoising score matching with an EMA of the weights."""

    family = "ncsnv2"
    undersampled_validation = False

    def __init__(self, model: nn.Module, recipe: TrainingRecipe, accelerator: Any, **kwargs: Any) -> None:
        super().__init__(model, recipe, accelerator, **kwargs)
        from mrizoo.train.losses import EMA

        p = loss_params(recipe.loss)
        assert isinstance(p, DSMParams)
        self.params = p
        opt = _optimizer(model.parameters(), recipe.optimizer, recipe.optimizer.lr, recipe.optimizer.betas)
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
        img = _percentile_normalise(_crop_to(img, batch.target))
        return torch.view_as_real(img).permute(0, 3, 1, 2).contiguous()

    def train_step(self, batch: SampleBatch, mask: torch.Tensor, *, epoch: int,
                   generator: torch.Generator) -> dict[str, float]:
        from mrizoo.train.losses import dsm_loss

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
        from mrizoo.train.losses import dsm_loss

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


_TASKS: dict[str, type[Task]] = {
    "unet": SupervisedTask, "vit": SupervisedTask, "varnet": SupervisedTask, "modl": SupervisedTask,
    "rcgan": RCGANTask, "ncsnv2": ScoreTask,
}


def make_task(model: nn.Module, recipe: TrainingRecipe, accelerator: Any, *, total_steps: int,
              steps_per_epoch: int) -> Task:
    """The task for the model's architecture family."""
    family = task_family(model)
    if family not in _TASKS:
        raise InputError("this architecture has no training task", field="model",
                         expected=f"one of {sorted(_TASKS)}", got=family)
    return _TASKS[family](model, recipe, accelerator, total_steps=total_steps, steps_per_epoch=steps_per_epoch)
