"""The rules of a training recipe that relate several fields, one small named function each.

Single-field rules (ranges, lengths, known names) are declared on the schema
(:mod:`mrizoo.train.recipe_schema`) and enforced when a recipe is read; :func:`validate_recipe`
checks those again on an instance built in code, then runs :data:`RECIPE_CHECKS` in order. Each
check raises :class:`~mrizoo.errors.InputError` naming the file and the dotted key
(``training.masks.center_fractions``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mrizoo._dataclass_io import check_fields, from_dict, with_note
from mrizoo.errors import InputError
from mrizoo.hub.layout import spec_kind
from mrizoo.models.registry import ARCHITECTURES, get_architecture
from mrizoo.train.recipe_schema import (
    LOSS_PARAMS,
    DataSource,
    GANParams,
    RCGANParams,
    SSIML1Params,
    TrainingRecipe,
)
from mrizoo.zoo.registry import REGISTRY, UnknownModelError

__all__ = ["RECIPE_CHECKS", "validate_recipe"]


def _fail(source: str, key: str, problem: str, *, expected: Any = None, got: Any = None) -> None:
    raise InputError(problem, path=source, field=f"training.{key}", expected=expected, got=got)


def epochs_or_steps(r: TrainingRecipe, source: str) -> None:
    """The run length is given once: in epochs or in optimizer steps."""
    if (r.epochs is None) == (r.steps is None):
        _fail(source, "epochs", "set exactly one of 'epochs' and 'steps'", got=f"epochs={r.epochs}, steps={r.steps}")


def early_stopping_sets(r: TrainingRecipe, source: str) -> None:
    """The ``ood`` rule needs OOD sets, and ``ood_set`` names one of them."""
    es = r.early_stopping
    if es.rule == "ood" and not r.data.ood:
        _fail(source, "early_stopping.rule", "the 'ood' rule needs at least one OOD validation set in data.ood",
              got="no data.ood")
    if es.ood_set is not None and es.ood_set not in r.data.ood:
        _fail(source, "early_stopping.ood_set", "not one of the OOD sets", expected=f"one of {sorted(r.data.ood)}",
              got=repr(es.ood_set))


def model_and_overrides(r: TrainingRecipe, source: str) -> None:
    """``model`` is a zoo name, ``model_overrides`` fit its config, ``init_from`` names weights."""
    from mrizoo.zoo.factory import model_config  # imports torch: only when a recipe is checked

    try:
        REGISTRY.get(r.model)
    except UnknownModelError as err:
        raise InputError(str(err), path=source, field="training.model", got=repr(r.model)) from None
    try:
        model_config(r.model, **r.model_overrides)
    except InputError as err:
        sub = (err.field or "").removeprefix("model.config").lstrip(".")
        raise InputError(err.problem, path=source, field="training.model_overrides" + (f".{sub}" if sub else ""),
                         expected=err.expected, got=err.got) from None
    ref = r.init_from
    if ref is not None:
        if spec_kind(ref) == "name" and ref not in REGISTRY.names():
            _fail(source, "init_from", "not a zoo name, a folder path or 'hf-hub:org/repo'", got=repr(ref))


def one_data_source(r: TrainingRecipe, source: str) -> None:
    """Every data set (train, val, each OOD set) is exactly one of a pool, folders or synthetic volumes."""
    sets: list[tuple[str, DataSource]] = [("data.train", r.data.train), ("data.val", r.data.val)]
    sets += [(f"data.ood.{name}", src) for name, src in r.data.ood.items()]
    for key, src in sets:
        given = [n for n, v in (("pool", src.pool), ("folders", src.folders), ("synthetic", src.synthetic)) if v]
        if len(given) != 1:
            _fail(source, key, "a data source needs exactly one of pool, folders, synthetic",
                  expected="one of them", got=given or "none")


def mask_fractions(r: TrainingRecipe, source: str) -> None:
    """One centre fraction or one per acceleration; a mix of families needs masks drawn per batch."""
    m = r.masks
    families: list[tuple[str, Any]] = [("masks", m)] + [(f"masks.mix[{i}]", alt) for i, alt in enumerate(m.mix)]
    for key, fam in families:
        n, k = len(fam.center_fractions), len(fam.accelerations)
        if n not in (0, 1, k):
            _fail(source, f"{key}.center_fractions", "one centre fraction, or one per acceleration",
                  expected=f"1 or {k} values", got=n)
    if m.mix and not m.fresh_per_batch:
        _fail(source, "masks.mix", "a mix of mask families needs fresh masks", expected="fresh_per_batch: true",
              got=m.fresh_per_batch)


def loss_fits(r: TrainingRecipe, source: str) -> None:
    """``loss.params`` fit the loss's parameter class and agree with each other; the loss trains the model."""
    k = "loss.params"
    p = from_dict(LOSS_PARAMS[r.loss.name], dict(r.loss.params), source=source, prefix=f"training.{k}")
    arch = get_architecture(REGISTRY.get(r.model).model.arch)
    if r.loss.name not in arch.losses:
        families = sorted(name for name, a in ARCHITECTURES.items() if r.loss.name in a.losses)
        fits = f"; a {arch.name!r} model trains with one of {list(arch.losses)}" if arch.losses else ""
        _fail(source, "loss.name", f"loss {r.loss.name!r} does not train a {arch.name!r} model{fits}",
              expected=f"a model of family {families}", got=arch.name)
    if isinstance(p, SSIML1Params) and p.ssim_weight + p.l1_weight <= 0:
        _fail(source, k, "weights must not both be zero", got=(p.ssim_weight, p.l1_weight))
    if isinstance(p, GANParams):
        if len(p.beta_adv) != len(p.beta_adv_milestones) + 1:
            _fail(source, f"{k}.beta_adv", "one more value than milestones",
                  expected=f"{len(p.beta_adv_milestones) + 1} values", got=len(p.beta_adv))
        ms = list(p.beta_adv_milestones)
        if ms != sorted(set(ms)):
            _fail(source, f"{k}.beta_adv_milestones", f"must be increasing {p.beta_adv_unit}s", got=ms)
    if isinstance(p, RCGANParams) and p.beta_sd_max is not None and p.beta_sd_max < p.beta_sd:
        _fail(source, f"{k}.beta_sd_max", "must not be below beta_sd", expected=f">= {p.beta_sd}", got=p.beta_sd_max)


