"""Training recipes: every shipped recipe loads (normally and with --smoke), bad recipes fail
with the file and dotted key, and the learning-rate schedules follow PyTorch's own schedulers."""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from mrizoo.errors import InputError
from mrizoo.train.recipe import (
    SUPERVISED_ARCHS,
    MaskAlternative,
    MaskSpec,
    RCGANParams,
    ScheduleSpec,
    TrainingRecipe,
    deep_merge,
    load_recipe,
    loss_params,
    validate_recipe,
)
from mrizoo.train.schedules import build_scheduler, constant_lambda, step_lambda, warmup_linear_lambda

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _doc(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


TRAINING_FILES = sorted(p for p in RECIPES.glob("*.yaml") if "training" in _doc(p))
EXPECTED = {"unet-pool-r4", "unet-knee-r4", "vit-pool-r4", "varnet-pool-r4", "rcgan-brain-r4", "rcgan-brain-r8",
            "ncsnv2-brain", "modl-brain-r4"}


def test_every_trained_zoo_entry_has_its_recipe() -> None:
    names = {p.stem for p in TRAINING_FILES}
    assert EXPECTED <= names
    assert any(n.startswith("finetune-") for n in names)
    for path in RECIPES.glob("*.yaml"):
        entry = _doc(path).get("entry")
        if entry and entry.get("recipe"):
            assert entry["recipe"] in names, f"{path.name}: entry.recipe has no training recipe"
            assert _doc(RECIPES / f"{entry['recipe']}.yaml")["training"]["model"] == entry["name"]


@pytest.mark.parametrize("path", TRAINING_FILES, ids=lambda p: p.stem)
def test_shipped_recipe_loads(path: Path) -> None:
    recipe, info = load_recipe(path)
    assert isinstance(recipe, TrainingRecipe)
    assert info.name == path.stem and info.path == str(path)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    sources = [recipe.data.train, recipe.data.val, *recipe.data.ood.values()]
    assert all(s.pool for s in sources), "full recipes train on named pools"
    assert recipe.smoke, "every recipe needs a smoke mapping"
    if path.stem.startswith("finetune-"):
        assert recipe.init_from and recipe.data.ood and recipe.early_stopping.rule == "ood"


@pytest.mark.parametrize("path", TRAINING_FILES, ids=lambda p: p.stem)
def test_shipped_recipe_smoke_is_tiny(path: Path) -> None:
    from mrizoo.zoo.factory import create

    recipe, _ = load_recipe(path, smoke=True)
    assert (recipe.steps or 0) <= 3 or recipe.epochs == 1
    sources = [recipe.data.train, recipe.data.val, *recipe.data.ood.values()]
    for s in sources:
        assert s.pool is None and not s.folders and s.synthetic is not None
        assert max(s.synthetic.shape) <= 64 and s.synthetic.volumes * s.synthetic.slices <= 8
    assert recipe.data.crop is None or max(recipe.data.crop) <= 64
    assert recipe.init_from is None  # smoke runs need no downloads
    model = create(recipe.model, **recipe.model_overrides)
    assert sum(p.numel() for p in model.parameters()) < 300_000
    if recipe.loss.name in ("rcgan", "adler", "ohayon"):
        assert model.zoo_config.in_coils == recipe.data.train.synthetic.coils
        assert recipe.masks.type != "gro"  # GRO masks are fixed at 384 columns


def test_paper_hyper_parameters() -> None:
    unet, _ = load_recipe(RECIPES / "unet-pool-r4.yaml")
    vit, _ = load_recipe(RECIPES / "vit-pool-r4.yaml")
    assert (unet.optimizer.lr, vit.optimizer.lr, unet.optimizer.betas) == (1e-3, 2e-4, (0.9, 0.999))
    assert unet.loss.name == "ssim" and unet.grad_clip == 1.0 and unet.epochs == 40
    assert unet.masks.fresh_per_batch and unet.masks.accelerations == (4.0,) and unet.masks.center_fractions == (0.08,)
    assert unet.schedule.warmup_fraction == 0.01 and unet.early_stopping.rule == "paper"
    assert set(unet.data.ood) == {"cc359_sagittal", "stanford2d", "m4raw_gre", "nyu"}
    gan, _ = load_recipe(RECIPES / "rcgan-brain-r8.yaml")
    assert gan.optimizer.betas == (0.0, 0.99) and gan.optimizer.lr == 1e-3 and gan.epochs == 100
    assert gan.masks.type == "gro" and gan.masks.accelerations == (8.0,) and gan.data.slices_per_batch == 9
    p = loss_params(gan.loss)
    assert isinstance(p, RCGANParams) and p.p_train == 2 and p.gp_weight == 10 and p.drift_weight == 1e-3
    assert p.beta_adv == (1e-2, 1e-4, 1e-5) and p.beta_adv_milestones == (4, 22) and p.beta_sd_autotune
    prior, _ = load_recipe(RECIPES / "ncsnv2-brain.yaml")
    assert prior.optimizer.lr == 1e-4 and loss_params(prior.loss).ema == 0.999


def test_name_resolves_to_the_packaged_file() -> None:
    packaged = importlib.resources.files("mrizoo.recipes")
    if Path(str(packaged)).resolve() != RECIPES.resolve():
        pytest.skip(f"mrizoo.recipes is installed from another checkout ({packaged})")
    recipe, info = load_recipe("unet-pool-r4")
    assert Path(info.path).resolve() == (RECIPES / "unet-pool-r4.yaml").resolve()
    assert recipe == load_recipe(RECIPES / "unet-pool-r4.yaml")[0]
    with pytest.raises(InputError, match="did you mean 'unet-pool-r4'"):
        load_recipe("unet-pool-r44")


# ----------------------------------------------------------------------------- errors

BASE: dict[str, Any] = {
    "model": "unet-pool-r4",
    "data": {"train": {"pool": "lin2024_train"}, "val": {"pool": "lin2024_val"},
             "ood": {"nyu": {"pool": "nyu"}}},
    "loss": {"name": "ssim"},
    "optimizer": {"lr": 1e-3},
    "epochs": 2,
}


def _write(tmp_path: Path, training: Any, name: str = "r.yaml", extra: dict | None = None) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"training": training, **(extra or {})}))
    return path


