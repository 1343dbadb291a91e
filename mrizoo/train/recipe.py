"""Training recipes: the ``training:`` mapping of a zoo entry file, as validated frozen dataclasses.

A recipe says what to train (a zoo architecture, optionally initialised from weights), on which
data (pools, folders or synthetic volumes), with which masks, loss, optimizer, schedule and
early-stopping rule. ``load_recipe`` reads a shipped recipe by name or any YAML file by path;
``smoke=True`` deep-merges the recipe's ``smoke:`` mapping onto it (a run of seconds on a CPU).

Every problem is an :class:`~mrizoo.errors.InputError` naming the file and the dotted key
(``training.optimizer.lr``).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mrizoo._dataclass_io import from_dict
from mrizoo._registry import suggestion_hint
from mrizoo._yaml import read_yaml
from mrizoo.errors import InputError

__all__ = [
    "SyntheticData",
    "DataSource",
    "DataSpec",
    "MaskSpec",
    "MaskAlternative",
    "LossSpec",
    "OptimizerSpec",
    "ScheduleSpec",
    "EarlyStoppingSpec",
    "CheckpointSpec",
    "TrainingRecipe",
    "RecipeInfo",
    "SSIMParams",
    "L1Params",
    "SSIML1Params",
    "GANParams",
    "RCGANParams",
    "AdlerParams",
    "OhayonParams",
    "DSMParams",
    "LOSS_PARAMS",
    "METRIC_HIGHER_IS_BETTER",
    "SUPERVISED_ARCHS",
    "loss_params",
    "load_recipe",
    "list_recipes",
    "validate_recipe",
    "deep_merge",
]


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class SyntheticData:
    """Random multi-coil volumes generated on the fly (smoke runs and tests)."""

    volumes: int = 4
    slices: int = 4
    shape: tuple[int, int] = (64, 64)
    coils: int = 4
    seed: int = 0
    snr_db: float | None = 30.0


@dataclass(frozen=True)
class DataSource:
    """One data set: a named pool (``mrizoo.pools``), fastMRI-convention .h5 folders/files, or synthetic."""

    pool: str | None = None
    folders: tuple[str, ...] = ()
    synthetic: SyntheticData | None = None
    max_slices: int | None = None


@dataclass(frozen=True)
class DataSpec:
    """Training, validation and named out-of-distribution validation sets.

    A batch holds ``slices_per_batch`` slices of ONE volume (volumes differ in size).
    """

    train: DataSource
    val: DataSource
    ood: dict[str, DataSource] = field(default_factory=dict)
    target: Literal["rss", "mvue"] = "rss"
    crop: tuple[int, int] | None = None
    slices_per_batch: int = 1
    num_workers: int = 0


@dataclass(frozen=True)
class MaskSpec:
    """Undersampling masks drawn during training (a registered ``mrizoo.masks`` name).

    ``center_fractions`` pair with ``accelerations`` (one value, or one per acceleration) and are
    passed only to mask families that take a centre fraction; ``params`` are extra mask keywords.
    """

    type: str = "equispaced_fraction"
    accelerations: tuple[float, ...] = (4.0,)
    center_fractions: tuple[float, ...] = (0.08,)
    fresh_per_batch: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    mix: tuple[MaskAlternative, ...] = ()


@dataclass(frozen=True)
class MaskAlternative:
    """Another mask family drawn in training beside the main one (``masks.mix``).

    With fresh masks per batch each slice draws its family with probability proportional to
    ``weight`` (the main family's is ``masks.weight``), so one model learns the 1D and 2D patterns
    users bring. Validation sets keep the main family.
    """

    type: str
    accelerations: tuple[float, ...] = (4.0,)
    center_fractions: tuple[float, ...] = (0.08,)
    params: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0


# ----------------------------------------------------------------------------- loss


@dataclass(frozen=True)
class LossSpec:
    """The training objective; ``params`` are checked against the loss's parameter class."""

    name: Literal["ssim", "l1", "ssim_l1", "rcgan", "adler", "ohayon", "dsm"]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SSIMParams:
    """fastMRI SSIM loss: window, constants; data range = per-volume maximum of the target."""

    win_size: int = 7
    k1: float = 0.01
    k2: float = 0.03


@dataclass(frozen=True)
class L1Params:
    """Mean absolute error (no parameters)."""


@dataclass(frozen=True)
class SSIML1Params:
    """``ssim_weight * (1 - SSIM) + l1_weight * L1``."""

    win_size: int = 7
    k1: float = 0.01
    k2: float = 0.03
    ssim_weight: float = 1.0
    l1_weight: float = 1.0


@dataclass(frozen=True)
class GANParams:
    """What the three cGAN objectives of the rcGAN trainer share (critic, weights, validation).

    ``beta_adv[i]`` applies while the 0-based epoch (``beta_adv_unit: step``: the number of
    optimizer steps done) is ``<= beta_adv_milestones[i]``, the last value after the last
    milestone; steps let a run shorter than an epoch follow the paper's schedule (1e-2 for its
    first 5%, 1e-4 to 23%, 1e-5 after). The critic is trained ``d_steps`` times per generator step
    with a WGAN-GP penalty (``gp_weight``) and drift (``drift_weight``). Every validation draws
    ``p_val`` samples and logs Prop. 3.3's ratio ``E_1 / E_P`` against ``2P/(P+1)``.
    """

    beta_adv: tuple[float, ...] = (1e-2, 1e-4, 1e-5)
    beta_adv_milestones: tuple[int, ...] = (4, 22)
    beta_adv_unit: Literal["epoch", "step"] = "epoch"
    gp_weight: float = 10.0
    drift_weight: float = 1e-3
    p_val: int = 8
    d_steps: int = 1


@dataclass(frozen=True)
class RCGANParams(GANParams):
    """rcGAN (Bendel et al. 2023): ``beta_adv L_adv + L1(mean of p_train samples) - beta_sd SD reward``.

    ``beta_sd`` multiplies the SD reward's nominal coefficient ``sqrt(2 / (pi P (P+1)))``. With
    ``beta_sd_autotune`` it follows Eq. 23 (``beta_sd += autotune_rate * gap``, the gap in dB
    between ``2P/(P+1)`` and the measured ``E_1 / E_P`` of ``p_val`` samples), bounded to
    ``[0, beta_sd_max]``: after each validation on the whole validation set (the paper, once per
    epoch), or, with ``autotune_every`` set, every that many optimizer steps on a fixed batch of
    ``autotune_slices`` validation slices (fixed masks and codes), so that a short run converges.
    ``adv_reduction``: ``mean`` of the critic over samples and items, or ``sum_batch`` (summed
    over items, as the authors' code).
    """

    p_train: int = 2
    beta_sd: float = 1.0
    beta_sd_autotune: bool = True
    autotune_rate: float = 0.02
    autotune_every: int | None = None
    autotune_slices: int = 4
    beta_sd_max: float | None = None
    adv_reduction: Literal["mean", "sum_batch"] = "mean"


@dataclass(frozen=True)
class AdlerParams(GANParams):
    """Adler & Oektem's cGAN: a critic ``D(a, b, y)`` that tells (truth, sample) pairs from
    (sample, sample) pairs; the generator loss is ``beta_adv L_adv^adler`` alone (Bendel et al.,
    Eq. 5 and Sec. 4.2)."""


@dataclass(frozen=True)
class OhayonParams(GANParams):
    """Ohayon et al.'s cGAN: ``beta_adv L_adv + ||x - mean of p_train samples||_2^2`` (their code: P = 8)."""

    p_train: int = 8
    adv_reduction: Literal["mean", "sum_batch"] = "mean"


@dataclass(frozen=True)
class DSMParams:
    """Denoising score matching over the model's geometric noise ladder (Song & Ermon).

    The per-level loss is weighted by ``sigma**anneal_power``; ``ema`` is the decay of the
    exponential moving average of the weights (the EMA weights are the ones published).
    """

    ema: float = 0.999
    anneal_power: float = 2.0


LOSS_PARAMS: dict[str, type] = {
    "ssim": SSIMParams,
    "l1": L1Params,
    "ssim_l1": SSIML1Params,
    "rcgan": RCGANParams,
    "adler": AdlerParams,
    "ohayon": OhayonParams,
    "dsm": DSMParams,
}

#: Architecture families trained with an image loss (ssim / l1 / ssim_l1).
SUPERVISED_ARCHS = ("unet", "vit", "varnet", "modl")
_LOSS_ARCHS: dict[str, tuple[str, ...]] = {
    "ssim": SUPERVISED_ARCHS,
    "l1": SUPERVISED_ARCHS,
    "ssim_l1": SUPERVISED_ARCHS,
    "rcgan": ("rcgan",),
    "adler": ("rcgan",),
    "ohayon": ("rcgan",),
    "dsm": ("ncsnv2",),
}

#: Validation metrics known to early stopping and whether larger is better.
METRIC_HIGHER_IS_BETTER: dict[str, bool] = {"ssim": True, "psnr": True, "nmse": False, "loss": False}


def loss_params(spec: LossSpec) -> Any:
    """The typed parameter dataclass of a loss spec (defaults filled in)."""
    return from_dict(LOSS_PARAMS[spec.name], dict(spec.params), prefix="loss.params")


# ----------------------------------------------------------------------------- optimisation


@dataclass(frozen=True)
class OptimizerSpec:
    """Adam(W); ``d_lr``/``d_betas`` for a GAN critic (default: same as the generator)."""

    lr: float
    name: Literal["adam", "adamw"] = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    d_lr: float | None = None
    d_betas: tuple[float, float] | None = None


@dataclass(frozen=True)
class ScheduleSpec:
    """Learning-rate schedule over optimizer steps.

    ``warmup_linear``: linear warm-up from ``start_fraction * lr`` to ``lr`` over
    ``warmup_fraction`` of all steps, then linear decay to ``final_fraction * lr``; PyTorch's
    ``OneCycleLR(pct_start=p, div_factor=d, final_div_factor=f, anneal_strategy="linear")`` is
    ``warmup_fraction=p, start_fraction=1/d, final_fraction=1/(d*f)``. ``step``: multiply by
    ``gamma`` every ``step_size`` epochs; ``constant``: no change.
    """

    name: Literal["constant", "warmup_linear", "step"] = "warmup_linear"
    warmup_fraction: float = 0.01
    final_fraction: float = 0.0
    start_fraction: float = 0.0
    step_size: int = 0
    gamma: float = 0.1


@dataclass(frozen=True)
class EarlyStoppingSpec:
    """When to stop and which validation to keep (see :mod:`mrizoo.train.early_stopping`).

    ``paper``: stop when the in-distribution gain over the last ``patience`` validations falls
    below ``min_delta``; ``ood``: keep the best OOD validation, stop after ``patience`` OOD drops
    while in-distribution still improves. ``ood_set`` picks one OOD set (default: their mean).
    """

    rule: Literal["none", "paper", "ood"] = "none"
    metric: str = "ssim"
    patience: int = 3
    min_delta: float = 1e-4
    ood_set: str | None = None


@dataclass(frozen=True)
class CheckpointSpec:
    """Checkpoint cadence (``None``: at every validation) and how many to keep."""

    every_steps: int | None = None
    keep: int = 2


@dataclass(frozen=True)
class TrainingRecipe:
    """Everything needed to train one zoo model reproducibly; exactly one of ``epochs``/``steps``."""

    model: str
    data: DataSpec
    loss: LossSpec
    optimizer: OptimizerSpec
    masks: MaskSpec = field(default_factory=MaskSpec)
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    grad_clip: float | None = 1.0
    epochs: int | None = None
    steps: int | None = None
    validate_every: int | None = None
    precision: Literal["no", "fp16", "bf16"] = "no"
    grad_accumulation: int = 1
    seed: int = 0
    early_stopping: EarlyStoppingSpec = field(default_factory=EarlyStoppingSpec)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    smoke: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecipeInfo:
    """Where a recipe came from: its name (file stem), file path and the file's sha256."""

    name: str
    path: str
    sha256: str


# ----------------------------------------------------------------------------- validation


class _Check:
    """Raises InputError for ``training.<key>`` of one file."""

    def __init__(self, source: str, note: str = "") -> None:
        self.source, self.note = source, note

    def fail(self, key: str, problem: str, *, expected: Any = None, got: Any = None) -> None:
        raise InputError(problem + self.note, path=self.source, field=f"training.{key}",
                         expected=expected, got=got)

    def require(self, ok: bool, key: str, problem: str, *, expected: Any = None, got: Any = None) -> None:
        if not ok:
            self.fail(key, problem, expected=expected, got=got)


def _check_source(c: _Check, key: str, src: DataSource) -> None:
    given = [n for n, v in (("pool", src.pool), ("folders", src.folders), ("synthetic", src.synthetic)) if v]
    c.require(len(given) == 1, key, "a data source needs exactly one of pool, folders, synthetic",
              expected="one of them", got=given or "none")
    c.require(src.max_slices is None or src.max_slices >= 1, f"{key}.max_slices", "must be positive",
              expected=">= 1", got=src.max_slices)
    s = src.synthetic
    if s is not None:
        for name in ("volumes", "slices", "coils"):
            c.require(getattr(s, name) >= 1, f"{key}.synthetic.{name}", "must be positive",
                      expected=">= 1", got=getattr(s, name))
        c.require(min(s.shape) >= 8, f"{key}.synthetic.shape", "image too small", expected="both >= 8",
                  got=list(s.shape))


def _check_data(c: _Check, data: DataSpec) -> None:
    _check_source(c, "data.train", data.train)
    _check_source(c, "data.val", data.val)
    for name, src in data.ood.items():
        _check_source(c, f"data.ood.{name}", src)
    if data.crop is not None:
        c.require(min(data.crop) >= 1, "data.crop", "must be positive", expected="(H, W) >= 1", got=list(data.crop))
    c.require(data.slices_per_batch >= 1, "data.slices_per_batch", "must be positive", expected=">= 1",
              got=data.slices_per_batch)
    c.require(data.num_workers >= 0, "data.num_workers", "must not be negative", expected=">= 0",
              got=data.num_workers)


def _check_masks(c: _Check, m: MaskSpec | MaskAlternative, k: str = "masks") -> None:
    from mrizoo.masks import list_masks

    known = list_masks()
    c.require(m.type in known, f"{k}.type", "unknown mask type", expected=f"one of {known}", got=repr(m.type))
    c.require(len(m.accelerations) >= 1, f"{k}.accelerations", "at least one acceleration needed")
    for i, a in enumerate(m.accelerations):
        c.require(a > 1, f"{k}.accelerations[{i}]", "acceleration must exceed 1", expected="> 1", got=a)
    for i, f in enumerate(m.center_fractions):
        c.require(0 < f < 1, f"{k}.center_fractions[{i}]", "centre fraction outside (0, 1)",
                  expected="0 < value < 1", got=f)
    n = len(m.center_fractions)
    c.require(n in (0, 1, len(m.accelerations)), f"{k}.center_fractions",
              "one centre fraction, or one per acceleration",
              expected=f"1 or {len(m.accelerations)} values", got=n)
    c.require(m.weight > 0, f"{k}.weight", "a mask family's weight must be positive", expected="> 0",
              got=m.weight)
    if isinstance(m, MaskSpec):
        c.require(not m.mix or m.fresh_per_batch, f"{k}.mix", "a mix of mask families needs fresh masks",
                  expected="fresh_per_batch: true", got=m.fresh_per_batch)
        for i, alt in enumerate(m.mix):
            _check_masks(c, alt, f"{k}.mix[{i}]")


def _check_loss(c: _Check, loss: LossSpec, arch: str | None) -> None:
    try:
        p = from_dict(LOSS_PARAMS[loss.name], dict(loss.params), source=c.source, prefix="training.loss.params")
    except InputError as err:
        raise InputError(err.problem + c.note, path=c.source, field=err.field, expected=err.expected,
                         got=err.got) from None
    if arch is not None:
        allowed = _LOSS_ARCHS[loss.name]
        c.require(arch in allowed, "loss.name", f"loss {loss.name!r} does not train a {arch!r} model",
                  expected=f"a model of family {list(allowed)}", got=arch)
    k = "loss.params"
    if isinstance(p, (SSIMParams, SSIML1Params)):
        c.require(p.win_size >= 3 and p.win_size % 2 == 1, f"{k}.win_size", "window must be odd and >= 3",
                  got=p.win_size)
        c.require(p.k1 > 0 and p.k2 > 0, k, "k1 and k2 must be positive", got=(p.k1, p.k2))
    if isinstance(p, SSIML1Params):
        c.require(p.ssim_weight >= 0 and p.l1_weight >= 0 and p.ssim_weight + p.l1_weight > 0, k,
                  "weights must be non-negative and not both zero", got=(p.ssim_weight, p.l1_weight))
    if isinstance(p, GANParams):
        c.require(len(p.beta_adv) == len(p.beta_adv_milestones) + 1, f"{k}.beta_adv",
                  "one more value than milestones", expected=f"{len(p.beta_adv_milestones) + 1} values",
                  got=len(p.beta_adv))
        c.require(all(b >= 0 for b in p.beta_adv), f"{k}.beta_adv", "must not be negative", got=list(p.beta_adv))
        ms = list(p.beta_adv_milestones)
        c.require(ms == sorted(set(ms)) and all(m >= 0 for m in ms), f"{k}.beta_adv_milestones",
                  f"must be increasing non-negative {p.beta_adv_unit}s", got=ms)
        c.require(p.gp_weight >= 0, f"{k}.gp_weight", "must not be negative", got=p.gp_weight)
        c.require(p.drift_weight >= 0, f"{k}.drift_weight", "must not be negative", got=p.drift_weight)
        c.require(p.p_val >= 2, f"{k}.p_val", "the error ratio of Prop. 3.3 needs at least 2 samples",
                  expected=">= 2", got=p.p_val)
        c.require(p.d_steps >= 1, f"{k}.d_steps", "must be positive", expected=">= 1", got=p.d_steps)
    if isinstance(p, (RCGANParams, OhayonParams)):
        c.require(p.p_train >= 2, f"{k}.p_train", "needs at least 2 samples per item", expected=">= 2",
                  got=p.p_train)
    if isinstance(p, RCGANParams):
        c.require(p.autotune_rate >= 0, f"{k}.autotune_rate", "must not be negative", got=p.autotune_rate)
        c.require(p.beta_sd >= 0, f"{k}.beta_sd", "must not be negative", got=p.beta_sd)
        if p.autotune_every is not None:
            c.require(p.autotune_every >= 1, f"{k}.autotune_every", "must be positive (or null: at each "
                      "validation)", expected=">= 1 steps", got=p.autotune_every)
        c.require(p.autotune_slices >= 1, f"{k}.autotune_slices", "must be positive", expected=">= 1",
                  got=p.autotune_slices)
        if p.beta_sd_max is not None:
            c.require(p.beta_sd_max >= p.beta_sd, f"{k}.beta_sd_max", "must not be below beta_sd",
                      expected=f">= {p.beta_sd}", got=p.beta_sd_max)
    if isinstance(p, DSMParams):
        c.require(0 <= p.ema < 1, f"{k}.ema", "EMA decay outside [0, 1)", expected="0 <= ema < 1", got=p.ema)


def _check_betas(c: _Check, key: str, betas: tuple[float, float]) -> None:
    for i, b in enumerate(betas):
        c.require(0 <= b < 1, f"{key}[{i}]", "Adam beta outside [0, 1)", expected="0 <= beta < 1", got=b)


def _check_optim(c: _Check, o: OptimizerSpec, s: ScheduleSpec) -> None:
    c.require(o.lr > 0 and math.isfinite(o.lr), "optimizer.lr", "learning rate must be positive",
              expected="> 0", got=o.lr)
    _check_betas(c, "optimizer.betas", o.betas)
    c.require(0 <= o.weight_decay < math.inf, "optimizer.weight_decay", "must be finite and not negative",
              expected="0 <= value < inf", got=o.weight_decay)
    if o.d_lr is not None:
        c.require(o.d_lr > 0 and math.isfinite(o.d_lr), "optimizer.d_lr", "learning rate must be positive",
                  expected="> 0", got=o.d_lr)
    if o.d_betas is not None:
        _check_betas(c, "optimizer.d_betas", o.d_betas)
    c.require(0 <= s.warmup_fraction < 1, "schedule.warmup_fraction", "outside [0, 1)",
              expected="0 <= value < 1", got=s.warmup_fraction)
    c.require(0 <= s.final_fraction <= 1, "schedule.final_fraction", "outside [0, 1]",
              expected="0 <= value <= 1", got=s.final_fraction)
    c.require(0 <= s.start_fraction <= 1, "schedule.start_fraction", "outside [0, 1]",
              expected="0 <= value <= 1", got=s.start_fraction)
    if s.name == "step":
        c.require(s.step_size >= 1, "schedule.step_size", "the step schedule needs a period in epochs",
                  expected=">= 1", got=s.step_size)
        c.require(0 < s.gamma <= 1, "schedule.gamma", "decay factor outside (0, 1]",
                  expected="0 < gamma <= 1", got=s.gamma)


def _check_model(c: _Check, r: TrainingRecipe) -> str:
    """Model name and overrides; returns the architecture family."""
    from mrizoo.zoo.factory import model_config
    from mrizoo.zoo.registry import REGISTRY, UnknownModelError

    try:
        entry = REGISTRY.get(r.model)
    except UnknownModelError as err:
        raise InputError(str(err) + c.note, path=c.source, field="training.model", got=repr(r.model)) from None
    try:
        model_config(r.model, **r.model_overrides)
    except InputError as err:
        sub = (err.field or "").removeprefix("model.config").lstrip(".")
        key = "training.model_overrides" + (f".{sub}" if sub else "")
        raise InputError(err.problem + c.note, path=c.source, field=key, expected=err.expected,
                         got=err.got) from None
    if r.init_from is not None:
        ref = r.init_from
        looks_like_path = ref.startswith(("hf-hub:", ".", "~")) or "/" in ref or "\\" in ref
        if not looks_like_path and ref not in REGISTRY.names():
            c.fail("init_from", "not a zoo name, a folder path or 'hf-hub:org/repo'", got=repr(ref))
    return entry.model.arch.split("_")[0]


def _check_run(c: _Check, r: TrainingRecipe) -> None:
    c.require((r.epochs is None) != (r.steps is None), "epochs",
              "set exactly one of 'epochs' and 'steps'",
              got=f"epochs={r.epochs}, steps={r.steps}")
    if r.epochs is not None:
        c.require(r.epochs >= 1, "epochs", "must be positive", expected=">= 1", got=r.epochs)
    if r.steps is not None:
        c.require(r.steps >= 1, "steps", "must be positive", expected=">= 1", got=r.steps)
    if r.validate_every is not None:
        c.require(r.validate_every >= 1, "validate_every", "must be positive", expected=">= 1 steps",
                  got=r.validate_every)
    if r.grad_clip is not None:
        c.require(0 < r.grad_clip < math.inf, "grad_clip", "must be positive and finite (or null for none)",
                  expected="0 < value < inf", got=r.grad_clip)
    c.require(r.grad_accumulation >= 1, "grad_accumulation", "must be positive", expected=">= 1",
              got=r.grad_accumulation)
    c.require(r.seed >= 0, "seed", "must not be negative", expected=">= 0", got=r.seed)
    es = r.early_stopping
    c.require(es.metric in METRIC_HIGHER_IS_BETTER, "early_stopping.metric", "unknown metric",
              expected=f"one of {sorted(METRIC_HIGHER_IS_BETTER)}", got=repr(es.metric))
    c.require(es.patience >= 1, "early_stopping.patience", "must be positive", expected=">= 1",
              got=es.patience)
    c.require(0 <= es.min_delta < math.inf, "early_stopping.min_delta", "must be finite and not negative",
              expected="0 <= value < inf", got=es.min_delta)
    if es.rule == "ood":
        c.require(bool(r.data.ood), "early_stopping.rule",
                  "the 'ood' rule needs at least one OOD validation set in data.ood", got="no data.ood")
    if es.ood_set is not None:
        c.require(es.ood_set in r.data.ood, "early_stopping.ood_set", "not one of the OOD sets",
                  expected=f"one of {sorted(r.data.ood)}", got=repr(es.ood_set))
    ck = r.checkpoint
    if ck.every_steps is not None:
        c.require(ck.every_steps >= 1, "checkpoint.every_steps", "must be positive", expected=">= 1",
                  got=ck.every_steps)
    c.require(ck.keep >= 1, "checkpoint.keep", "must keep at least one checkpoint", expected=">= 1", got=ck.keep)


def validate_recipe(recipe: TrainingRecipe, source: str = "<recipe>", *, note: str = "") -> None:
    """Check values that types alone cannot (ranges, consistency, known names); raise InputError."""
    c = _Check(source, note)
    _check_run(c, recipe)
    arch = _check_model(c, recipe)
    _check_data(c, recipe.data)
    _check_masks(c, recipe.masks)
    _check_loss(c, recipe.loss, arch)
    _check_optim(c, recipe.optimizer, recipe.schedule)


# ----------------------------------------------------------------------------- loading


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` merged into a copy of ``base``: mappings merge recursively, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def list_recipes() -> list[str]:
    """Names of the shipped files that hold a ``training:`` recipe."""
    root = importlib.resources.files("mrizoo.recipes")
    names = []
    for item in root.iterdir():
        if item.name.endswith(".yaml"):
            doc = read_yaml(str(item), item.read_text()) or {}
            if isinstance(doc, dict) and "training" in doc:
                names.append(item.name.removesuffix(".yaml"))
    return sorted(names)


def _resolve(path_or_name: str | Path) -> tuple[str, bytes]:
    text = str(path_or_name)
    is_path = isinstance(path_or_name, Path) or text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text
    if is_path:
        p = Path(path_or_name).expanduser()
        if not p.is_file():
            raise InputError("recipe file not found", path=str(p), expected="an existing YAML file")
        return str(p), p.read_bytes()
    item = importlib.resources.files("mrizoo.recipes") / f"{text}.yaml"
    if not item.is_file():
        from mrizoo.zoo.names import closest_names

        options = list_recipes()
        close = closest_names(text, options)
        raise InputError(f"unknown recipe {text!r}{suggestion_hint(close)}", field="recipe",
                         expected=f"a recipe file path or one of {options}")
    return str(item), item.read_bytes()


def load_recipe(path_or_name: str | Path, *, smoke: bool = False) -> tuple[TrainingRecipe, RecipeInfo]:
    """Read, merge (``smoke``) and validate a recipe; a name means the shipped ``<name>.yaml``."""
    source, raw = _resolve(path_or_name)
    info = RecipeInfo(name=Path(source).name.rsplit(".", 1)[0], path=source,
                      sha256=hashlib.sha256(raw).hexdigest())
    doc = read_yaml(source, raw)
    if not isinstance(doc, dict) or "training" not in doc:
        raise InputError("no 'training' mapping (this file holds no training recipe)", path=source,
                         field="training")
    mapping = doc["training"]
    if not isinstance(mapping, dict):
        raise InputError("expected a mapping", path=source, field="training", got=type(mapping).__name__)
    note = ""
    if smoke:
        # the recipe as written must be valid too: a smoke override must not hide a value a full run rejects
        written = " (in the recipe as written; --smoke overrides it, but a full run would stop here)"
        base = from_dict(TrainingRecipe, mapping, source=source, prefix="training")
        validate_recipe(base, source, note=written)
        overrides = mapping.get("smoke") or {}
        if not isinstance(overrides, dict):
            raise InputError("expected a mapping", path=source, field="training.smoke",
                             got=type(overrides).__name__)
        if "smoke" in overrides:
            raise InputError("the smoke mapping cannot hold 'smoke'", path=source, field="training.smoke.smoke")
        mapping = deep_merge(mapping, overrides)
        note = " (after merging training.smoke)"
    try:
        recipe = from_dict(TrainingRecipe, mapping, source=source, prefix="training")
    except InputError as err:
        if not note:
            raise
        raise InputError(err.problem + note, path=source, field=err.field, expected=err.expected,
                         got=err.got) from None
    validate_recipe(recipe, source, note=note)
    return recipe, info

