"""The cGAN objectives of the rcGAN trainer and the beta_SD auto-tune: Prop. 3.3's error ratio on
closed-form Gaussian posteriors, Adler & Oektem's and Ohayon et al.'s losses against hand-computed
values, the recipe options, and the step-wise tune inside a real (tiny) training run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from mrizoo.errors import InputError
from mrizoo.train.gan_losses import (
    adler_discriminator_loss,
    adler_generator_loss,
    ideal_error_ratio,
    ideal_psnr_gain,
    ohayon_generator_loss,
    posterior_error_ratio,
)
from mrizoo.train.gan_tuning import BetaSDTuner
from mrizoo.train.recipe import AdlerParams, OhayonParams, RCGANParams, load_recipe, loss_params

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- Prop. 3.3


def _gaussian_case(n: int, p: int, spread: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x | y ~ N(mu(y), 1) for n items; p samples N(mu(y), spread^2) each (spread 1: the posterior)."""
    g = torch.Generator().manual_seed(seed)
    mu = 3 * torch.randn(n, 16, generator=g)
    x = mu + torch.randn(n, 16, generator=g)
    samples = mu.unsqueeze(1) + spread * torch.randn(n, p, 16, generator=g)
    return samples, x


@pytest.mark.parametrize("p", [2, 8])
def test_error_ratio_of_true_posterior_samples_is_2p_over_p_plus_1(p: int) -> None:
    samples, x = _gaussian_case(20000, p, 1.0)
    assert posterior_error_ratio(samples, x) == pytest.approx(ideal_error_ratio(p), rel=0.02)
    # closed form for spread s: (1 + s^2) / (1 + s^2 / P); collapsed samples gain nothing
    for s in (0.0, 0.5, 2.0):
        samples, x = _gaussian_case(20000, p, s, seed=1)
        assert posterior_error_ratio(samples, x) == pytest.approx((1 + s * s) / (1 + s * s / p), rel=0.02)
    with pytest.raises(InputError, match="2 samples"):
        posterior_error_ratio(samples[:, :1], x)


def test_tuner_gap_from_the_ratio_equals_the_psnr_gap_and_beta_stays_in_bounds() -> None:
    samples, x = _gaussian_case(2000, 8, 0.5)
    ratio = posterior_error_ratio(samples, x)
    peak = float(x.abs().max())
    mse_1 = float(((samples - x.unsqueeze(1)) ** 2).mean())
    mse_p = float(((samples.mean(1) - x) ** 2).mean())
    psnr_1, psnr_p = (10 * math.log10(peak**2 / m) for m in (mse_1, mse_p))
    tuner = BetaSDTuner(beta_sd=1.0, p_val=8, rate=0.5, max_beta=1.3)
    assert tuner.gap_from_ratio(ratio) == pytest.approx(tuner.gap(psnr_1, psnr_p), abs=1e-5)  # float32 sums
    assert tuner.gap_from_ratio(ratio) > 0.5  # too narrow: the SD reward must grow
    assert tuner.update_from_ratio(ratio) == 1.3  # ... up to max_beta
    assert tuner.update_from_ratio(ideal_error_ratio(8)) == 1.3  # no gap, no move
    for _ in range(10):
        tuner.update_from_ratio(50.0)  # far too wide
    assert tuner.beta_sd == 0.0 and tuner.history[-1]["gap"] == pytest.approx(
        ideal_psnr_gain(8) - 10 * math.log10(50.0))
    restored = BetaSDTuner()
    restored.load_state_dict(json.loads(json.dumps(tuner.state_dict())))
    assert restored.state_dict() == tuner.state_dict()


# ----------------------------------------------------------------------------- Adler & Ohayon


