"""The model zoo: names, entries declared as data, and the factory that builds them."""

from mrizoo.zoo.architectures import ARCHITECTURES, Architecture, get_architecture
from mrizoo.zoo.entry import ModelEntry, ModelSpec, TaskSpec, WeightsSource
from mrizoo.zoo.names import ModelName, parse_name
from mrizoo.zoo.registry import REGISTRY, Registry, UnknownModelError, info, list_models, read_entry_file, register_model

_FACTORY = ("WeightsUnavailableError", "create", "load", "model_config")


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """The factory needs torch: import it on first use, so reading the registry stays light."""
    if name in _FACTORY:
        from mrizoo.zoo import factory

        return getattr(factory, name)
    raise AttributeError(f"module 'mrizoo.zoo' has no attribute {name!r}")


__all__ = [
    "ARCHITECTURES", "Architecture", "get_architecture",
    "ModelEntry", "ModelSpec", "TaskSpec", "WeightsSource",
    "WeightsUnavailableError", "create", "load", "model_config",
    "ModelName", "parse_name",
    "REGISTRY", "Registry", "UnknownModelError", "info", "list_models", "read_entry_file", "register_model",
]
