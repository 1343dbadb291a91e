"""Training: recipes (what to train), losses, learning-rate schedules, early stopping and the loop.

Names load on first use, so ``import mrizoo.train`` stays cheap (no torch, no accelerate).
"""

from __future__ import annotations

from mrizoo._lazy import lazy_attributes

_EXPORTS: dict[str, str] = {
    # recipes
    **{name: "mrizoo.train.recipe" for name in (
        "SyntheticData", "DataSource", "DataSpec", "MaskSpec", "MaskAlternative", "LossSpec", "OptimizerSpec", "ScheduleSpec",
        "EarlyStoppingSpec", "CheckpointSpec", "TrainingRecipe", "RecipeInfo", "SSIMParams", "L1Params",
        "SSIML1Params", "GANParams", "RCGANParams", "AdlerParams", "OhayonParams", "DSMParams", "loss_params", "load_recipe", "list_recipes",
        "validate_recipe", "deep_merge", "METRIC_HIGHER_IS_BETTER",
    )},
    # losses
    **{name: "mrizoo.train.losses" for name in (
        "SSIMLoss", "L1Loss", "SSIML1Loss", "build_image_loss", "ssim_map", "dsm_loss", "sample_noise_levels",
    )},
    **{name: "mrizoo.train.gan_losses" for name in (
        "gradient_penalty", "rcgan_discriminator_loss", "rcgan_generator_loss", "sd_reward_coefficient",
        "adler_discriminator_loss", "adler_generator_loss", "ohayon_generator_loss", "posterior_error_ratio",
        "ideal_error_ratio", "ideal_psnr_gain",
    )},
    **{name: "mrizoo.train.gan_tuning" for name in ("BetaAdvSchedule", "BetaSDTuner")},
    "EMA": "mrizoo.train.ema",
    # schedules
    **{name: "mrizoo.train.schedules" for name in (
        "warmup_linear_lambda", "step_lambda", "constant_lambda", "build_scheduler",
    )},
    # early stopping
    **{name: "mrizoo.train.early_stopping" for name in (
        "Decision", "EarlyStopping", "agree_across_processes",
    )},
    # the training loop
    **{name: "mrizoo.train.loop" for name in ("train", "TrainOptions", "TrainResult")},
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