def _linear_pair_critic(w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor):
    def critic(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((a * w1).flatten(1).sum(1) + (b * w2).flatten(1).sum(1) + (y * w3).flatten(1).sum(1)).unsqueeze(1)
    return critic


def test_adler_losses_match_hand_computed_values() -> None:
    g = torch.Generator().manual_seed(0)
    x, f1, f2, y, w1, w2, w3 = (torch.randn(3, 2, 4, 4, generator=g) for _ in range(7))
    w1, w2, w3 = w1[0], w2[0], w3[0]
    critic = _linear_pair_critic(w1, w2, w3)

    def dot(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (a * w).flatten(1).sum(1)

    mixed = 0.5 * (dot(x, w1) + dot(f1, w2)) + 0.5 * (dot(f2, w1) + dot(x, w2)) + dot(y, w3)
    pair = dot(f1, w1) + dot(f2, w2) + dot(y, w3)
    adv = mixed.mean() - pair.mean()
    # a linear critic has the same gradient norm everywhere: GP = (sqrt(|w1|^2 + |w2|^2) - 1)^2
    gp = (math.sqrt(float((w1**2).sum() + (w2**2).sum())) - 1) ** 2
    d_loss, logs = adler_discriminator_loss(critic, x, f1, f2, y, gp_weight=10.0, drift_weight=1e-3,
                                            generator=torch.Generator().manual_seed(1))
    assert float(d_loss) == pytest.approx(float(-adv + 10 * gp + 1e-3 * (mixed**2).mean()), rel=1e-5)
    assert logs["d_gp"] == pytest.approx(gp, rel=1e-5)

    f1g, f2g = f1.clone().requires_grad_(True), f2.clone().requires_grad_(True)
    g_loss, _ = adler_generator_loss(critic, f1g, f2g, x, y, beta_adv=0.5)
    assert float(g_loss.detach()) == pytest.approx(0.5 * float(adv), rel=1e-5)
    g_loss.backward()  # d/df1 = beta (1/2 w2 - w1) / B, d/df2 = beta (1/2 w1 - w2) / B
    torch.testing.assert_close(f1g.grad, (0.5 * (0.5 * w2 - w1) / 3).expand_as(f1))
    torch.testing.assert_close(f2g.grad, (0.5 * (0.5 * w1 - w2) / 3).expand_as(f2))


def test_ohayon_loss_is_the_l2_of_the_sample_mean_whose_spread_term_is_var_over_p() -> None:
    samples, x = _gaussian_case(4000, 8, 0.7)
    loss, logs = ohayon_generator_loss(None, samples, x, x, beta_adv=0.0)
    assert float(loss) == pytest.approx(float(((samples.mean(1) - x) ** 2).mean()), rel=1e-6)
    # Prop. 3.2's decomposition: E||x - mean_P|| ^2 = E_mmse + sigma^2 / P (here 1 + 0.49 / 8)
    assert float(loss) == pytest.approx(1 + 0.49 / 8, rel=0.03)
    assert logs["g_std"] == pytest.approx(0.7, rel=0.05)
    critic = lambda s, c: (s - c).flatten(1).sum(1, keepdim=True)  # noqa: E731
    with_adv, logs = ohayon_generator_loss(critic, samples, x, x, beta_adv=0.1)
    assert float(with_adv) == pytest.approx(float(loss) - 0.1 * float((samples - x.unsqueeze(1)).sum(-1).mean()),
                                            rel=1e-5)
    with pytest.raises(InputError, match="samples must be"):
        ohayon_generator_loss(None, samples[0], x, x, beta_adv=0.0)


def test_adler_critic_reads_two_images_and_the_measurement() -> None:
    from mrizoo.models.rcgan_nets import RCGAN_TINY
    from mrizoo.train.task_rcgan import pair_critic as _pair_critic

    critic = _pair_critic(RCGAN_TINY)
    c = RCGAN_TINY.image_chans
    a, b, y = (torch.randn(2, c, 16, 16) for _ in range(3))
    assert critic.initial_layers[0].in_channels == 3 * c
    assert critic(a, torch.cat([b, y], 1)).shape == (2, 1)
    assert not torch.allclose(critic(a, torch.cat([b, y], 1)), critic(b, torch.cat([a, y], 1)))  # order matters


# ----------------------------------------------------------------------------- recipes


def _recipe_file(tmp_path: Path, loss: dict, name: str = "r.yaml") -> Path:
    training = {"model": "rcgan-brain-r4", "data": {"train": {"pool": "a"}, "val": {"pool": "b"}},
                "masks": {"type": "gro", "accelerations": [4], "center_fractions": []},
                "loss": loss, "optimizer": {"lr": 1e-3}, "epochs": 1}
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"training": training}))
    return path


