"""Light start-up: ``mrizoo --help``, ``mrizoo list`` and ``import mrizoo`` do not import torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mrizoo import cli


def _modules_after(code: str) -> set[str]:
    """The heavy modules imported by ``code`` run in a fresh interpreter."""
    probe = (
        "import sys, io, contextlib\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + "print(' '.join(m for m in ('torch', 'numpy', 'h5py', 'scipy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["list", "varnet*"], ["--version"]])
def test_light_commands_do_not_import_torch(argv: list[str]) -> None:
    code = f"from mrizoo.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert "torch" not in _modules_after(code)


def test_import_mrizoo_is_lazy_but_complete() -> None:
    assert "torch" not in _modules_after("import mrizoo\nmrizoo.__version__")
    assert "torch" in _modules_after("import mrizoo\nmrizoo.fft2c")
    import mrizoo

    for name in mrizoo.__all__:
        assert getattr(mrizoo, name) is not None, name
    with pytest.raises(AttributeError, match="no_such_name"):
        mrizoo.no_such_name  # noqa: B018


def test_heavy_command_summaries_match_their_parsers() -> None:
    """The top-level help lists heavy commands by a summary: it must be the parser's own help."""
    full = cli.build_parser()
    light = cli.build_parser(light=True)

    def helps(parser) -> dict[str, str]:
        sub = next(a for a in parser._actions if a.dest == "command")
        return {a.dest: a.help for a in sub._choices_actions}

    assert helps(light) == helps(full)
    assert list(cli._HEAVY) and set(cli._HEAVY) <= set(cli._COMMANDS)


def test_a_given_command_builds_only_its_parser() -> None:
    parser = cli.build_parser("list", light=True)
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"list", "info"}  # the zoo module registers both
    args = parser.parse_args(["list", "unet*"])
    assert args.command == "list" and args.pattern == "unet*"
