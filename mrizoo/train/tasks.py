"""What one training step and one validation prediction are for each model family.

- :class:`SupervisedTask` (U-Net, ViT, VarNet, MoDL): the model's ``reconstruct`` on the
  undersampled k-space, centre-cropped to the target, and an image loss (SSIM with the data
  range of the target volume, L1, or both).
- :class:`RCGANTask`: rcGAN (Bendel et al. 2023): one critic step (WGAN-GP + drift) and one
  generator step with ``p_train`` samples per item (L1 of their mean, SD reward, adversarial
  term with the schedule's ``beta_adv``); ``beta_sd`` is auto-tuned from Prop. 3.3's error ratio
  of ``p_val`` samples, after each validation or every few steps on a fixed validation batch.
  The model's own input preparation (``rcgan_input``: SVD coil compression to its virtual coils)
  turns each training slice into generator input and target, as at inference. The two cGAN
  objectives rcGAN is compared with train the same generator: Adler & Oektem's three-input
  critic (``loss: adler``) and Ohayon et al.'s L2 of the sample mean (``loss: ohayon``).
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

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mrizoo.data.slices import SampleBatch, center_crop
from mrizoo.errors import InputError
from mrizoo.physics.coils import sense_combine
from mrizoo.physics.fft import ifft2c
from mrizoo.train.recipe import DSMParams, GANParams, RCGANParams, TrainingRecipe, loss_params

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


def _move(batch: SampleBatch, device: torch.device) -> SampleBatch:
    def move(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(device)

    return dataclasses.replace(batch, kspace=move(batch.kspace), mask=move(batch.mask), target=move(batch.target),
                               max_value=move(batch.max_value), maps=move(batch.maps))


def _crop_to(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    shape = tuple(target.shape[-2:])
    return x if tuple(x.shape[-2:]) == shape else center_crop(x, shape)


class Task:
    """Base class: one family's models, optimizers, schedulers and steps."""

    family = ""

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


def _pair_critic(config: Any) -> nn.Module:
    """Adler & Oektem's three-input critic: rcGAN's critic with its first conv widened to
    ``cat(a, b, y)``; called as ``critic(a, cat(b, y))``."""
    from mrizoo.models.rcgan import build_rcgan_discriminator

    critic = build_rcgan_discriminator(config)
    first = critic.initial_layers[0]
    critic.initial_layers[0] = nn.Conv2d(3 * config.image_chans, first.out_channels, 3, padding=1)
    return critic


