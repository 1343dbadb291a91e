"""A small name -> item registry whose unknown-name errors suggest the closest names.

Used by every table of named things the package looks up from user input (masks, datasets,
recipes, zoo names), so that a misspelt name always gets the same "did you mean" hint.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

from mrizoo.errors import InputError

__all__ = ["Registry", "close_matches", "did_you_mean", "suggestion_hint"]

T = TypeVar("T")


def close_matches(word: str, options: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``options`` that look most like ``word`` (difflib ratio >= 0.5), best first."""
    return difflib.get_close_matches(str(word), list(options), n=n, cutoff=0.5)


def suggestion_hint(close: Sequence[str]) -> str:
    """``"; did you mean 'a', 'b'?"`` for suggestions already found, ``""`` for none."""
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def did_you_mean(word: str, options: Iterable[str], n: int = 3) -> str:
    """The hint of :func:`suggestion_hint` for the options closest to ``word``."""
    return suggestion_hint(close_matches(word, options, n))


class Registry(Generic[T]):
    """Names to items, registered once each; ``lookup`` of an unknown name is an ``InputError``.

    ``kind`` names the things in messages ("mask", "dataset"); ``field`` is the ``InputError``
    field of a bad name.
    """

    def __init__(self, kind: str, *, field: str = "name") -> None:
        self.kind, self.field = kind, field
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> None:
        """Add ``item`` under ``name``; a name is registered once only."""
        if not isinstance(name, str) or not name:
            raise InputError(f"a {self.kind} name must be a non-empty string", field=self.field, got=repr(name))
        if name in self._items:
            raise InputError(f"{self.kind} name {name!r} is already registered", field=self.field,
                             expected="a new name")
        self._items[name] = item

    def lookup(self, name: str) -> T:
        """The item of ``name``; an unknown name suggests the closest registered ones."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise InputError(f"unknown {self.kind} {name!r}{did_you_mean(str(name), self._items)}",
                             field=self.field, expected=f"one of {', '.join(self.names())}") from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching the shell-style ``pattern``."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __delitem__(self, name: str) -> None:
        del self._items[name]