def test_loss_options_and_their_checks(tmp_path: Path) -> None:
    recipe, _ = load_recipe(_recipe_file(tmp_path, {"name": "ohayon"}))
    assert isinstance(loss_params(recipe.loss), OhayonParams) and loss_params(recipe.loss).p_train == 8
    recipe, _ = load_recipe(_recipe_file(tmp_path, {"name": "adler", "params": {"gp_weight": 5.0}}))
    assert isinstance(loss_params(recipe.loss), AdlerParams)
    recipe, _ = load_recipe(_recipe_file(tmp_path, {"name": "rcgan", "params": {"autotune_every": 10}}))
    assert isinstance(loss_params(recipe.loss), RCGANParams) and loss_params(recipe.loss).autotune_every == 10
    with pytest.raises(InputError, match="unknown key") as info:  # Adler's loss averages no samples
        load_recipe(_recipe_file(tmp_path, {"name": "adler", "params": {"p_train": 2}}))
    assert "p_train" in str(info.value)
    bad = [
           ({"name": "ohayon", "params": {"p_train": 1}}, "training.loss.params.p_train"),
           ({"name": "rcgan", "params": {"autotune_every": 0}}, "training.loss.params.autotune_every"),
           ({"name": "rcgan", "params": {"beta_sd": 2.0, "beta_sd_max": 1.0}}, "training.loss.params.beta_sd_max"),
           ({"name": "ohayon", "params": {"p_val": 1}}, "training.loss.params.p_val")]
    for loss, field in bad:
        with pytest.raises(InputError) as info:
            load_recipe(_recipe_file(tmp_path, loss))
        assert info.value.field == field, (loss, info.value)


# ----------------------------------------------------------------------------- training


TUNED = """
training:
  model: rcgan-brain-r4
  model_overrides: {in_coils: 2, chans: 4, depth: 2, disc_chans: [4, 4], disc_input_size: null,
                    reconstruct_samples: 2, coil_combine: rss}
  data:
    train: {synthetic: {volumes: 2, slices: 2, shape: [32, 32], coils: 2, seed: 0}}
    val: {synthetic: {volumes: 2, slices: 2, shape: [32, 32], coils: 2, seed: 1}}
    slices_per_batch: 2
  masks: {type: equispaced, accelerations: [4], center_fractions: [0.08]}
  loss: {name: rcgan, params: {p_val: 4, autotune_every: 1, autotune_slices: 3, autotune_rate: 0.3,
                               beta_adv: [1.0e-2, 1.0e-4, 1.0e-5], beta_adv_milestones: [0, 1], beta_adv_unit: step}}
  optimizer: {lr: 1.0e-3, betas: [0.0, 0.99]}
  schedule: {name: constant}
  steps: 4
  validate_every: 4
  seed: 3
"""


