"""The ``mrizoo`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments, returning an exit code). Adding a command = adding a module name to
``_COMMANDS``; no argparse boilerplate is repeated per script.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mrizoo.errors import MrizooError

__all__ = ["main", "build_parser"]

_COMMANDS = ("demo", "list", "info", "reconstruct", "evaluate", "pull", "cache", "datasets", "convert", "pool",
             "minipool", "similarity", "train", "card", "push")
_MODULES = {"list": "zoo", "info": "zoo", "cache": "pull", "pool": "pools", "similarity": "pools",
            "card": "publish", "push": "publish"}


def build_parser() -> argparse.ArgumentParser:
    from mrizoo import __version__

    parser = argparse.ArgumentParser(
        prog="mrizoo",
        description="mrizoo: a model zoo for accelerated-MRI reconstruction.",
    )
    parser.add_argument("--version", action="version", version=f"mrizoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in dict.fromkeys(_MODULES.get(c, c) for c in _COMMANDS):
        importlib.import_module(f"mrizoo.cli.{module}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mrizoo`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except MrizooError as err:
        print(f"mrizoo {args.command}: error: {err}", file=sys.stderr)
        return 2
