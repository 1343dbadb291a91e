"""The architecture table: each architecture module registers its family here with its flags.

A row says how to build a family (its config dataclass, builder and named presets) and what it
can do (``needs_maps``, ``is_posterior``, ``domain``, the recipe ``losses`` it trains with and the
training ``task`` kind), so the trainer and the model cards read capabilities instead of
comparing family names.

This module imports no torch: ``ARCHITECTURES`` and :func:`get_architecture` import the built-in
architecture modules (the fixed list :data:`BUILTIN_MODULES`) on first lookup, each of which
registers its own row at import. Listing the zoo therefore stays light until an architecture is
actually needed. A new built-in architecture is a module that ends with
``register_architecture(...)`` plus its name in :data:`BUILTIN_MODULES`; code outside the
package calls :func:`register_architecture` directly.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mrizoo._dataclass_io import from_dict
from mrizoo._registry import Registry, did_you_mean
from mrizoo.errors import InputError

__all__ = ["Architecture", "ARCHITECTURES", "BUILTIN_MODULES", "DOMAINS", "TASKS", "get_architecture",
           "register_architecture"]

#: The modules that register the built-in architectures, imported on the first lookup.
BUILTIN_MODULES: tuple[str, ...] = (
    "mrizoo.models.unet",
    "mrizoo.models.varnet",
    "mrizoo.models.vit",
    "mrizoo.models.modl",
    "mrizoo.models.rcgan",
    "mrizoo.models.langevin",
    "mrizoo.models.classical",
    "mrizoo.models.convdecoder",
)

#: ``Architecture.domain``: where the network works (``classical``: no learned network).
DOMAINS: tuple[str, ...] = ("image", "kspace", "classical")
#: ``Architecture.task``: how the trainer trains the family (``none``: not trainable).
TASKS: tuple[str, ...] = ("supervised", "rcgan", "ncsnv2", "none")


@dataclass(frozen=True)
class Architecture:
    """One architecture family: how to build it and what it can do.

    ``config``: the config dataclass; ``builder``: config -> model; ``presets``: name -> config
    instance. ``needs_maps``: its models take ESPIRiT maps (and training samples carry them);
    ``is_posterior``: its models draw posterior samples; ``losses``: the recipe loss names it
    trains with; ``task``: the training task kind (``"none"`` when it is not trained); ``adapts``: its
    models adapt to a scan at test time (:attr:`ReconModel.adapt_family` is set).
    """

    name: str
    description: str
    config: type
    builder: Callable[[Any], Any]
    presets: Mapping[str, Any] = field(default_factory=dict)
    needs_maps: bool = False
    is_posterior: bool = False
    domain: Literal["image", "kspace", "classical"] = "image"
    losses: tuple[str, ...] = ()
    task: Literal["supervised", "rcgan", "ncsnv2", "none"] = "none"
    adapts: bool = False

    def __post_init__(self) -> None:
        where = f"architecture {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise InputError("an architecture name must be a non-empty string", field="name", got=repr(self.name))
        if not (isinstance(self.config, type) and dataclasses.is_dataclass(self.config)):
            raise InputError(f"{where}: config must be a dataclass type", field="config", got=repr(self.config))
        if not callable(self.builder):
            raise InputError(f"{where}: builder must be callable", field="builder", got=repr(self.builder))
        for preset, value in self.presets.items():
            if not isinstance(value, self.config):
                raise InputError(f"{where}: preset {preset!r} is not a {self.config.__name__}",
                                 field="presets", got=type(value).__name__)
        if self.domain not in DOMAINS:
            raise InputError(f"{where}: unknown domain", field="domain", expected=f"one of {DOMAINS}",
                             got=self.domain)
        if self.task not in TASKS:
            raise InputError(f"{where}: unknown training task", field="task", expected=f"one of {TASKS}",
                             got=self.task)
        if (self.task == "none") != (not self.losses):
            raise InputError(f"{where}: a trained family lists its losses and an untrained one none",
                             field="losses", expected="losses exactly when task is not 'none'",
                             got=f"task={self.task!r}, losses={self.losses!r}")

    def config_class(self) -> type:
        """The config dataclass."""
        return self.config

    def make_config(self, preset: str | None, overrides: dict[str, Any], source: str | None = None) -> Any:
        """The preset's config (or the defaults) with ``overrides`` applied and validated."""
        if preset is not None:
            if preset not in self.presets:
                raise InputError(f"unknown preset for architecture {self.name!r}", path=source,
                                 field="model.preset", expected=f"one of {sorted(self.presets)}", got=preset)
            base = dataclasses.asdict(self.presets[preset])
        else:
            base = {}
        return from_dict(self.config, {**base, **overrides}, source=source, prefix="model.config")

    def build(self, config: Any) -> Any:
        """A model of this family built from ``config``."""
        return self.builder(config)


_TABLE: Registry[Architecture] = Registry("architecture", field="model.arch")
_loaded = False


def _load_builtins() -> None:
    """Import the built-in architecture modules once (each registers its own row)."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # set first: the modules call register_architecture while they import
    try:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
    except BaseException:
        _loaded = False
        raise


class _ArchitectureTable(Mapping[str, Architecture]):
    """Read-only name -> :class:`Architecture` view that loads the built-ins on first use."""

    def __getitem__(self, name: str) -> Architecture:
        _load_builtins()
        if name not in _TABLE:
            raise KeyError(name)
        return _TABLE.lookup(name)

    def __iter__(self) -> Iterator[str]:
        _load_builtins()
        return iter(_TABLE.names())

    def __len__(self) -> int:
        _load_builtins()
        return len(_TABLE)

    def __contains__(self, name: object) -> bool:
        _load_builtins()
        return name in _TABLE

    def __repr__(self) -> str:
        return f"ARCHITECTURES({', '.join(self)})"


#: Every registered architecture by name (built-ins loaded on first access).
ARCHITECTURES: Mapping[str, Architecture] = _ArchitectureTable()


def register_architecture(arch: Architecture) -> Architecture:
    """Add ``arch`` to the table; a name is registered once (a duplicate is an ``InputError``)."""
    if not isinstance(arch, Architecture):
        raise InputError("only an Architecture can be registered", field="model.arch",
                         expected="mrizoo.models.registry.Architecture", got=type(arch).__name__)
    if getattr(arch.builder, "__module__", None) not in BUILTIN_MODULES:
        _load_builtins()  # a name clashing with a built-in fails here, not at the built-in's import
    _TABLE.register(arch.name, arch)
    return arch


def get_architecture(name: str, source: str | None = None) -> Architecture:
    """The architecture called ``name``; an unknown name says which file asked and the closest names."""
    _load_builtins()
    if not isinstance(name, str) or name not in _TABLE:
        raise InputError(f"unknown architecture{did_you_mean(str(name), _TABLE)}", path=source,
                         field="model.arch", expected=f"one of {_TABLE.names()}", got=repr(name))
    return _TABLE.lookup(name)
