"""Training checkpoints: written atomically, checked before they load, no pickle ever run.

A checkpoint is the folder ``<root>/step_<N>``:

- what ``Accelerator.save_state`` writes for the prepared models and optimizers (models as
  safetensors, optimizer states as torch files, read back with ``weights_only=True``);
- ``trainer_tensors.safetensors`` + ``trainer_state.json``: the trainer's own objects (counters,
  early-stopping policy, loss state, EMA, schedulers), as JSON with their tensors in
  safetensors, and ``rng_state_<rank>.safetensors`` (every process's random generators).
  Nothing of the trainer goes through pickle: accelerate's ``custom_checkpoint_*.pkl`` and
  ``random_states_*.pkl`` are neither written nor read;
- ``trainer_state.json`` also records the sha256 of every other file, so a damaged, truncated
  or edited checkpoint is found before anything of it loads (:meth:`CheckpointManager.verify`).

It is assembled in ``<root>/.step_<N>.tmp`` and renamed into place once every process has
finished writing, so a folder named ``step_<N>`` is complete when it was written; leftovers of
an interrupted save are removed at the next save.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrizoo.errors import InputError

__all__ = ["CheckpointManager", "Checkpoint", "STATE_NAME", "TENSORS_NAME", "DamagedCheckpointError"]

STATE_NAME = "trainer_state.json"
TENSORS_NAME = "trainer_tensors.safetensors"
FORMAT = 2
_STEP_DIR = re.compile(r"^step_(\d+)$")
_RNG_FILE = "rng_state_{rank}.safetensors"
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth")


class DamagedCheckpointError(InputError):
    """A checkpoint folder that does not hold what was written there (truncated, edited, foreign files)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------ state <-> JSON + tensors