def test_minimal_recipe_defaults(tmp_path: Path) -> None:
    recipe, info = load_recipe(_write(tmp_path, BASE))
    assert recipe.schedule.name == "warmup_linear" and recipe.grad_clip == 1.0 and recipe.precision == "no"
    assert recipe.masks.type == "equispaced_fraction" and recipe.early_stopping.rule == "none"
    assert info.name == "r"


def _set(mapping: dict, dotted: str, value: Any) -> dict:
    out = copy.deepcopy(mapping)
    *parents, last = dotted.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return out


_DELETE = object()

BAD = [
    ("optimizer.lrr", 1.0, "training.optimizer", "unknown key"),
    ("optimizer.lr", "fast", "training.optimizer.lr", "wrong type"),
    ("optimizer.lr", 0.0, "training.optimizer.lr", "positive"),
    ("optimizer.lr", -1e-3, "training.optimizer.lr", "positive"),
    ("steps", 10, "training.epochs", "exactly one"),
    ("epochs", _DELETE, "training.epochs", "exactly one"),
    ("epochs", 0, "training.epochs", "positive"),
    ("masks.accelerations", [4.0, 1.0], "training.masks.accelerations[1]", "exceed 1"),
    ("masks.center_fractions", [1.2], "training.masks.center_fractions[0]", "outside"),
    ("masks.center_fractions", [0.08, 0.04], "training.masks.center_fractions", "one per acceleration"),
    ("masks.type", "spiral", "training.masks.type", "unknown mask"),
    ("model", "unet-pool-r5", "training.model", "did you mean"),
    ("model_overrides", {"chanz": 8}, "training.model_overrides", "unknown key"),
    ("model_overrides", {"chans": "8"}, "training.model_overrides.chans", "wrong type"),
    ("init_from", "no-such-model", "training.init_from", "zoo name"),
    ("optimizer.betas", [0.9, 1.0], "training.optimizer.betas[1]", "beta"),
    ("optimizer.betas", [0.9], "training.optimizer.betas", "length"),
    ("optimizer.d_betas", [-0.1, 0.9], "training.optimizer.d_betas[0]", "beta"),
    ("schedule.warmup_fraction", 1.0, "training.schedule.warmup_fraction", "outside"),
    ("schedule.name", "cosine", "training.schedule.name", "not allowed"),
    ("schedule", {"name": "step"}, "training.schedule.step_size", "period"),
    ("grad_accumulation", 0, "training.grad_accumulation", "positive"),
    ("grad_clip", 0.0, "training.grad_clip", "positive"),
    ("precision", "fp8", "training.precision", "not allowed"),
    ("data.ood", {}, "training.early_stopping.rule", "OOD"),
    ("early_stopping.ood_set", "knee", "training.early_stopping.ood_set", "not one of the OOD sets"),
    ("early_stopping.metric", "lpips", "training.early_stopping.metric", "unknown metric"),
    ("early_stopping.patience", 0, "training.early_stopping.patience", "positive"),
    ("data.train", {"pool": "a", "synthetic": {}}, "training.data.train", "exactly one"),
    ("data.val", {}, "training.data.val", "exactly one"),
    ("data.train", {"synthetic": {"coils": 0}}, "training.data.train.synthetic.coils", "positive"),
    ("data.slices_per_batch", 0, "training.data.slices_per_batch", "positive"),
    ("data.target", "complex", "training.data.target", "not allowed"),
    ("loss.name", "rcgan", "training.loss.name", "does not train"),
    ("loss.params", {"win": 7}, "training.loss.params", "unknown key"),
    ("loss.params", {"win_size": 6}, "training.loss.params.win_size", "odd"),
    ("checkpoint.keep", 0, "training.checkpoint.keep", "at least one"),
    ("grad_clip", float("inf"), "training.grad_clip", "finite"),
    ("grad_clip", float("nan"), "training.grad_clip", "finite"),
    ("optimizer.weight_decay", float("inf"), "training.optimizer.weight_decay", "finite"),
    ("early_stopping.min_delta", float("nan"), "training.early_stopping.min_delta", "finite"),
    ("data.train", {"synthetic": {"shape": [4, 64]}}, "training.data.train.synthetic.shape[0]", "too small"),
    ("data.train", {"pool": "a", "max_slices": 0}, "training.data.train.max_slices", "positive"),
    ("data.crop", [64, 0], "training.data.crop[1]", "positive"),
    ("data.num_workers", -1, "training.data.num_workers", "not be negative"),
    ("masks.accelerations", [], "training.masks.accelerations", "at least one acceleration"),
    ("masks.weight", 0.0, "training.masks.weight", "weight must be positive"),
    ("masks.mix", [{"type": "spiral"}], "training.masks.mix[0].type", "unknown mask"),
    ("masks.mix", [{"type": "random", "accelerations": [4, 8], "center_fractions": [0.1, 0.1, 0.1]}],
     "training.masks.mix[0].center_fractions", "one per acceleration"),
    ("masks", {"fresh_per_batch": False, "mix": [{"type": "random"}]}, "training.masks.mix", "fresh masks"),
    ("loss.params", {"k1": -0.01}, "training.loss.params.k1", "positive"),
    ("loss", {"name": "ssim_l1", "params": {"ssim_weight": 0.0, "l1_weight": 0.0}}, "training.loss.params",
     "both be zero"),
    ("loss", {"name": "ssim_l1", "params": {"l1_weight": -1.0}}, "training.loss.params.l1_weight", "negative"),
    ("optimizer.d_lr", 0.0, "training.optimizer.d_lr", "learning rate"),
    ("schedule.final_fraction", 1.5, "training.schedule.final_fraction", r"outside \[0, 1\]"),
    ("schedule", {"name": "step", "step_size": 2, "gamma": 0.0}, "training.schedule.gamma", "decay factor"),
    ("seed", -1, "training.seed", "not be negative"),
    ("validate_every", 0, "training.validate_every", "positive"),
]