class RCGANTask(Task):
    """rcGAN and the two cGANs it is compared with, one critic step then one generator step.

    ``loss.name``: ``rcgan`` (L1 of the mean of ``p_train`` samples, SD reward, critic term),
    ``ohayon`` (L2 of the mean of ``p_train`` samples, critic term) or ``adler`` (three-input
    critic on (truth, sample) versus (sample, sample) pairs, no supervised term). Every
    validation draws ``p_val`` samples and logs Prop. 3.3's ratio ``E_1 / E_P``, its ideal
    ``2P/(P+1)`` and beta_SD (also into the validation metrics, so the training summary keeps
    them); rcGAN's beta_SD is tuned from that ratio (see :class:`~mrizoo.train.recipe.RCGANParams`).
    """

    family = "rcgan"

    def __init__(self, model: nn.Module, recipe: TrainingRecipe, accelerator: Any, **kwargs: Any) -> None:
        super().__init__(model, recipe, accelerator, **kwargs)
        from mrizoo.models.rcgan import build_rcgan_discriminator
        from mrizoo.train.losses import BetaAdvSchedule, BetaSDTuner

        p = loss_params(recipe.loss)
        assert isinstance(p, GANParams)
        self.params = p
        self.objective = recipe.loss.name
        self.config = model.config
        critic = _pair_critic(model.config) if self.objective == "adler" else build_rcgan_discriminator(model.config)
        o = recipe.optimizer
        opt_g = _optimizer(model.parameters(), o, o.lr, o.betas)
        opt_d = _optimizer(critic.parameters(), o, o.d_lr or o.lr, o.d_betas or o.betas)
        self._scheduler(opt_g)
        self._scheduler(opt_d)
        self.gen, self.critic, self.opt_g, self.opt_d = accelerator.prepare(model, critic, opt_g, opt_d)
        self.optimizers = [self.opt_g, self.opt_d]
        self.beta_adv = BetaAdvSchedule(p.beta_adv, p.beta_adv_milestones)
        if isinstance(p, RCGANParams):
            self.tuner = BetaSDTuner(p.beta_sd, p.p_val, p.autotune_rate, p.beta_sd_autotune,
                                     max_beta=math.inf if p.beta_sd_max is None else p.beta_sd_max)
            self.tune_every = p.autotune_every if p.beta_sd_autotune else None
        else:  # no SD reward: the ratio is recorded, nothing is tuned
            self.tuner = BetaSDTuner(0.0, p.p_val, 0.0, enabled=False)
            self.tune_every = None
        self._tune_set: list[tuple[SampleBatch, torch.Tensor | None]] = []
        self._step_logs: dict[str, float] = {}

    @property
    def prepared(self) -> list[nn.Module]:
        return [self.gen, self.critic]

    def checkpoint_objects(self) -> list[Any]:
        return [*self.schedulers, self.tuner]

    # -- input ---------------------------------------------------------------------------
    def _inputs(self, kspace: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(y, x, mask)``: the generator's conditioning and the target in its normalised domain.

        ``kspace`` is fully sampled (any coil count); the model's own input preparation masks
        and compresses it, exactly as at inference.
        """
        from mrizoo.models.rcgan import rcgan_input

        inp = rcgan_input(self.config, kspace, mask, full=kspace)
        assert inp.target is not None
        return inp.y, inp.target, inp.mask

    # -- training ------------------------------------------------------------------------
    def train_step(self, batch: SampleBatch, mask: torch.Tensor, *, epoch: int,
                   generator: torch.Generator) -> dict[str, float]:
        from mrizoo.train.losses import (
            adler_discriminator_loss,
            adler_generator_loss,
            ohayon_generator_loss,
            rcgan_discriminator_loss,
            rcgan_generator_loss,
        )

        acc, p = self.accelerator, self.params
        y, x, mask = self._inputs(batch.kspace, mask)
        b, _, h, w = y.shape
        nz = self.config.noise_chans
        gen_module = acc.unwrap_model(self.gen)
        critic_module = acc.unwrap_model(self.critic)
        adler = self.objective == "adler"

        def noise(n: int) -> torch.Tensor:
            return torch.randn(n, nz, h, w, generator=generator).to(y.device, y.dtype)

        def pair_critic(module: Any) -> Any:
            return lambda a, c, cond: module(a, torch.cat([c, cond], dim=1))

        logs: dict[str, float] = {}
        for _ in range(p.d_steps):
            with torch.no_grad():
                fake = gen_module(y.repeat(2, 1, 1, 1), mask.repeat(2, 1, 1), noise(2 * b)) if adler \
                    else gen_module(y, mask, noise(b))
            if adler:
                d_loss, d_logs = adler_discriminator_loss(pair_critic(self.critic), x, fake[:b], fake[b:], y,
                                                          gp_weight=p.gp_weight, drift_weight=p.drift_weight,
                                                          generator=generator)
            else:
                d_loss, d_logs = rcgan_discriminator_loss(self.critic, x, fake, y, gp_weight=p.gp_weight,
                                                          drift_weight=p.drift_weight, generator=generator)
            acc.backward(d_loss)
            self._clip(self.critic)
            self.opt_d.step()
            self.opt_d.zero_grad(set_to_none=True)
            logs.update(d_logs, d_loss=float(d_loss.detach()))

        critic_module.requires_grad_(False)
        try:
            k = 2 if adler else p.p_train  # type: ignore[attr-defined]
            out = self.gen(y.repeat(k, 1, 1, 1), mask.repeat(k, 1, 1), noise(k * b))
            samples = out.view(k, b, *out.shape[1:]).transpose(0, 1)
            beta_adv = self.beta_adv(self.tuner.steps if p.beta_adv_unit == "step" else epoch)
            if adler:
                g_loss, g_logs = adler_generator_loss(pair_critic(critic_module), samples[:, 0], samples[:, 1], x, y,
                                                      beta_adv=beta_adv)
            elif self.objective == "ohayon":
                g_loss, g_logs = ohayon_generator_loss(critic_module, samples, x, y, beta_adv=beta_adv,
                                                       adv_reduction=p.adv_reduction)  # type: ignore[attr-defined]
            else:
                g_loss, g_logs = rcgan_generator_loss(critic_module, samples, x, y, beta_adv=beta_adv,
                                                      beta_sd=self.tuner.beta_sd,
                                                      adv_reduction=p.adv_reduction)  # type: ignore[attr-defined]
            acc.backward(g_loss)
        finally:
            critic_module.requires_grad_(True)
        self._clip(self.gen)
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)
        logs.update(g_logs, loss=float(g_loss.detach()), beta_sd=self.tuner.beta_sd, beta_adv=beta_adv)
        self._step_logs = logs  # a tune after this step adds its ratio here (the trainer logs it)
        return logs

    def after_optimizer_step(self) -> None:
        super().after_optimizer_step()
        if self.accelerator.optimizer_step_was_skipped:
            return
        self.tuner.steps += 1
        if self.tune_every is not None and self._tune_set and self.tuner.steps % self.tune_every == 0:
            ratio = self._tune_ratio()
            self.tuner.update_from_ratio(ratio, tune_step=float(self.tuner.steps))
            self._step_logs.update(tune_e1_over_ep=ratio)

    # -- the fixed auto-tune batch -----------------------------------------------------------
    def attach_validation(self, dataset: Any) -> None:
        """Keep ``autotune_slices`` validation slices, spread over the set, for the step-wise tune."""
        if self.tune_every is None:
            return
        from mrizoo.data.slices import collate_samples

        n = min(self.params.autotune_slices, len(dataset))  # type: ignore[attr-defined]
        picks = sorted({round(i * (len(dataset) - 1) / max(1, n - 1)) for i in range(n)})
        groups: dict[int, list[int]] = {}
        for i in picks:
            groups.setdefault(int(dataset.examples[i][0]), []).append(i)
        model = self.accelerator.unwrap_model(self.gen)
        self._tune_set = []
        for idx in groups.values():
            batch = collate_samples([dataset[i] for i in idx])
            batch = _move(batch, self.accelerator.device)
            maps = batch.maps
            if maps is None and self.config.coil_combine == "sense":
                maps = model._maps(batch.kspace, None)  # once: ESPIRiT is slow next to the generator
            self._tune_set.append((batch, maps))

    @torch.no_grad()
    def _tune_ratio(self) -> float:
        """Prop. 3.3's ``E_1 / E_P`` of ``p_val`` samples on the fixed batch (eval mode, fixed codes)."""
        from mrizoo.train.data import derive_seed

        model = self.accelerator.unwrap_model(self.gen)
        was_training = model.training
        model.eval()
        p = self.params.p_val
        gen = torch.Generator().manual_seed(derive_seed(self.recipe.seed, "autotune"))
        e1 = ep = 0.0
        try:
            for batch, maps in self._tune_set:
                coil = model.sample_coil_images(batch.kspace, batch.mask, p, gen)
                target = batch.target.float()
                for i in range(p):
                    one = _crop_to(model._combine(coil[i], batch.kspace, maps), batch.target).float()
                    e1 += float(((one - target) ** 2).sum()) / p
                mean = _crop_to(model._combine(coil.mean(0), batch.kspace, maps), batch.target).float()
                ep += float(((mean - target) ** 2).sum())
        finally:
            model.train(was_training)
        return e1 / ep if ep > 0 else math.inf

    # -- validation ----------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: nn.Module, batch: SampleBatch, generator: torch.Generator) -> Prediction:
        coil = model.sample_coil_images(batch.kspace, batch.mask, self.params.p_val, generator)
        # the model's own coil combination (SENSE with its ESPIRiT settings, or RSS)
        mean = _crop_to(model._combine(coil.mean(0), batch.kspace, batch.maps), batch.target).float()
        single = _crop_to(model._combine(coil[0], batch.kspace, batch.maps), batch.target).float()
        return Prediction(pred=mean.cpu(), extra={"single": single.cpu()})

    def val_keys(self) -> list[str]:
        return ["ssim", "psnr", "nmse", "psnr_single"]

    def after_validation(self, metrics: dict[str, float]) -> dict[str, float]:
        """Prop. 3.3's ratio from the PSNRs of one sample and of the ``p_val``-sample mean (one data
        range, so ``E_1 / E_P = 10^((PSNR_P - PSNR_1) / 10)``); beta_SD updated when tuned per
        validation. The values are added to ``metrics`` too (the training summary keeps them)."""
        psnr_1, psnr_p = metrics.get("psnr_single"), metrics.get("psnr")
        out: dict[str, float] = {"beta_sd": self.tuner.beta_sd, "e1_over_ep_ideal": self.tuner.ideal_ratio}
        if psnr_1 is not None and psnr_p is not None and math.isfinite(psnr_1) and math.isfinite(psnr_p):
            out["e1_over_ep"] = 10.0 ** ((psnr_p - psnr_1) / 10.0)
            out["psnr_gain_gap"] = self.tuner.gap(psnr_1, psnr_p)
            if self.tune_every is None and self.tuner.enabled:
                out["beta_sd"] = self.tuner.update(psnr_1, psnr_p)
        if self.tuner.history and "tune_step" in self.tuner.history[-1]:
            out["tune_e1_over_ep"] = self.tuner.history[-1]["ratio"]
        metrics.update(out)
        return dict(out)


# ----------------------------------------------------------------------------------- NCSNv2


def _percentile_normalise(image: torch.Tensor, q: float = 0.99) -> torch.Tensor:
    scale = torch.quantile(image.abs().flatten(1).float(), q, dim=1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return image / scale.view(-1, 1, 1).to(image.real.dtype)


class ScoreTask(Task):
    """NCSNv2 denoising score matching with an EMA of the weights."""

    family = "ncsnv2"

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