def _split(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """``value`` with every tensor replaced by ``{"__tensor__": key}`` (the tensor goes to ``tensors``)."""
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            value = {str(k): v for k, v in value.items()}
        return {k: _split(v, tensors, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"training state {where} holds a {type(value).__name__}, which checkpoints cannot store")


def _join(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return tensors[value["__tensor__"]]
        return {k: _join(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, tensors) for v in value]
    return value


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """This process's random generators as tensors plus JSON metadata (python, numpy, torch, cuda)."""
    version, py_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(),
               "python": torch.tensor(py_state, dtype=torch.int64),
               "numpy": torch.from_numpy(np.asarray(keys, dtype=np.uint32).astype(np.int64))}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = s
    meta = {"python": json.dumps([version, gauss]), "numpy": json.dumps([kind, int(pos), int(has_gauss),
                                                                         float(cached)])}
    return tensors, meta


def _set_rng_state(path: Path) -> None:
    # imported on use: a heavy package that most calls of this module do not need
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    version, gauss = json.loads(meta["python"])
    random.setstate((version, tuple(int(x) for x in tensors["python"].tolist()), gauss))
    kind, pos, has_gauss, cached = json.loads(meta["numpy"])
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda_")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


# ---------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint folder and the optimizer step it was taken at."""

    step: int
    path: Path

    def state(self) -> dict[str, Any]:
        """The contents of ``trainer_state.json`` (counters, object states, file digests)."""
        path = self.path / STATE_NAME
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DamagedCheckpointError(f"unreadable trainer state ({err})", path=path) from None
        if not isinstance(doc, dict):
            raise DamagedCheckpointError("the trainer state is not a JSON mapping", path=path)
        return doc


class CheckpointManager:
    """Saves, lists, prunes, verifies and loads the checkpoints under ``root``.

    ``objects`` are the trainer's own stateful objects (``state_dict``/``load_state_dict``),
    saved as JSON + safetensors in the order given.
    """

    def __init__(self, root: str | os.PathLike[str], keep: int = 2, objects: list[Any] | None = None) -> None:
        self.root = Path(root)
        self.keep = max(1, int(keep))
        self.objects = list(objects or [])

    def list(self) -> list[Checkpoint]:
        """Checkpoint folders (those holding a trainer state), oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for item in self.root.iterdir():
            match = _STEP_DIR.match(item.name)
            if match and item.is_dir() and (item / STATE_NAME).is_file():
                found.append(Checkpoint(int(match.group(1)), item))
        return sorted(found, key=lambda c: c.step)

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint folder, or None."""
        found = self.list()
        return found[-1] if found else None

    def save(self, accelerator: Any, step: int, state: dict[str, Any]) -> Path:
        """Write the accelerator state, the trainer objects and ``state`` as ``step_<step>``; collective call."""
        final = self.root / f"step_{step}"
        tmp = self.root / f".step_{step}.tmp"
        if accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            for item in self.root.iterdir():  # leftovers of interrupted saves
                if item.name.startswith(".step_") and item.name.endswith(".tmp"):
                    shutil.rmtree(item, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp), safe_serialization=True)
        # imported on use: a heavy package that most calls of this module do not need
        from safetensors.torch import save_file

        rng, rng_meta = _rng_state()
        save_file(rng, str(tmp / _RNG_FILE.format(rank=accelerator.process_index)), metadata=rng_meta)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            for item in tmp.glob("random_states_*.pkl"):  # replaced by the rng_state files
                item.unlink()
            tensors: dict[str, torch.Tensor] = {}
            objects = [_split(obj.state_dict(), tensors, f"object {i}") for i, obj in enumerate(self.objects)]
            save_file(tensors, str(tmp / TENSORS_NAME))
            files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            doc = {**state, "format": FORMAT, "objects": objects, "files": files}
            (tmp / STATE_NAME).write_text(json.dumps(doc, indent=1) + "\n")
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

    def verify(self, checkpoint: Checkpoint, num_processes: int = 1) -> dict[str, Any]:
        """The checkpoint's trainer state after checking that every file is exactly what was written.

        Raises :class:`DamagedCheckpointError` for a missing, truncated or changed file, a
        pickle-type file that was not written by the trainer, or a checkpoint of an older format.
        """
        doc = checkpoint.state()
        path = checkpoint.path / STATE_NAME
        files = doc.get("files")
        if doc.get("format") != FORMAT or not isinstance(files, dict) or not isinstance(doc.get("objects"), list):
            raise DamagedCheckpointError("checkpoint of an older format, which stored pickled trainer state; it is "
                                         "not loaded", path=path, field="format", expected=FORMAT,
                                         got=doc.get("format"))
        for rank in range(num_processes):
            if _RNG_FILE.format(rank=rank) not in files:
                raise DamagedCheckpointError("checkpoint written by another number of processes", path=path,
                                             field="files", expected=f"{num_processes} processes",
                                             got=f"no {_RNG_FILE.format(rank=rank)}")
        for name, expected in files.items():
            target = checkpoint.path / name
            if "/" in name or "\\" in name or name.startswith("."):
                raise DamagedCheckpointError("the file list names a path outside the checkpoint", path=path,
                                             field="files", got=name)
            if not target.is_file():
                raise DamagedCheckpointError("a checkpoint file is missing", path=target)
            actual = _sha256(target)
            if actual != expected:
                raise DamagedCheckpointError("a checkpoint file was changed or damaged after it was written",
                                             path=target, field="sha256", expected=expected, got=actual)
        foreign = sorted(p.name for p in checkpoint.path.iterdir()
                         if p.name not in files and p.name != STATE_NAME and p.suffix in _PICKLE_SUFFIXES)
        if foreign:
            raise DamagedCheckpointError("the checkpoint holds files the trainer did not write; they are not "
                                         "loaded", path=checkpoint.path, got=", ".join(foreign))
        return doc

    def load(self, accelerator: Any, checkpoint: Checkpoint) -> dict[str, Any]:
        """Verify ``checkpoint``, then restore the accelerator state, the trainer objects and the RNGs.

        Returns its trainer state. Every torch file is read with ``weights_only=True``; the
        trainer's own state comes from JSON and safetensors.
        """
        # imported on use: a heavy package that most calls of this module do not need
        from safetensors.torch import load_file

        doc = self.verify(checkpoint, accelerator.num_processes)
        if len(doc["objects"]) != len(self.objects):
            raise DamagedCheckpointError("the checkpoint holds the state of other training objects",
                                         path=checkpoint.path / STATE_NAME, field="objects",
                                         expected=len(self.objects), got=len(doc["objects"]))
        try:
            accelerator.load_state(str(checkpoint.path), load_kwargs={"weights_only": True})
            tensors = load_file(str(checkpoint.path / TENSORS_NAME))
            for obj, saved in zip(self.objects, doc["objects"]):
                obj.load_state_dict(_join(saved, tensors))
            _set_rng_state(checkpoint.path / _RNG_FILE.format(rank=accelerator.process_index))
        except (InputError, FileNotFoundError):
            raise
        except Exception as err:  # torch/safetensors errors of files that passed their digests
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DamagedCheckpointError(f"the checkpoint cannot be loaded ({first})", path=checkpoint.path) from None
        return doc

    def resume(self, accelerator: Any) -> int | None:
        """Load the newest intact checkpoint, falling back to older ones (and saying so); its step.

        None when the run wrote no checkpoint yet (it starts from the beginning); an
        :class:`InputError` when none of them can be loaded.
        """
        main = accelerator.is_main_process
        found = self.list()
        if not found:
            if main:
                print(f"mrizoo train: {self.root} holds no checkpoint yet; starting from step 0", file=sys.stderr)
            return None
        problems = []
        for ckpt in reversed(found):
            try:
                self.load(accelerator, ckpt)
            except DamagedCheckpointError as err:
                problems.append(str(err))
                if main:
                    print(f"mrizoo train: warning: checkpoint {ckpt.path} is not usable: {err}", file=sys.stderr)
                continue
            if problems and main:
                print(f"mrizoo train: resuming from the older checkpoint {ckpt.path} (step {ckpt.step}); the "
                      "newer ones are removed", file=sys.stderr)
            return ckpt.step
        raise InputError("cannot resume: no checkpoint of the run can be loaded", path=self.root,
                         expected="an intact checkpoints/step_N folder, or --overwrite to start again",
                         got="; ".join(problems))
