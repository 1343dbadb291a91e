"""Exceptions raised by mrizoo.

Every user-facing error says *where* (file and field) and *what was expected*, so a
researcher can fix the input without reading the source.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["MrizooError", "InputError", "WeightsUnavailableError"]


class MrizooError(Exception):
    """Base class of every error raised on purpose by mrizoo."""


class InputError(MrizooError, ValueError):
    """Bad user input: a file, a field of it, or an argument that cannot be used.

    The message reads ``<path>: <field>: <problem> (expected <expected>, got <got>)``,
    leaving out the parts that are not given.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | os.PathLike[str] | None = None,
        field: str | None = None,
        expected: Any = None,
        got: Any = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        self.field = field
        self.expected = expected
        self.got = got
        parts = [p for p in (self.path, None if field is None else f"'{field}'") if p]
        detail = []
        if expected is not None:
            detail.append(f"expected {expected}")
        if got is not None:
            detail.append(f"got {got}")
        message = ": ".join([*parts, problem])
        if detail:
            message += f" ({', '.join(detail)})"
        super().__init__(message)


class WeightsUnavailableError(MrizooError, RuntimeError):
    """Pretrained weights are needed but cannot be had (not trained yet, not cached, not reachable)."""
