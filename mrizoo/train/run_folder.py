"""The files of a run folder: names, the checks before a run starts, and ``metrics.jsonl``.

``RUN_DIR/run.json`` describes the run (recipe sha256, smoke flag, process count), so a resume
refuses a folder started with other settings; ``RUN_DIR/recipe.yaml`` is the recipe file byte
for byte; ``RUN_DIR/metrics.jsonl`` holds one JSON line per validation and logged training step.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from mrizoo._atomic import atomic_file
from mrizoo.errors import InputError
from mrizoo.models.provenance import TRAINING_SUMMARY_NAME
from mrizoo.train.plot import read_metrics
from mrizoo.train.recipe import RecipeInfo

__all__ = ["METRICS_NAME", "SUMMARY_NAME", "RUN_NAME", "RECIPE_NAME", "MODEL_DIR", "MetricsLog", "check_run_dir",
           "clear_run_dir", "copy_recipe", "default_run_dir", "jsonable", "write_run_description"]

METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = TRAINING_SUMMARY_NAME
RUN_NAME = "run.json"
RECIPE_NAME = "recipe.yaml"
MODEL_DIR = "model"  # the selected weights of a finished run


def default_run_dir(info: RecipeInfo, smoke: bool) -> Path:
    """``runs/<recipe>`` (``runs/<recipe>-smoke`` for a smoke run)."""
    return Path("runs") / (info.name + ("-smoke" if smoke else ""))


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats replaced (NaN -> None, +-inf -> +-1e308) for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class MetricsLog:
    """``metrics.jsonl`` written by the main process, one flushed line per record."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        """Keep only the records up to ``step`` (a resumed run rewrites what came after)."""
        if not self.enabled or not self.path.is_file():
            return
        keep = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= step]
        with atomic_file(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(jsonable(record)) + "\n")
                f.flush()


def check_run_dir(run_dir: Path, *, resume: bool, overwrite: bool, info: RecipeInfo, smoke: bool,
                  world: int) -> None:
    """Refuse to mix runs: a folder holding a run needs ``resume`` (same recipe) or ``overwrite``."""
    holds_run = any((run_dir / n).exists() for n in (METRICS_NAME, "checkpoints", "model", RUN_NAME))
    if resume:
        if overwrite:
            raise InputError("--resume continues a run and --overwrite clears it: pass one of them",
                             field="resume", expected="--resume or --overwrite", got="both")
        if not holds_run:
            raise InputError("cannot resume: the run folder holds no run" if run_dir.exists()
                             else "cannot resume: the run folder does not exist", path=run_dir,
                             expected="the RUN_DIR of an earlier `mrizoo train` (run.json, checkpoints/), "
                                      "or no --resume to start a new run")
        meta_path = run_dir / RUN_NAME
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise InputError(f"cannot resume: unreadable run description ({err})", path=meta_path) from None
            if not isinstance(meta, dict):
                raise InputError("cannot resume: the run description is not a JSON mapping", path=meta_path)
            for key, now in (("recipe_sha256", info.sha256), ("smoke", smoke), ("num_processes", world)):
                if meta.get(key) != now:
                    raise InputError("cannot resume: the run was started with another setting", path=meta_path,
                                     field=key, expected=meta.get(key), got=now)
        return
    if holds_run and not overwrite:
        raise InputError("the run folder holds a run already", path=run_dir,
                         expected="--resume to continue it, --overwrite to start again, or another --out")


def clear_run_dir(run_dir: Path) -> None:
    """Remove what an earlier run wrote (``--overwrite``)."""
    for name in ("checkpoints", "selected", "model"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in (METRICS_NAME, "metrics.png", SUMMARY_NAME, RUN_NAME, RECIPE_NAME):
        (run_dir / name).unlink(missing_ok=True)


def copy_recipe(info: RecipeInfo, run_dir: Path) -> None:
    """The recipe file, byte for byte (``run.json`` holds its sha256 and the smoke flag), written atomically."""
    with atomic_file(run_dir / RECIPE_NAME) as tmp:
        shutil.copyfile(info.path, tmp)


def write_run_description(run_dir: Path, description: dict[str, Any]) -> None:
    """``run.json``: what a resume must match (see :func:`check_run_dir`)."""
    with atomic_file(run_dir / RUN_NAME) as tmp:
        tmp.write_text(json.dumps(description, indent=1) + "\n")
