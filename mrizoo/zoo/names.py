"""The zoo's naming grammar.

A name is lowercase tokens joined by ``-``: ``<arch>[-<data>...][-r<acceleration>][-<variant>...]``.
The first token is the architecture family; an ``r<N>`` token (N an integer) is the
acceleration the model was trained for. Examples: ``unet-knee-r4``, ``rcgan-brain-r8``,
``ncsnv2-brain`` (acceleration-agnostic), ``varnet-fastmri-knee``, ``cgsense``.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass

__all__ = ["ModelName", "parse_name", "closest_names", "match_names"]

_TOKEN = re.compile(r"^[a-z0-9][a-z0-9.]*$")
_ACCEL = re.compile(r"^r(\d+)$")


@dataclass(frozen=True)
class ModelName:
    """A parsed zoo name."""

    name: str
    arch: str
    data: tuple[str, ...]
    acceleration: int | None
    variant: tuple[str, ...]


def parse_name(name: str) -> ModelName:
    """Split a zoo name into its parts; raises ``ValueError`` when it breaks the grammar."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a zoo name must be a non-empty string; got {name!r}")
    tokens = name.split("-")
    bad = [t for t in tokens if not _TOKEN.match(t)]
    if bad:
        raise ValueError(
            f"zoo name {name!r}: tokens must be lowercase letters, digits and dots joined by '-'; "
            f"offending token(s): {bad}"
        )
    accel_at = [i for i, t in enumerate(tokens) if _ACCEL.match(t)]
    if len(accel_at) > 1:
        raise ValueError(f"zoo name {name!r} has more than one acceleration token r<N>")
    if accel_at and accel_at[0] == 0:
        raise ValueError(f"zoo name {name!r} must start with the architecture, not an acceleration")
    if accel_at:
        i = accel_at[0]
        return ModelName(name, tokens[0], tuple(tokens[1:i]), int(_ACCEL.match(tokens[i]).group(1)),
                         tuple(tokens[i + 1 :]))
    return ModelName(name, tokens[0], tuple(tokens[1:]), None, ())


def match_names(names: list[str], pattern: str) -> list[str]:
    """Names matching a shell-style pattern (``varnet-*``, ``*-r4``), sorted."""
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def closest_names(name: str, names: list[str], n: int = 3) -> list[str]:
    """The registered names that look most like ``name`` (for 'did you mean' messages)."""
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    if not close:  # fall back to names sharing the architecture token
        head = name.split("-")[0]
        close = [x for x in sorted(names) if x.split("-")[0] == head][:n]
    return close
