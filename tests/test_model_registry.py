"""The architecture table: each family registers itself once, with capability flags that agree
with its models, the zoo entries and the training recipes that use it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import pytest

from mrizoo.errors import InputError
from mrizoo.models import registry as reg
from mrizoo.models.base import ReconModel
from mrizoo.models.registry import ARCHITECTURES, TASKS, Architecture, get_architecture, register_architecture
from mrizoo.zoo.build import model_config
from mrizoo.zoo.registry import REGISTRY

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def scratch_name():
    """A name free for one test; unregistered afterwards so the table is left as it was."""
    name = "test-scratch-arch"
    yield name
    if name in reg._TABLE:
        del reg._TABLE[name]


def _copy(arch: Architecture, **changes: object) -> Architecture:
    return dataclasses.replace(arch, **changes)


def test_a_duplicate_name_is_refused_and_the_first_row_kept(scratch_name: str) -> None:
    unet = get_architecture("unet")
    with pytest.raises(InputError, match="already registered"):
        register_architecture(_copy(unet, description="another U-Net"))
    assert get_architecture("unet") is unet
    mine = register_architecture(_copy(unet, name=scratch_name))
    assert ARCHITECTURES[scratch_name] is mine
    with pytest.raises(InputError, match="already registered"):
        register_architecture(_copy(unet, name=scratch_name, is_posterior=True))
    assert get_architecture(scratch_name).is_posterior is False


def test_rows_are_checked_when_declared() -> None:
    unet = get_architecture("unet")
    with pytest.raises(InputError, match="domain"):
        _copy(unet, domain="wavelet")
    with pytest.raises(InputError, match="task"):
        _copy(unet, task="gan")
    with pytest.raises(InputError, match="losses"):
        _copy(unet, task="none")  # an untrained family lists no losses
    with pytest.raises(InputError, match="preset"):
        _copy(unet, presets={"wrong": get_architecture("vit").presets["lin2024-small"]})
    with pytest.raises(InputError, match="Architecture"):
        register_architecture(dataclasses.asdict(unet))  # type: ignore[arg-type]


def test_unknown_name_names_the_file_and_suggests() -> None:
    with pytest.raises(InputError) as err:
        get_architecture("varnte", source="entry.yaml")
    msg = str(err.value)
    assert "'varnet'" in msg and "entry.yaml" in msg and "model.arch" in msg
    assert "varnte" not in ARCHITECTURES
    with pytest.raises(KeyError):
        ARCHITECTURES["varnte"]  # noqa: B018


@pytest.mark.parametrize(("name", "flags"), [
    ("rcgan", dict(is_posterior=True, needs_maps=False, task="rcgan", domain="image")),
    ("ncsnv2", dict(is_posterior=True, needs_maps=True, task="ncsnv2", losses=("dsm",))),
    ("modl", dict(is_posterior=False, needs_maps=True, task="supervised")),
    ("varnet", dict(is_posterior=False, needs_maps=False, task="supervised", domain="kspace")),
    ("unet", dict(needs_maps=False, task="supervised", losses=("ssim", "l1", "ssim_l1"))),
    ("zerofilled", dict(domain="classical", task="none", losses=())),
    ("cgsense", dict(domain="classical", task="none", needs_maps=True)),
    ("convdecoder", dict(task="none", needs_maps=True, is_posterior=False)),
])
def test_known_families_declare_their_capabilities(name: str, flags: dict[str, object]) -> None:
    arch = get_architecture(name)
    assert {k: getattr(arch, k) for k in flags} == flags


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_flags_agree_with_the_models_they_build(name: str) -> None:
    """The row's ``needs_maps``/``is_posterior`` are those of the model class its builder returns."""
    arch = get_architecture(name)
    cls = typing.get_type_hints(arch.builder)["return"]
    assert isinstance(cls, type) and issubclass(cls, ReconModel)
    assert cls.needs_maps is arch.needs_maps
    assert cls.is_posterior is arch.is_posterior
    assert (cls.adapt_family is not None) is arch.adapts
    assert arch.builder.__module__ in reg.BUILTIN_MODULES  # the module that builds it registers it
    if name in ("zerofilled", "cgsense", "unet", "modl"):  # cheap to build for real on the CPU
        assert type(arch.build(arch.make_config(None, {}))) is cls


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_zoo_entry_uses_a_registered_family_with_consistent_flags(name: str) -> None:
    entry = REGISTRY.get(name)
    arch = get_architecture(entry.model.arch)
    assert type(model_config(name)) is arch.config_class()
    if "posterior" in entry.tags:
        assert arch.is_posterior, f"{name} is tagged posterior but {arch.name} draws no samples"
    if entry.recipe:
        assert arch.task != "none", f"{name} names a recipe but {arch.name} is not trainable"


def test_every_shipped_recipe_trains_its_family_with_one_of_its_losses() -> None:
    from mrizoo.train.recipe import list_recipes, load_recipe
    from mrizoo.train.tasks import task_class

    seen = set()
    for recipe in list_recipes():
        spec, _ = load_recipe(recipe)
        arch = get_architecture(REGISTRY.get(spec.model).model.arch)
        assert spec.loss.name in arch.losses, (recipe, spec.loss.name, arch.losses)
        assert task_class(arch.name) is not None
        seen.add(arch.task)
    assert seen == set(TASKS) - {"none"}  # every training task is exercised by a shipped recipe


def test_each_task_kind_has_its_trainer_and_untrained_families_have_none() -> None:
    from mrizoo.train.tasks import RCGANTask, ScoreTask, SupervisedTask, task_class

    expected = {"supervised": SupervisedTask, "rcgan": RCGANTask, "ncsnv2": ScoreTask}
    for arch in ARCHITECTURES.values():
        if arch.task == "none":
            with pytest.raises(InputError, match="no training task"):
                task_class(arch.name)
        else:
            assert task_class(arch.name) is expected[arch.task]
    assert ScoreTask.undersampled_validation is False and SupervisedTask.undersampled_validation is True


def test_the_table_loads_its_models_only_when_asked() -> None:
    """Importing the table imports no model (and no torch); the first lookup imports them all."""
    probe = ("import sys\nimport mrizoo.models.registry as r\n"
             "print('torch' in sys.modules, any(m in sys.modules for m in r.BUILTIN_MODULES))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
    assert len(ARCHITECTURES) >= len(reg.BUILTIN_MODULES)
    assert all(m in sys.modules for m in reg.BUILTIN_MODULES)


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def test_every_model_takes_a_generator_as_the_base_class_says() -> None:
    """``reconstruct``/``sample`` take ``generator=`` on every model (posterior models draw with it)."""
    import inspect

    from mrizoo.models.base import ReconModel
    from mrizoo.models.registry import ARCHITECTURES

    assert len(ARCHITECTURES) >= 10  # loads every built-in architecture module
    models = _subclasses(ReconModel)
    assert len(models) >= 10
    for cls in models:
        for method in ("reconstruct", "sample"):
            params = inspect.signature(getattr(cls, method)).parameters
            assert "generator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()), \
                f"{cls.__name__}.{method} takes no generator"
