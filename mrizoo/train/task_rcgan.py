"""rcGAN training (Bendel et al. 2023) and the two cGAN objectives it is compared with.

One critic step (WGAN-GP + drift) and one generator step with ``p_train`` samples per item (L1 of
their mean, SD reward, adversarial term with the schedule's ``beta_adv``); ``beta_sd`` is
auto-tuned from Prop. 3.3's error ratio of ``p_val`` samples, after each validation or every few
steps on a fixed validation batch. The model's own input preparation (``rcgan_input``: SVD coil
compression to its virtual coils) turns each training slice into generator input and target, as
at inference. The two cGAN objectives train the same generator: Adler & Oektem's three-input
critic (``loss: adler``) and Ohayon et al.'s L2 of the sample mean (``loss: ohayon``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mrizoo.data.slices import SampleBatch, collate_samples
from mrizoo.metrics.calibration import calibration_stats
from mrizoo.models.rcgan import build_rcgan_discriminator, rcgan_input
from mrizoo.train.data import derive_seed
from mrizoo.train.gan_losses import (
    adler_discriminator_loss,
    adler_generator_loss,
    ohayon_generator_loss,
    rcgan_discriminator_loss,
    rcgan_generator_loss,
)
from mrizoo.train.gan_tuning import BetaAdvSchedule, BetaSDTuner
from mrizoo.train.recipe import GANParams, RCGANParams, TrainingRecipe, loss_params
from mrizoo.train.task_base import Prediction, Task, crop_to, make_optimizer, to_device

__all__ = ["RCGANTask", "pair_critic", "tune_ratio"]


def pair_critic(config: Any) -> nn.Module:
    """Adler & Oektem's three-input critic: rcGAN's critic with its first conv widened to
    ``cat(a, b, y)``; called as ``critic(a, cat(b, y))``."""
    critic = build_rcgan_discriminator(config)
    first = critic.initial_layers[0]
    critic.initial_layers[0] = nn.Conv2d(3 * config.image_chans, first.out_channels, 3, padding=1)
    return critic


@torch.no_grad()
def tune_ratio(model: nn.Module, batches: list[tuple[SampleBatch, torch.Tensor | None]], p: int,
               generator: torch.Generator) -> float:
    """Prop. 3.3's ``E_1 / E_P`` of ``p`` samples per slice of ``batches`` (``(batch, maps)``), in eval mode.

    Defined as ``mrizoo evaluate`` and the demo define it (:mod:`mrizoo.metrics.calibration`): the
    samples as ``model.sample`` returns them (coil-combined magnitude), their mean as the P-sample
    estimate, errors pooled over every pixel, so the tune aims at the ratio that is reported.
    """
    was_training = model.training
    model.eval()
    stats = None
    try:
        for batch, maps in batches:
            draws = model.sample(batch.kspace, batch.mask, maps, n=p, generator=generator).samples
            part = calibration_stats(draws.float().cpu(), batch.target.float().cpu())  # crops to the target
            stats = part if stats is None else stats.merge(part)
    finally:
        model.train(was_training)
    return math.inf if stats is None else stats.summary().prop33_ratio


class RCGANTask(Task):
    """rcGAN and the two cGANs it is compared with, one critic step then one generator step.

    ``loss.name``: ``rcgan`` (L1 of the mean of ``p_train`` samples, SD reward, critic term),
    ``ohayon`` (L2 of the mean of ``p_train`` samples, critic term) or ``adler`` (three-input
    critic on (truth, sample) versus (sample, sample) pairs, no supervised term). Every
    validation draws ``p_val`` samples and logs Prop. 3.3's ratio ``E_1 / E_P``, its ideal
    ``2P/(P+1)`` and beta_SD (also into the validation metrics, so the training summary keeps
    them); rcGAN's beta_SD is tuned from that ratio (see :class:`~mrizoo.train.recipe.RCGANParams`).
    """

    def __init__(self, model: nn.Module, recipe: TrainingRecipe, accelerator: Any, **kwargs: Any) -> None:
        super().__init__(model, recipe, accelerator, **kwargs)
        p = loss_params(recipe.loss)
        assert isinstance(p, GANParams)
        self.params = p
        self.objective = recipe.loss.name
        self.config = model.config
        critic = pair_critic(model.config) if self.objective == "adler" else build_rcgan_discriminator(model.config)
        o = recipe.optimizer
        opt_g = make_optimizer(model.parameters(), o, o.lr, o.betas)
        opt_d = make_optimizer(critic.parameters(), o, o.d_lr or o.lr, o.d_betas or o.betas)
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
        inp = rcgan_input(self.config, kspace, mask, full=kspace)
        assert inp.target is not None
        return inp.y, inp.target, inp.mask

    # -- training ------------------------------------------------------------------------
    def train_step(self, batch: SampleBatch, mask: torch.Tensor, *, epoch: int,
                   generator: torch.Generator) -> dict[str, float]:
        acc, p = self.accelerator, self.params
        y, x, mask = self._inputs(batch.kspace, mask)
        b, _, h, w = y.shape
        nz = self.config.noise_chans
        gen_module = acc.unwrap_model(self.gen)
        critic_module = acc.unwrap_model(self.critic)
        adler = self.objective == "adler"

        def noise(n: int) -> torch.Tensor:
            return torch.randn(n, nz, h, w, generator=generator).to(y.device, y.dtype)

        def as_pair(module: Any) -> Any:
            return lambda a, c, cond: module(a, torch.cat([c, cond], dim=1))

        logs: dict[str, float] = {}
        for _ in range(p.d_steps):
            with torch.no_grad():
                fake = gen_module(y.repeat(2, 1, 1, 1), mask.repeat(2, 1, 1), noise(2 * b)) if adler \
                    else gen_module(y, mask, noise(b))
            if adler:
                d_loss, d_logs = adler_discriminator_loss(as_pair(self.critic), x, fake[:b], fake[b:], y,
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
                g_loss, g_logs = adler_generator_loss(as_pair(critic_module), samples[:, 0], samples[:, 1], x, y,
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
        n = min(self.params.autotune_slices, len(dataset))  # type: ignore[attr-defined]
        picks = sorted({round(i * (len(dataset) - 1) / max(1, n - 1)) for i in range(n)})
        groups: dict[int, list[int]] = {}
        for i in picks:
            groups.setdefault(int(dataset.examples[i][0]), []).append(i)
        model = self.accelerator.unwrap_model(self.gen)
        self._tune_set = []
        for idx in groups.values():
            batch = collate_samples([dataset[i] for i in idx])
            batch = to_device(batch, self.accelerator.device)
            maps = batch.maps
            if maps is None and self.config.coil_combine == "sense":
                maps = model._maps(batch.kspace, None)  # once: ESPIRiT is slow next to the generator
            self._tune_set.append((batch, maps))

    def _tune_ratio(self) -> float:
        """Prop. 3.3's ``E_1 / E_P`` of ``p_val`` samples on the fixed batch (fixed codes)."""
        gen = torch.Generator().manual_seed(derive_seed(self.recipe.seed, "autotune"))
        return tune_ratio(self.accelerator.unwrap_model(self.gen), self._tune_set, self.params.p_val, gen)

    # -- validation ----------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: nn.Module, batch: SampleBatch, generator: torch.Generator) -> Prediction:
        # the samples as ``model.sample`` combines them; the estimate is their mean, as evaluate's
        post = model.sample(batch.kspace, batch.mask, batch.maps, n=self.params.p_val, generator=generator)
        mean = crop_to(post.mean, batch.target).float()
        single = crop_to(post.samples[0], batch.target).float()
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
