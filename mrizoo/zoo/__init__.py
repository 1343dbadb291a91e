"""The model zoo: names, entries declared as data, and the factory that builds them."""

from mrizoo._lazy import lazy_attributes
from mrizoo.models.registry import ARCHITECTURES, Architecture, get_architecture
from mrizoo.zoo.entry import ModelEntry, ModelSpec, TaskSpec, WeightsSource
from mrizoo.zoo.names import ModelName, parse_name
from mrizoo.zoo.registry import (
    REGISTRY,
    Registry,
    UnknownModelError,
    info,
    list_models,
    read_entry_file,
    register_model,
)

# the factory needs torch: imported on first use, so reading the registry stays light
__getattr__, __dir__ = lazy_attributes(
    __name__, dict.fromkeys(("WeightsUnavailableError", "create", "load", "model_config"), "mrizoo.zoo.factory"))


__all__ = [
    "ARCHITECTURES", "Architecture", "get_architecture",
    "ModelEntry", "ModelSpec", "TaskSpec", "WeightsSource",
    "WeightsUnavailableError", "create", "load", "model_config",
    "ModelName", "parse_name",
    "REGISTRY", "Registry", "UnknownModelError", "info", "list_models", "read_entry_file", "register_model",
]