@pytest.mark.parametrize(("key", "value", "field", "match"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_bad_values_name_file_and_key(tmp_path: Path, key: str, value: Any, field: str, match: str) -> None:
    training = _set(BASE, key, value)
    if key.startswith("early_stopping") or key == "data.ood":
        training = _set(training, "early_stopping.rule", "ood")
    path = _write(tmp_path, training)
    with pytest.raises(InputError, match=match) as info:
        load_recipe(path)
    assert info.value.path == str(path) and info.value.field == field


def test_rcgan_loss_params_are_checked(tmp_path: Path) -> None:
    training = {**BASE, "model": "rcgan-brain-r4", "loss": {"name": "rcgan", "params": {"p_train": 1}},
                "masks": {"type": "gro", "accelerations": [4], "center_fractions": []}}
    with pytest.raises(InputError, match="2 samples") as info:
        load_recipe(_write(tmp_path, training))
    assert info.value.field == "training.loss.params.p_train"
    for params, field, words in [
        ({"beta_adv": [1e-2, 1e-4]}, "training.loss.params.beta_adv", "one more value"),
        ({"beta_adv": [1e-2, -1e-4, 0.0]}, "training.loss.params.beta_adv[1]", "not be negative"),
        ({"beta_adv_milestones": [22, 4]}, "training.loss.params.beta_adv_milestones", "increasing"),
        ({"beta_sd": 2.0, "beta_sd_max": 1.0}, "training.loss.params.beta_sd_max", "below beta_sd"),
        ({"p_val": 1}, "training.loss.params.p_val", "Prop. 3.3"),
        ({"autotune_every": 0}, "training.loss.params.autotune_every", "positive"),
    ]:
        training["loss"]["params"] = params
        with pytest.raises(InputError, match=words) as info:
            load_recipe(_write(tmp_path, training))
        assert info.value.field == field
    prior = {**BASE, "model": "ncsnv2-brain", "loss": {"name": "dsm", "params": {"ema": 1.0}}}
    with pytest.raises(InputError, match="EMA decay") as info:
        load_recipe(_write(tmp_path, prior))
    assert info.value.field == "training.loss.params.ema"


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no 'training' mapping"):
        load_recipe(_entry_only(tmp_path))
    with pytest.raises(InputError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_recipe(bad)
    with pytest.raises(InputError, match="expected a mapping"):
        load_recipe(_write(tmp_path, [1, 2]))


def _entry_only(tmp_path: Path) -> Path:
    path = tmp_path / "entry.yaml"
    path.write_text("entry: {name: x}\n")
    return path


def test_smoke_merge_and_its_errors(tmp_path: Path) -> None:
    smoke = {"data": {"train": {"pool": None, "synthetic": {"volumes": 1}}}, "epochs": None, "steps": 2,
             "optimizer": {"betas": [0.5, 0.9]}}
    path = _write(tmp_path, {**BASE, "smoke": smoke})
    full, _ = load_recipe(path)
    small, _ = load_recipe(path, smoke=True)
    assert full.epochs == 2 and full.data.train.pool == "lin2024_train"
    assert small.epochs is None and small.steps == 2 and small.data.train.pool is None
    assert small.data.train.synthetic.volumes == 1 and small.data.train.synthetic.coils == 4
    assert small.optimizer.lr == 1e-3 and small.optimizer.betas == (0.5, 0.9)  # deep merge keeps siblings
    assert small.smoke == full.smoke == smoke
    # a bad smoke mapping only fails when merged, and says so
    path = _write(tmp_path, {**BASE, "smoke": {"optimizer": {"lr": -1.0}}})
    load_recipe(path)
    with pytest.raises(InputError, match="after merging training.smoke") as info:
        load_recipe(path, smoke=True)
    assert info.value.field == "training.optimizer.lr"
    path = _write(tmp_path, {**BASE, "smoke": {"epochs": None}})
    with pytest.raises(InputError, match="after merging"):
        load_recipe(path, smoke=True)


# what the smoke mapping of the shipped recipes replaces: a bad value there must not hide behind --smoke
HIDDEN = [
    ({"epochs": None, "steps": 0}, "training.steps", "positive"),
    ({"epochs": 0}, "training.epochs", "positive"),
    ({"validate_every": 0}, "training.validate_every", "positive"),
    ({"data": {"train": {"pool": "x", "synthetic": {"volumes": 1}}}}, "training.data.train", "exactly one"),
    ({"data": {"train": {"pool": None, "synthetic": {"volumes": 0}}}}, "training.data.train.synthetic.volumes",
     "positive"),
    ({"data": {"slices_per_batch": 0}}, "training.data.slices_per_batch", "positive"),
    ({"optimizer": {"lr": float("nan")}}, "training.optimizer.lr", "positive"),
    ({"checkpoint": {"every_steps": 0}}, "training.checkpoint.every_steps", "positive"),
]


@pytest.mark.parametrize(("change", "field", "match"), HIDDEN, ids=[h[1] for h in HIDDEN])
def test_smoke_overrides_do_not_hide_bad_values(tmp_path: Path, change: dict, field: str, match: str) -> None:
    smoke = {"data": {"train": {"pool": None, "synthetic": {"volumes": 1}}, "slices_per_batch": 2},
             "epochs": None, "steps": 2, "validate_every": 1, "optimizer": {"lr": 1e-3},
             "checkpoint": {"every_steps": 1}}
    path = _write(tmp_path, {**deep_merge(BASE, change), "smoke": smoke})
    for smoke_run in (False, True):
        with pytest.raises(InputError, match=match) as info:
            load_recipe(path, smoke=smoke_run)
        assert info.value.path == str(path) and info.value.field == field
    assert "--smoke overrides it" in str(info.value)


def test_validate_recipe_checks_a_recipe_built_in_code(tmp_path: Path) -> None:
    """Field rules hold for a recipe made with dataclasses.replace too (not only for one read from a file)."""
    import dataclasses

    recipe, _ = load_recipe(_write(tmp_path, BASE))
    validate_recipe(recipe, "built")
    bad = dataclasses.replace(recipe, optimizer=dataclasses.replace(recipe.optimizer, lr=-1.0))
    with pytest.raises(InputError, match="learning rate must be positive") as info:
        validate_recipe(bad, "built", note=" (in code)")
    assert info.value.path == "built" and info.value.field == "training.optimizer.lr"
    assert str(info.value).count("(in code)") == 1
    mixed = dataclasses.replace(recipe, masks=MaskSpec(mix=(MaskAlternative(type="random", weight=0.0),)))
    with pytest.raises(InputError, match="weight must be positive") as info:
        validate_recipe(mixed)
    assert info.value.field == "training.masks.mix[0].weight"


def test_supervised_families_come_from_the_architecture_table() -> None:
    assert set(SUPERVISED_ARCHS) == {"unet", "vit", "varnet", "modl"}


def test_deep_merge() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 3}
    merged = deep_merge(base, {"a": {"c": [9], "e": None}, "d": {"x": 1}})
    assert merged == {"a": {"b": 1, "c": [9], "e": None}, "d": {"x": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 3}


def test_exponent_without_dot_is_a_number(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"training": BASE}).replace("lr: 0.001", "lr: 1e-3"))
    assert "lr: 1e-3" in path.read_text()
    assert load_recipe(path)[0].optimizer.lr == 1e-3


# ----------------------------------------------------------------------------- schedules


def _lrs(scheduler: Any, optimizer: torch.optim.Optimizer, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def _optimizer(lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)


@pytest.mark.parametrize(("total", "pct", "div", "final_div"), [(1000, 0.01, 25.0, 1.0), (357, 0.1, 10.0, 100.0),
                                                                (50, 0.3, 25.0, 1e4)])
def test_warmup_linear_equals_onecycle(total: int, pct: float, div: float, final_div: float) -> None:
    lr = 1e-3
    ref_opt = _optimizer(lr)
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=lr, total_steps=total, pct_start=pct, div_factor=div,
                                              final_div_factor=final_div, anneal_strategy="linear",
                                              cycle_momentum=False)
    expected = _lrs(ref, ref_opt, total)
    spec = ScheduleSpec(name="warmup_linear", warmup_fraction=pct, start_fraction=1 / div,
                        final_fraction=1 / (div * final_div))
    opt = _optimizer(lr)
    got = _lrs(build_scheduler(opt, spec, total_steps=total), opt, total)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert 0.99 * lr < max(got) <= lr * (1 + 1e-12)


def test_warmup_linear_shape() -> None:
    f = warmup_linear_lambda(101, 0.0, final_fraction=0.0)
    assert [f(s) for s in (0, 50, 100, 150)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    g = warmup_linear_lambda(1000, 0.1, start_fraction=0.0, final_fraction=0.2)
    assert g(0) == 0.0 and g(99) == pytest.approx(1.0) and g(49) == pytest.approx(49 / 99)
    assert g(999) == pytest.approx(0.2) and g(5000) == pytest.approx(0.2)
    assert all(g(s) >= g(s + 1) for s in range(99, 999))
    tiny = warmup_linear_lambda(3, 0.01)  # smoke runs: too short for a warm-up
    assert [tiny(s) for s in range(3)] == pytest.approx([1.0, 0.5, 0.0])
    assert warmup_linear_lambda(1, 0.01)(0) == 1.0
    with pytest.raises(InputError):
        warmup_linear_lambda(0, 0.01)


def test_step_schedule_equals_steplr_per_epoch() -> None:
    steps_per_epoch, step_size, gamma, epochs = 7, 3, 0.5, 10
    ref_opt = _optimizer(1.0)
    ref = torch.optim.lr_scheduler.StepLR(ref_opt, step_size=step_size, gamma=gamma)
    expected = []
    for _ in range(epochs):
        expected += [ref_opt.param_groups[0]["lr"]] * steps_per_epoch
        ref_opt.step()
        ref.step()
    opt = _optimizer(1.0)
    spec = ScheduleSpec(name="step", step_size=step_size, gamma=gamma)
    got = _lrs(build_scheduler(opt, spec, total_steps=70, steps_per_epoch=steps_per_epoch), opt, 70)
    assert got == pytest.approx(expected)
    assert step_lambda(7, 3, 0.5)(20) == 1.0 and step_lambda(7, 3, 0.5)(63) == 0.125
    with pytest.raises(InputError, match="steps_per_epoch"):
        build_scheduler(_optimizer(1.0), spec, total_steps=10)


def test_constant_schedule() -> None:
    opt = _optimizer(3e-4)
    assert _lrs(build_scheduler(opt, ScheduleSpec(name="constant"), total_steps=5), opt, 5) == [3e-4] * 5
    assert constant_lambda()(10**6) == 1.0
