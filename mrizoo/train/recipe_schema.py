"""The schema of a training recipe: frozen dataclasses whose fields declare their own valid values.

Each field's range, length or allowed names is a :class:`~mrizoo._dataclass_io.Rule` given with
:func:`~mrizoo._dataclass_io.checked`, enforced by :func:`~mrizoo._dataclass_io.from_dict` when a
recipe is read (``training.optimizer.lr: learning rate must be positive (expected > 0, got 0.0)``).
Rules that relate several fields (one data source, centre fractions per acceleration, the loss
fitting the model ...) live in :mod:`mrizoo.train.recipe_checks`; reading files in
:mod:`mrizoo.train.recipe`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from mrizoo._dataclass_io import Rule, checked, from_dict

__all__ = [
    "SyntheticData", "DataSource", "DataSpec", "MaskSpec", "MaskAlternative", "LossSpec", "SSIMParams",
    "L1Params", "SSIML1Params", "GANParams", "RCGANParams", "AdlerParams", "OhayonParams", "DSMParams",
    "OptimizerSpec", "ScheduleSpec", "EarlyStoppingSpec", "CheckpointSpec", "TrainingRecipe", "LOSS_PARAMS",
    "METRIC_HIGHER_IS_BETTER", "loss_params",
]

#: Validation metrics known to early stopping and whether larger is better.
METRIC_HIGHER_IS_BETTER: dict[str, bool] = {"ssim": True, "psnr": True, "nmse": False, "loss": False}


def mask_names() -> list[str]:
    """The registered mask families (read when a recipe is checked, so that plug-in masks count)."""
    from mrizoo.masks import list_masks  # mrizoo.masks imports torch: only when a mask type is checked

    return list_masks()


# rules shared by several fields
_POSITIVE = {"ge": 1}
_MASK_TYPE = {"choices": mask_names, "problem": "unknown mask type"}
_ACCELERATIONS = {"min_len": 1, "problem": "at least one acceleration needed",
                  "each": Rule(gt=1, problem="acceleration must exceed 1")}
_CENTER_FRACTIONS = {"each": Rule(gt=0, lt=1, problem="centre fraction outside (0, 1)")}
_MASK_WEIGHT = {"gt": 0, "problem": "a mask family's weight must be positive"}
_BETAS = {"each": Rule(ge=0, lt=1, problem="Adam beta outside [0, 1)")}
_LR = {"gt": 0, "finite": True, "problem": "learning rate must be positive"}
_FINITE_NON_NEGATIVE = {"ge": 0, "lt": math.inf, "problem": "must be finite and not negative"}
_SSIM_WINDOW = {"ge": 3, "odd": True, "problem": "window must be odd and >= 3"}
_NON_NEGATIVE = {"ge": 0}


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class SyntheticData:
    """Random multi-coil volumes generated on the fly (smoke runs and tests)."""

    volumes: int = checked(4, **_POSITIVE)
    slices: int = checked(4, **_POSITIVE)
    shape: tuple[int, int] = checked((64, 64), each=Rule(ge=8, problem="image too small"))
    coils: int = checked(4, **_POSITIVE)
    seed: int = 0
    snr_db: float | None = 30.0


@dataclass(frozen=True)
class DataSource:
    """One data set: a named pool (``mrizoo.pools``), fastMRI-convention .h5 folders/files, or synthetic."""

    pool: str | None = None
    folders: tuple[str, ...] = ()
    synthetic: SyntheticData | None = None
    max_slices: int | None = checked(None, **_POSITIVE)


@dataclass(frozen=True)
class DataSpec:
    """Training, validation and named out-of-distribution validation sets.

    A batch holds ``slices_per_batch`` slices of ONE volume (volumes differ in size).
    """

    train: DataSource
    val: DataSource
    ood: dict[str, DataSource] = field(default_factory=dict)
    target: Literal["rss", "mvue"] = "rss"
    crop: tuple[int, int] | None = checked(None, each=Rule(ge=1))
    slices_per_batch: int = checked(1, **_POSITIVE)
    num_workers: int = checked(0, **_NON_NEGATIVE)


@dataclass(frozen=True)
class MaskSpec:
    """Undersampling masks drawn during training (a registered ``mrizoo.masks`` name).

    ``center_fractions`` pair with ``accelerations`` (one value, or one per acceleration) and are
    passed only to mask families that take a centre fraction; ``params`` are extra mask keywords.
    """

    type: str = checked("equispaced_fraction", **_MASK_TYPE)
    accelerations: tuple[float, ...] = checked((4.0,), **_ACCELERATIONS)
    center_fractions: tuple[float, ...] = checked((0.08,), **_CENTER_FRACTIONS)
    fresh_per_batch: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    weight: float = checked(1.0, **_MASK_WEIGHT)
    mix: tuple[MaskAlternative, ...] = ()


@dataclass(frozen=True)
class MaskAlternative:
    """Another mask family drawn in training beside the main one (``masks.mix``).

    With fresh masks per batch each slice draws its family with probability proportional to
    ``weight`` (the main family's is ``masks.weight``), so one model learns the 1D and 2D patterns
    users bring. Validation sets keep the main family.
    """

    type: str = checked(**_MASK_TYPE)
    accelerations: tuple[float, ...] = checked((4.0,), **_ACCELERATIONS)
    center_fractions: tuple[float, ...] = checked((0.08,), **_CENTER_FRACTIONS)
    params: dict[str, Any] = field(default_factory=dict)
    weight: float = checked(1.0, **_MASK_WEIGHT)


# ----------------------------------------------------------------------------- loss


@dataclass(frozen=True)
class LossSpec:
    """The training objective; ``params`` are checked against the loss's parameter class."""

    name: Literal["ssim", "l1", "ssim_l1", "rcgan", "adler", "ohayon", "dsm"]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SSIMParams:
    """fastMRI SSIM loss: window, constants; data range = per-volume maximum of the target."""

    win_size: int = checked(7, **_SSIM_WINDOW)
    k1: float = checked(0.01, gt=0)
    k2: float = checked(0.03, gt=0)


@dataclass(frozen=True)
class L1Params:
    """Mean absolute error (no parameters)."""


@dataclass(frozen=True)
class SSIML1Params:
    """``ssim_weight * (1 - SSIM) + l1_weight * L1`` (the weights not both zero)."""

    win_size: int = checked(7, **_SSIM_WINDOW)
    k1: float = checked(0.01, gt=0)
    k2: float = checked(0.03, gt=0)
    ssim_weight: float = checked(1.0, **_NON_NEGATIVE)
    l1_weight: float = checked(1.0, **_NON_NEGATIVE)


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

    beta_adv: tuple[float, ...] = checked((1e-2, 1e-4, 1e-5), each=Rule(ge=0))
    beta_adv_milestones: tuple[int, ...] = checked((4, 22), each=Rule(ge=0))
    beta_adv_unit: Literal["epoch", "step"] = "epoch"
    gp_weight: float = checked(10.0, **_NON_NEGATIVE)
    drift_weight: float = checked(1e-3, **_NON_NEGATIVE)
    p_val: int = checked(8, ge=2, problem="the error ratio of Prop. 3.3 needs at least 2 samples")
    d_steps: int = checked(1, **_POSITIVE)


_P_TRAIN = {"ge": 2, "problem": "needs at least 2 samples per item"}


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

    p_train: int = checked(2, **_P_TRAIN)
    beta_sd: float = checked(1.0, **_NON_NEGATIVE)
    beta_sd_autotune: bool = True
    autotune_rate: float = checked(0.02, **_NON_NEGATIVE)
    autotune_every: int | None = checked(None, ge=1, problem="must be positive (or null: at each validation)")
    autotune_slices: int = checked(4, **_POSITIVE)
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

    p_train: int = checked(8, **_P_TRAIN)
    adv_reduction: Literal["mean", "sum_batch"] = "mean"


@dataclass(frozen=True)
class DSMParams:
    """Denoising score matching over the model's geometric noise ladder (Song & Ermon).

    The per-level loss is weighted by ``sigma**anneal_power``; ``ema`` is the decay of the
    exponential moving average of the weights (the EMA weights are the ones published).
    """

    ema: float = checked(0.999, ge=0, lt=1, problem="EMA decay outside [0, 1)")
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


def loss_params(spec: LossSpec) -> Any:
    """The typed parameter dataclass of a loss spec (defaults filled in)."""
    return from_dict(LOSS_PARAMS[spec.name], dict(spec.params), prefix="loss.params")


# ----------------------------------------------------------------------------- optimisation


@dataclass(frozen=True)
class OptimizerSpec:
    """Adam(W); ``d_lr``/``d_betas`` for a GAN critic (default: same as the generator)."""

    lr: float = checked(**_LR)
    name: Literal["adam", "adamw"] = "adam"
    betas: tuple[float, float] = checked((0.9, 0.999), **_BETAS)
    weight_decay: float = checked(0.0, **_FINITE_NON_NEGATIVE)
    d_lr: float | None = checked(None, **_LR)
    d_betas: tuple[float, float] | None = checked(None, **_BETAS)


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
    warmup_fraction: float = checked(0.01, ge=0, lt=1)
    final_fraction: float = checked(0.0, ge=0, le=1)
    start_fraction: float = checked(0.0, ge=0, le=1)
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
    metric: str = checked("ssim", choices=sorted(METRIC_HIGHER_IS_BETTER), problem="unknown metric")
    patience: int = checked(3, **_POSITIVE)
    min_delta: float = checked(1e-4, **_FINITE_NON_NEGATIVE)
    ood_set: str | None = None


@dataclass(frozen=True)
class CheckpointSpec:
    """Checkpoint cadence (``None``: at every validation) and how many to keep."""

    every_steps: int | None = checked(None, **_POSITIVE)
    keep: int = checked(2, ge=1, problem="must keep at least one checkpoint")


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
    grad_clip: float | None = checked(1.0, gt=0, lt=math.inf, problem="must be positive and finite (or null for none)")
    epochs: int | None = checked(None, **_POSITIVE)
    steps: int | None = checked(None, **_POSITIVE)
    validate_every: int | None = checked(None, ge=1, expected=">= 1 steps")
    precision: Literal["no", "fp16", "bf16"] = "no"
    grad_accumulation: int = checked(1, **_POSITIVE)
    seed: int = checked(0, **_NON_NEGATIVE)
    early_stopping: EarlyStoppingSpec = field(default_factory=EarlyStoppingSpec)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    smoke: dict[str, Any] = field(default_factory=dict)
