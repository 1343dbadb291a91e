"""The one YAML reader of the package: safe loading, and numbers read as YAML 1.2 reads them.

PyYAML follows YAML 1.1, where ``1e-3`` (no dot) is a string; every config file the package
reads (recipes, zoo entries, pools, dataset configs, sidecars) goes through :func:`read_yaml` or
:func:`parse_yaml` so that a value written ``1e-3`` is a float everywhere, not in some files only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mrizoo.errors import InputError

__all__ = ["Loader", "parse_yaml", "read_yaml"]

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~20x faster


class Loader(_Base):  # type: ignore[misc, valid-type]
    """Safe loader (libyaml when installed) that also reads ``1e-3`` and ``-2E+5`` as floats."""


# YAML 1.1's float pattern plus mantissas without a dot (YAML 1.2 core schema)
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def parse_yaml(text: str | bytes) -> Any:
    """The document in ``text``; raises ``yaml.YAMLError`` (callers that name a file: :func:`read_yaml`)."""
    return yaml.load(text, Loader=Loader)  # noqa: S506 (a safe loader)


def read_yaml(path: Any, text: str | bytes | None = None) -> Any:
    """The YAML document of file ``path`` (or of its already read ``text``; ``path`` then names it).

    Unreadable files, undecodable bytes and invalid YAML are ``InputError``s naming the file.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes() if text is None else text
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        return parse_yaml(raw)
    except yaml.YAMLError as err:
        raise InputError(f"not valid YAML ({err})".replace("\n", " "), path=source) from None
    except UnicodeDecodeError as err:
        raise InputError("not UTF-8 text", path=source, got=str(err)) from None
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror or err})", path=source) from None
