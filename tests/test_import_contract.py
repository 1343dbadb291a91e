"""The layer contract in pyproject.toml (``[tool.importlinter]``) holds: no lower layer imports a higher one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_layers_contract_is_kept() -> None:
    pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e '.[test]')")
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("the lint-imports command of import-linter is not on PATH")
    run = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 kept, 0 broken" in run.stdout, run.stdout
