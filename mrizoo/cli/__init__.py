"""The ``mrizoo`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments, returning an exit code). Adding a command = adding a module name to
``_COMMANDS``; no argparse boilerplate is repeated per script.

Start-up stays light: :func:`main` registers only the module of the command it is given, and
the top-level help registers every module except those in ``_HEAVY`` (whose parsers are built
from registries that need torch), which are listed by their one-line summary; torch is
imported only by the commands that run it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mrizoo import __version__
from mrizoo.errors import MrizooError

__all__ = ["main", "build_parser"]

_COMMANDS = ("demo", "list", "info", "reconstruct", "evaluate", "pull", "cache", "datasets", "convert", "pool",
             "minipool", "similarity", "train", "study", "card", "push", "import", "app", "export")
_MODULES = {"list": "zoo", "info": "zoo", "cache": "pull", "pool": "pools", "similarity": "pools",
            "card": "publish", "push": "publish", "import": "import_cmd"}


# commands whose parsers need torch to build: their summary for the top-level help
_HEAVY = {
    "convert": "convert raw data or a catalog dataset to fastMRI-convention HDF5 volumes",
    "import": "convert a checkpoint file you already have into an mrizoo checkpoint folder",
}


def build_parser(command: str | None = None, *, light: bool = False) -> argparse.ArgumentParser:
    """The ``mrizoo`` parser: every command, or only ``command``'s module when given.

    ``light``: list the commands in ``_HEAVY`` by their summary instead of building them.
    """
    parser = argparse.ArgumentParser(
        prog="mrizoo",
        description="mrizoo: a model zoo for accelerated-MRI reconstruction.",
    )
    parser.add_argument("--version", action="version", version=f"mrizoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = _MODULES.get(command, command) if command in _COMMANDS else None
    for module in dict.fromkeys(_MODULES.get(c, c) for c in _COMMANDS):
        if wanted is not None and module != wanted:
            continue
        names = [c for c in _COMMANDS if _MODULES.get(c, c) == module]
        if light and wanted is None and all(n in _HEAVY for n in names):
            for name in names:
                sub.add_parser(name, help=_HEAVY[name])
        else:
            importlib.import_module(f"mrizoo.cli.{module}").register(sub)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The first positional argument (the top level has no options that take a value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mrizoo`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv), light=True)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except MrizooError as err:
        print(f"mrizoo {args.command}: error: {err}", file=sys.stderr)
        return 2