def step_schedule(r: TrainingRecipe, source: str) -> None:
    """The ``step`` schedule needs its period and a decay factor in (0, 1]."""
    s = r.schedule
    if s.name != "step":
        return
    if s.step_size < 1:
        _fail(source, "schedule.step_size", "the step schedule needs a period in epochs", expected=">= 1",
              got=s.step_size)
    if not 0 < s.gamma <= 1:
        _fail(source, "schedule.gamma", "decay factor outside (0, 1]", expected="0 < gamma <= 1", got=s.gamma)


#: The cross-field checks, in the order they run (the first problem found is reported).
RECIPE_CHECKS: tuple[Callable[[TrainingRecipe, str], None], ...] = (
    epochs_or_steps, early_stopping_sets, model_and_overrides, one_data_source, mask_fractions, loss_fits,
    step_schedule,
)


def validate_recipe(recipe: TrainingRecipe, source: str = "<recipe>", *, note: str = "") -> None:
    """Check what types alone cannot: the declared field rules, then :data:`RECIPE_CHECKS`; raise InputError.

    ``note`` is appended to the problem (e.g. which merge of the file was checked).
    """
    try:
        check_fields(recipe, source=source, prefix="training")
        for check in RECIPE_CHECKS:
            check(recipe, source)
    except InputError as err:
        raise with_note(err, note) from None
