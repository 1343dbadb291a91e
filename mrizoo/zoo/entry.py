"""A zoo entry: what a name stands for, declared as data (one YAML file per entry in ``recipes/``).

An entry file holds an ``entry:`` mapping (this module) and, for models we train, the
training recipe under ``training:`` in the same file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from mrizoo.zoo.names import parse_name

__all__ = ["ModelSpec", "TaskSpec", "WeightsSource", "ModelEntry"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture family, an optional named preset of its config, and overrides on top."""

    arch: str
    preset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    """What the model reconstructs. Empty ``accelerations`` = acceleration-agnostic (priors, baselines)."""

    anatomy: str = "any"
    contrasts: tuple[str, ...] = ()
    accelerations: tuple[float, ...] = ()
    mask: str | None = None
    center_fractions: tuple[float, ...] = ()
    coils: Literal["multi", "single"] = "multi"
    num_coils: int | None = None
    target: Literal["rss", "mvue", "complex"] = "rss"
    data: str = ""

    def __post_init__(self) -> None:
        if any(a <= 1 for a in self.accelerations):
            raise ValueError(f"accelerations must be > 1; got {list(self.accelerations)}")
        if any(not 0 < c < 1 for c in self.center_fractions):
            raise ValueError(f"center_fractions must be in (0, 1); got {list(self.center_fractions)}")


@dataclass(frozen=True)
class WeightsSource:
    """Where pretrained weights come from.

    ``hub``: a Hugging Face repo at a pinned revision (file sha256 checked when given);
    ``upstream``: a URL in another format plus the converter that turns it into ours;
    ``package``: a checkpoint folder shipped inside mrizoo (``path`` under ``mrizoo/weights``,
    sha256 required): small demo models that work offline;
    ``builtin``: nothing to fetch (classical methods without learned weights);
    ``none``: not trained/published yet (the entry's recipe trains it).
    """

    kind: Literal["hub", "upstream", "package", "builtin", "none"] = "none"
    repo_id: str | None = None
    path: str | None = None
    revision: str | None = None
    filename: str = "model.safetensors"
    url: str | None = None
    converter: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "hub" and not (self.repo_id and self.revision):
            raise ValueError("hub weights need 'repo_id' and a pinned 'revision'")
        if self.kind == "upstream" and not (self.url and self.converter):
            raise ValueError("upstream weights need 'url' and 'converter'")
        if self.kind == "package" and not (self.path and self.sha256):
            raise ValueError("package weights need 'path' (a folder under mrizoo/weights) and their 'sha256'")
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"sha256 must be 64 lowercase hex digits; got {self.sha256!r}")

    @property
    def available(self) -> bool:
        return self.kind != "none"


@dataclass(frozen=True)
class ModelEntry:
    """One zoo name: architecture + config, task, training recipe, weights, and metadata."""

    name: str
    description: str
    model: ModelSpec
    task: TaskSpec = field(default_factory=TaskSpec)
    weights: WeightsSource = field(default_factory=WeightsSource)
    recipe: str | None = None
    tags: tuple[str, ...] = ()
    papers: tuple[str, ...] = ()
    license: str = "mit"

    def __post_init__(self) -> None:
        parsed = parse_name(self.name)
        family = self.model.arch.split("_")[0]
        if parsed.arch != family:
            raise ValueError(
                f"name {self.name!r} must start with its architecture family {family!r} (model.arch)"
            )
        if parsed.acceleration is not None and float(parsed.acceleration) not in self.task.accelerations:
            raise ValueError(
                f"name {self.name!r} says r{parsed.acceleration} but task.accelerations is "
                f"{list(self.task.accelerations)}"
            )

    @property
    def arch(self) -> str:
        return self.model.arch
