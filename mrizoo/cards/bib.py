"""The papers model cards cite: a small reader of ``papers.bib`` and the short labels of the card text.

The BibTeX lives in a ``.bib`` file (``mrizoo/cards/papers.bib``) so that it can be checked and
edited with BibTeX tools; cards print each entry exactly as written there. The reader knows the
subset the file uses: ``@type{key, name = {value} | "value" | bare, ...}`` entries, ``%`` comment
lines and ``@comment`` blocks between them. Anything else is an error naming the line, so a typo
in the file cannot silently drop a citation.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass

from mrizoo.errors import InputError

__all__ = ["BibEntry", "parse_bib", "shipped_papers", "PAPER_LABELS", "REQUIRED_FIELDS"]

#: Fields every cited entry must have.
REQUIRED_FIELDS = ("title", "author", "year")

#: Short author-year labels the card text uses when it names a paper (keys of ``papers.bib``).
PAPER_LABELS = {
    "lin2024": "Lin & Heckel, ICML 2024",
    "bendel2023": "Bendel, Ahmad & Schniter, NeurIPS 2023",
    "jalal2021": "Jalal et al., NeurIPS 2021",
    "zbontar2018": "Zbontar et al., 2018",
    "sriram2020": "Sriram et al., MICCAI 2020",
    "darestani2021": "Darestani & Heckel, IEEE TCI 2021",
}

_HEAD = re.compile(r"@([A-Za-z]+)\s*([{(])")
_KEY = re.compile(r"\s*([^\s,{}()=\"#%]+)\s*,")
_FIELD = re.compile(r"\s*([A-Za-z][A-Za-z0-9_:.+-]*)\s*=\s*")
_BARE = re.compile(r"[A-Za-z0-9_:.+-]+")


@dataclass(frozen=True)
class BibEntry:
    """One BibTeX entry: its type, key, fields (names lowercased, outer delimiters removed) and text."""

    kind: str
    key: str
    fields: dict[str, str]
    text: str


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        self.text, self.source, self.pos = text, source, 0

    def fail(self, problem: str, at: int, **extra: str) -> InputError:
        line = self.text.count("\n", 0, at) + 1
        return InputError(problem, path=f"{self.source}:{line}", **extra)

    def balanced(self, start: int, close: str) -> int:
        """Index just past the delimiter closing the group that opens at ``start``."""
        opening = self.text[start]
        depth, i = 0, start
        while i < len(self.text):
            c = self.text[i]
            if c == "\\":
                i += 2
                continue
            if c == opening and opening != close:
                depth += 1
            elif c == close:
                depth -= 1
                if depth == 0 or opening == close:
                    return i + 1
            i += 1
        raise self.fail(f"unclosed {opening!r}", start, expected=f"a matching {close!r}")

    def value(self) -> str:
        t, i = self.text, self.pos
        if i < len(t) and t[i] == "{":
            end = self.balanced(i, "}")
            self.pos = end
            return t[i + 1:end - 1]
        if i < len(t) and t[i] == '"':
            end = t.find('"', i + 1)
            if end < 0:
                raise self.fail("unclosed '\"'", i)
            self.pos = end + 1
            return t[i + 1:end]
        m = _BARE.match(t, i)
        if not m:
            raise self.fail("a field value must be {braced}, \"quoted\" or a bare number/word", i,
                            got=repr(t[i:i + 20]))
        self.pos = m.end()
        return m.group()

    def entry(self, start: int, kind: str, close: str) -> BibEntry:
        t = self.text
        m = _KEY.match(t, self.pos)
        if not m:
            raise self.fail("entry without a key", start, expected="@type{key, ...}")
        key, self.pos = m.group(1), m.end()
        fields: dict[str, str] = {}
        while True:
            while self.pos < len(t) and t[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(t):
                raise self.fail("unclosed entry", start, field=key, expected=f"a closing {close!r}")
            if t[self.pos] == close:
                self.pos += 1
                return BibEntry(kind.lower(), key, fields, t[start:self.pos])
            m = _FIELD.match(t, self.pos)
            if not m:
                raise self.fail("expected a field (name = value) or the end of the entry", self.pos,
                                field=key, got=repr(t[self.pos:self.pos + 20]))
            name, self.pos = m.group(1).lower(), m.end()
            if name in fields:
                raise self.fail(f"field {name!r} given twice", m.start(), field=key)
            fields[name] = self.value()
            while self.pos < len(t) and t[self.pos].isspace():
                self.pos += 1
            if self.pos < len(t) and t[self.pos] == ",":
                self.pos += 1
            elif self.pos < len(t) and t[self.pos] != close:
                raise self.fail("expected ',' or the end of the entry", self.pos, field=key,
                                got=repr(t[self.pos:self.pos + 20]))

    def read(self) -> dict[str, BibEntry]:
        t, entries = self.text, {}
        while self.pos < len(t):
            c = t[self.pos]
            if c.isspace():
                self.pos += 1
            elif c == "%":
                nl = t.find("\n", self.pos)
                self.pos = len(t) if nl < 0 else nl + 1
            elif c == "@":
                start = self.pos
                m = _HEAD.match(t, start)
                if not m:
                    raise self.fail("'@' not followed by an entry type and '{'", start)
                kind, close = m.group(1), "}" if m.group(2) == "{" else ")"
                if kind.lower() == "comment":
                    self.pos = self.balanced(m.end() - 1, close)
                    continue
                if kind.lower() in ("string", "preamble"):
                    raise self.fail(f"@{kind} is not supported", start, expected="plain entries")
                self.pos = m.end()
                e = self.entry(start, kind, close)
                if e.key in entries:
                    raise self.fail("duplicate key", start, field=e.key)
                entries[e.key] = e
            else:
                raise self.fail("text outside an entry", self.pos, expected="@type{...} entries and % comments",
                                got=repr(t[self.pos:self.pos + 20]))
        return entries


def parse_bib(text: str, source: str = "papers.bib") -> dict[str, BibEntry]:
    """The entries of a BibTeX text by key, in file order; each must have :data:`REQUIRED_FIELDS`."""
    entries = _Reader(text, source).read()
    for key, e in entries.items():
        missing = [f for f in REQUIRED_FIELDS if not e.fields.get(f, "").strip()]
        if missing:
            raise InputError("BibTeX entry lacks required fields", path=source, field=key,
                             expected=f"all of {list(REQUIRED_FIELDS)}", got=f"missing {missing}")
    return entries


@functools.cache
def shipped_papers() -> dict[str, BibEntry]:
    """The entries of ``mrizoo/cards/papers.bib`` (read once)."""
    item = importlib.resources.files("mrizoo.cards") / "papers.bib"
    return parse_bib(item.read_text(encoding="utf-8"), "mrizoo/cards/papers.bib")
