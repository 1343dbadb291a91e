"""Training checkpoints: ``accelerate`` states written atomically, the last few kept.

A checkpoint is the folder ``<root>/step_<N>`` written by ``Accelerator.save_state`` (models,
optimizers, RNG states of every process and every object registered with
``register_for_checkpointing``) plus ``trainer_state.json`` (the counters, readable without
torch). It is assembled in ``<root>/.step_<N>.tmp`` and renamed into place once every process
has finished writing, so a folder named ``step_<N>`` is always complete; leftovers of an
interrupted save are removed at the next save.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CheckpointManager", "Checkpoint", "STATE_NAME"]

STATE_NAME = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint folder and the optimizer step it was taken at."""

    step: int
    path: Path

    def state(self) -> dict[str, Any]:
        """The trainer counters saved with it."""
        return json.loads((self.path / STATE_NAME).read_text())


class CheckpointManager:
    """Saves, lists, prunes and loads the checkpoints under ``root``."""

    def __init__(self, root: str | os.PathLike[str], keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = max(1, int(keep))

    def list(self) -> list[Checkpoint]:
        """Complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for item in self.root.iterdir():
            match = _STEP_DIR.match(item.name)
            if match and item.is_dir() and (item / STATE_NAME).is_file():
                found.append(Checkpoint(int(match.group(1)), item))
        return sorted(found, key=lambda c: c.step)

    def latest(self) -> Checkpoint | None:
        """The newest complete checkpoint, or None."""
        found = self.list()
        return found[-1] if found else None

    def save(self, accelerator: Any, step: int, state: dict[str, Any]) -> Path:
        """Write the accelerator state and ``state`` (JSON) as ``step_<step>``; collective call."""
        final = self.root / f"step_{step}"
        tmp = self.root / f".step_{step}.tmp"
        if accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            for item in self.root.iterdir():  # leftovers of interrupted saves
                if item.name.startswith(".step_") and item.name.endswith(".tmp"):
                    shutil.rmtree(item, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / STATE_NAME).write_text(json.dumps(state, indent=1) + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            self._prune()
        accelerator.wait_for_everyone()
        return final

    def _prune(self) -> None:
        found = self.list()
        for old in found[: max(0, len(found) - self.keep)]:
            shutil.rmtree(old.path, ignore_errors=True)

    def discard_after(self, step: int) -> None:
        """Remove checkpoints newer than ``step`` (main process only)."""
        for ckpt in self.list():
            if ckpt.step > step:
                shutil.rmtree(ckpt.path, ignore_errors=True)

    @staticmethod
    def load(accelerator: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        """Restore the accelerator state of ``checkpoint``; returns its trainer counters."""
        accelerator.load_state(str(checkpoint.path))
        return checkpoint.state()