@pytest.mark.usefixtures("private_mrizoo_home")
def test_step_wise_tune_follows_eq_23_logs_the_ratio_and_resumes_exactly(tmp_path: Path) -> None:
    from mrizoo.train.loop import TrainOptions, train

    recipe = tmp_path / "tuned.yaml"
    recipe.write_text(TUNED)
    run = tmp_path / "run"
    train(recipe, TrainOptions(out=run, progress=False, install=False))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert [r["beta_adv"] for r in steps] == [1e-2, 1e-4, 1e-5, 1e-5]  # milestones in steps done: 0, 1
    # every step: beta_SD += 0.3 * ([2P/(P+1)]_dB - [E_1/E_P]_dB) from the fixed batch's ratio
    beta = 1.0
    for r in steps:
        assert r["beta_sd"] == pytest.approx(beta, rel=1e-9)  # the weight this step trained with
        beta = max(0.0, beta + 0.3 * (ideal_psnr_gain(4) - 10 * math.log10(r["tune_e1_over_ep"])))
        assert r["tune_e1_over_ep"] >= 1.0 - 1e-6  # averaging never hurts the squared error
    vals = [r for r in records if r["kind"] == "val"]
    assert [v["step"] for v in vals] == [4]
    for v in vals:
        assert v["e1_over_ep_ideal"] == pytest.approx(2 * 4 / 5)
        assert v["e1_over_ep"] == pytest.approx(10 ** ((v["id"]["psnr"] - v["id"]["psnr_single"]) / 10))
        assert v["id"]["beta_sd"] == v["beta_sd"]  # in the metrics, so the summary keeps them
    summary = json.loads((run / "training_summary.json").read_text())
    assert {"beta_sd", "e1_over_ep", "e1_over_ep_ideal"} <= set(summary["validation"])

    # interrupted after 2 steps and resumed: the same beta_SD path as the uninterrupted run
    cut = tmp_path / "cut"
    train(recipe, TrainOptions(out=cut, progress=False, install=False, max_steps=2))
    train(recipe, TrainOptions(out=cut, progress=False, install=False, resume=True))
    resumed = [json.loads(line) for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["beta_sd"] for r in resumed if r["kind"] == "train"] == [r["beta_sd"] for r in steps]


def test_the_step_wise_tune_measures_the_ratio_that_evaluate_reports() -> None:
    """The auto-tune's E_1/E_P is Prop. 3.3's ratio of the calibration metrics: magnitude samples as
    ``sample`` returns them, their mean as the estimate, squared errors pooled over the batches."""
    from types import SimpleNamespace

    from mrizoo.masks import create_mask
    from mrizoo.metrics.calibration import calibration
    from mrizoo.models.rcgan import RCGAN
    from mrizoo.models.rcgan_nets import RCGANConfig
    from mrizoo.physics import ifft2c, rss
    from mrizoo.train.task_rcgan import tune_ratio

    torch.manual_seed(0)
    model = RCGAN(RCGANConfig(in_coils=2, chans=4, depth=2, disc_chans=(4, 4), disc_input_size=None,
                              reconstruct_samples=2, coil_combine="rss"))
    model.train()
    mask = create_mask("equispaced_fraction", (32, 32), seed=0, acceleration=4, center_fraction=0.08).mask
    batches = []
    for scale in (1.0, 3.0):  # two batches with different data ranges
        full = scale * torch.randn(2, 3, 32, 32, dtype=torch.complex64)
        batches.append((SimpleNamespace(kspace=full * mask, mask=mask, target=rss(ifft2c(full))), None))

    got = tune_ratio(model, batches, 4, torch.Generator().manual_seed(5))
    assert model.training  # the mode is restored

    model.eval()
    gen = torch.Generator().manual_seed(5)  # the same draws, one batch after the other
    draws = [model.sample(b.kspace, b.mask, n=4, generator=gen).samples for b, _ in batches]
    single = err = 0.0
    for d, (b, _) in zip(draws, batches):  # errors in units of each batch's data range, then pooled
        x = b.target / b.target.max()
        s = d / b.target.max()
        single += float(((s - x) ** 2).mean(0).sum())
        err += float(((s.mean(0) - x) ** 2).sum())
    assert got == pytest.approx(single / err, rel=1e-5)
    assert got > 1.0
    one = tune_ratio(model, batches[:1], 4, torch.Generator().manual_seed(5))
    assert one == pytest.approx(calibration(draws[0], batches[0][0].target).prop33_ratio, rel=1e-5)
