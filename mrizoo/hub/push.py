"""Publish a checkpoint folder to the Hugging Face Hub: config, weights and model card in one commit.

The folder is checked before anything is sent (``config.json`` readable, architecture and
config valid, every tensor of ``model.safetensors`` present with the right shape and finite),
the files are staged together with a generated ``README.md``, and ``HfApi.upload_folder``
uploads them as a single commit. An existing card on the Hub is kept unless asked otherwise.
Authentication is left to ``huggingface_hub`` (``HF_TOKEN`` or a stored login); tokens never
appear in output or error messages.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mrizoo.errors import InputError, MrizooError
from mrizoo.hub.cards import (
    CheckpointFacts,
    PoolDescription,
    TrainingSummary,
    load_training_summary,
    recipe_training_section,
    render_card,
)
from mrizoo.hub.evaluation import RUN_RESULTS_NAME, EvaluationResults, load_results
from mrizoo.hub.format import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_config, sha256_file
from mrizoo.zoo.entry import ModelEntry

__all__ = ["TRAINING_SUMMARY_NAME", "PushError", "CheckedCheckpoint", "PushResult", "check_checkpoint",
           "stage_checkpoint", "push_checkpoint", "validate_repo_id", "checkpoint_folder"]

TRAINING_SUMMARY_NAME = "training_summary.json"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class PushError(MrizooError):
    """The Hub refused or could not be reached; the message never contains a token."""


@dataclass(frozen=True)
class CheckedCheckpoint:
    """A checkpoint folder that passed every check: its config, zoo entry and weight facts."""

    directory: Path
    config_doc: dict[str, Any]
    entry: ModelEntry
    arch_config: Any
    facts: CheckpointFacts


@dataclass(frozen=True)
class PushResult:
    """What a push did (or, for a dry run, would do)."""

    repo_id: str
    revision: str
    files: tuple[str, ...]
    card_uploaded: bool
    staging_dir: Path | None
    commit_url: str | None
    dry_run: bool


def validate_repo_id(repo_id: str) -> str:
    """``ORG/NAME`` with Hub-legal characters, else :class:`InputError`."""
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise InputError("not a Hub repository id", field="repo_id",
                         expected="ORG/NAME (letters, digits, '.', '_', '-')", got=repr(repo_id))
    return repo_id


def _entry_for(doc: dict[str, Any], source: str) -> ModelEntry:
    """The zoo entry a checkpoint belongs to, with the task recorded in its config.json."""
    from mrizoo._dataclass_io import from_dict
    from mrizoo.zoo.entry import ModelSpec, TaskSpec
    from mrizoo.zoo.registry import REGISTRY

    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise InputError("checkpoint has no zoo name", path=source, field="name",
                         expected="the zoo name the model was built from")
    task = from_dict(TaskSpec, doc["task"], source=source, prefix="task") if doc.get("task") else None
    try:
        if name in REGISTRY.names():
            entry = REGISTRY.get(name)
            if entry.model.arch != doc["arch"]:
                raise InputError("checkpoint architecture differs from its zoo entry", path=source, field="arch",
                                 expected=entry.model.arch, got=doc["arch"])
            return dataclasses.replace(entry, task=task) if task is not None else entry
        return ModelEntry(name=name, description=f"A `{doc['arch']}` checkpoint trained with mrizoo.",
                          model=ModelSpec(arch=doc["arch"]), task=task or TaskSpec(), recipe=doc.get("recipe"))
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"checkpoint name does not fit its task: {err}", path=source, field="name") from None


def _expected_tensors(arch: Any, config: Any) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the model's state dict, built without allocating weights when possible."""
    try:
        with torch.device("meta"):
            model = arch.build(config)
    except Exception:  # builders that compute buffers on real tensors: build normally
        model = arch.build(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_checkpoint(directory: str | os.PathLike[str]) -> CheckedCheckpoint:
    """Validate a checkpoint folder without building its full model in memory.

    Checks ``config.json`` (format, architecture, config), that ``model.safetensors`` is a
    readable safetensors file holding exactly the model's tensors with the model's shapes,
    and that every floating-point tensor is finite.
    """
    from safetensors import safe_open

    from mrizoo.zoo.architectures import get_architecture

    folder = Path(directory)
    if not folder.is_dir():
        raise InputError("checkpoint folder not found", path=folder,
                         expected="a folder with config.json and model.safetensors")
    doc = read_config(folder)
    source = str(folder / CONFIG_NAME)
    arch = get_architecture(doc["arch"], source)
    config = arch.make_config(None, doc["config"], source)
    entry = _entry_for(doc, source)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise InputError("weights file missing", path=weights, expected=f"{WEIGHTS_NAME} next to {CONFIG_NAME}")
    expected = _expected_tensors(arch, config)
    n_params = 0
    try:
        with safe_open(str(weights), framework="pt") as f:
            keys = set(f.keys())
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in keys}
            missing = sorted(set(expected) - keys)
            unexpected = sorted(keys - set(expected))
            wrong = [f"{k}: {shapes[k]} vs {expected[k]}" for k in sorted(keys & set(expected))
                     if shapes[k] != expected[k]]
            if missing or unexpected or wrong:
                raise InputError(
                    "weights do not match the config", path=weights,
                    expected=f"the {len(expected)} tensors of the {doc['arch']} model in config.json",
                    got=f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}; unexpected "
                        f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; shape mismatches {wrong[:5]}")
            for k in sorted(keys):
                t = f.get_tensor(k)
                n_params += t.numel()
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise InputError("weights contain NaN or infinite values", path=weights, field=k)
    except InputError:
        raise
    except Exception as err:  # safetensors raises its own types for corrupt headers and truncated data
        raise InputError(f"not a readable safetensors file ({type(err).__name__}: {err})", path=weights) from None
    facts = CheckpointFacts(
        weights_sha256=sha256_file(weights),
        num_parameters=n_params,
        num_tensors=len(expected),
        mrizoo_version=doc.get("mrizoo_version") if isinstance(doc.get("mrizoo_version"), str) else None,
        recipe_sha256=doc.get("recipe_sha256") if isinstance(doc.get("recipe_sha256"), str) else None,
    )
    return CheckedCheckpoint(folder, doc, entry, config, facts)


RUN_META_NAME = "run.json"
RUN_RECIPE_NAME = "recipe.yaml"
RUN_MODEL_DIR = "model"


def checkpoint_folder(path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """``(checkpoint folder, run folder or None)`` of what a user passes to push.

    A training run folder (``RUN_DIR``, holding ``model/config.json``) stands for its published
    checkpoint ``RUN_DIR/model``; ``RUN_DIR/model`` itself is recognised as part of its run.
    """
    src = Path(path)
    if not (src / CONFIG_NAME).is_file() and (src / RUN_MODEL_DIR / CONFIG_NAME).is_file():
        return src / RUN_MODEL_DIR, src
    if src.name == RUN_MODEL_DIR and (src.parent / RUN_META_NAME).is_file():
        return src, src.parent
    return src, None


def _run_meta(run: Path | None) -> dict[str, Any]:
    import json

    if run is None or not (run / RUN_META_NAME).is_file():
        return {}
    try:
        doc = json.loads((run / RUN_META_NAME).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"unreadable run description ({err})", path=run / RUN_META_NAME) from None
    return doc if isinstance(doc, dict) else {}


def _run_recipe_training(run: Path | None) -> dict[str, Any] | None:
    """The ``training:`` mapping of the recipe copy a run folder keeps (None without one)."""
    from mrizoo._yaml import read_yaml

    path = None if run is None else run / RUN_RECIPE_NAME
    if path is None or not path.is_file():
        return None
    doc = read_yaml(path)
    section = doc.get("training") if isinstance(doc, dict) else None
    return section if isinstance(section, dict) else None


def _is_published(entry: ModelEntry, weights_sha256: str) -> bool:
    """Whether the checkpoint holds exactly the weights the zoo entry publishes (pinned sha256)."""
    return entry.weights.kind in ("package", "hub") and entry.weights.sha256 == weights_sha256


def _checkpoint_entry(entry: ModelEntry, facts: CheckpointFacts, summary: TrainingSummary | None,
                      smoke: bool, imported: dict[str, Any] | None = None) -> ModelEntry:
    """The entry as the card of one trained checkpoint shows it: its description is about this run.

    The zoo entry's own description speaks of its published weights (their size, their
    metrics); a checkpoint from another run must not borrow those claims.
    """
    from mrizoo.zoo.entry import WeightsSource

    how = f" by the recipe `{summary.recipe}`" if summary is not None else ""
    if imported:  # written by `mrizoo import`: say where the weights come from, not how mrizoo trained them
        how = (f" imported with `mrizoo import {imported.get('format')}` from `{imported.get('file')}` "
               f"(file sha256 `{imported.get('sha256')}`)")
    else:
        how = f" trained with mrizoo{how}"
    text = (f"A `{entry.model.arch}` checkpoint of the zoo model `{entry.name}` ({facts.num_parameters:,} "
            f"parameters){how}.")
    task = entry.task
    if smoke:
        text += (" It comes from a smoke run (a few steps on small synthetic data, to test the pipeline): it is "
                 "not a usable reconstruction model.")
        task = dataclasses.replace(task, data="Synthetic multi-coil volumes simulated by mrizoo (smoke run)")
    text += " The training summary and metrics below are this checkpoint's own."
    tags = tuple(t for t in entry.tags if t != "demo")  # "demo" describes the shipped weights' training
    return dataclasses.replace(entry, description=text, weights=WeightsSource(), task=task, tags=tags)


def _prepare_dir(path: Path) -> bool:
    """Make ``path`` an empty folder; returns whether it was created here."""
    if path.exists():
        if not path.is_dir() or any(path.iterdir()):
            raise InputError("staging folder must be new or empty", path=path, expected="an empty folder")
        return False
    path.mkdir(parents=True)
    return True


def stage_checkpoint(
    run_dir: str | os.PathLike[str],
    staging: str | os.PathLike[str],
    *,
    results: str | os.PathLike[str] | EvaluationResults | None = None,
    training: str | os.PathLike[str] | TrainingSummary | None = None,
    pool: PoolDescription | None = None,
    repo_id: str | None = None,
) -> CheckedCheckpoint:
    """Copy config and weights of ``run_dir`` into ``staging``, check the copies, write the card.

    ``run_dir`` is a checkpoint folder or a training run folder (its ``model/`` is pushed).
    ``results``/``training`` default to ``evaluation.json``/``training_summary.json`` in the
    checkpoint folder, else in the run folder, when present. Unless the weights are exactly
    the entry's published ones, the card describes this checkpoint: its own parameter count,
    training summary and metrics, and how to load it from ``repo_id``. On any error the
    staging folder is left empty (or removed if it was created here).
    """
    src, run = checkpoint_folder(run_dir)
    if not (src / CONFIG_NAME).is_file():
        if Path(run_dir).is_dir() and (Path(run_dir) / RUN_META_NAME).is_file():
            raise InputError("the run folder has no published model yet (the run did not finish)",
                             path=Path(run_dir) / RUN_MODEL_DIR, expected="model/config.json written by mrizoo train")
        read_config(src)  # the clear "not a checkpoint" error
    out = Path(staging)
    created = _prepare_dir(out)
    try:
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if (src / name).is_file():
                shutil.copyfile(src / name, out / name)
        checked = check_checkpoint(out)
        folders = [src] + ([run] if run is not None else [])
        if results is None:
            results = next((f / RUN_RESULTS_NAME for f in folders if (f / RUN_RESULTS_NAME).is_file()), None)
        if results is not None and not isinstance(results, EvaluationResults):
            results = load_results(results)
        if training is None:
            training = next((f / TRAINING_SUMMARY_NAME for f in folders if (f / TRAINING_SUMMARY_NAME).is_file()),
                            None)
        if training is not None and not isinstance(training, TrainingSummary):
            training = load_training_summary(training)
        entry = checked.entry
        recipe_training = recipe_training_section(entry.recipe)
        load_spec = None
        if not _is_published(entry, checked.facts.weights_sha256):
            smoke = bool(_run_meta(run).get("smoke")) or (training is not None
                                                          and training.notes.endswith("smoke run"))
            imported = checked.config_doc.get("imported")
            imported = imported if isinstance(imported, dict) else None
            entry = _checkpoint_entry(entry, checked.facts, training, smoke, imported)
            recipe_training = _run_recipe_training(run) or recipe_training
            load_spec = f"hf-hub:{repo_id}" if repo_id else "path/to/this/checkpoint"
        text = render_card(entry, config=checked.arch_config, results=results, training_summary=training,
                           pool=pool, recipe_training=recipe_training, checkpoint=checked.facts,
                           load_spec=load_spec)
        (out / CARD_NAME).write_text(text, encoding="utf-8")
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for item in out.iterdir():
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        raise
    return dataclasses.replace(checked, directory=src)


def _known_tokens(api: Any) -> list[str]:
    from huggingface_hub import get_token

    found = {os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN"), getattr(api, "token", None)}
    try:
        found.add(get_token())
    except Exception:  # token lookup failures must not mask the original problem
        pass
    return sorted((t for t in found if isinstance(t, str) and len(t) >= 4), key=len, reverse=True)


def _scrub(text: str, tokens: list[str]) -> str:
    for token in tokens:
        text = text.replace(token, "***")
    return text


def push_checkpoint(
    run_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    overwrite_card: bool = False,
    commit_message: str | None = None,
    out: str | os.PathLike[str] | None = None,
    results: str | os.PathLike[str] | EvaluationResults | None = None,
    training: str | os.PathLike[str] | TrainingSummary | None = None,
    pool: PoolDescription | None = None,
    api: Any = None,
    echo: Callable[[str], None] = print,
) -> PushResult:
    """Check, stage and upload a checkpoint folder to ``repo_id`` in one commit.

    ``dry_run`` stages the files (into ``out`` or a new temporary folder) and uploads nothing.
    A ``README.md`` already on the Hub is kept unless ``overwrite_card``.
    """
    validate_repo_id(repo_id)
    if revision is not None and (not revision.strip() or revision.startswith("refs/pr/")):
        raise InputError("not a branch name", field="revision", expected="a branch name such as main",
                         got=repr(revision))
    staging = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="mrizoo-push-"))
    if out is None:
        staging.rmdir()  # stage_checkpoint creates it again, and removes it on failure
    checked = stage_checkpoint(run_dir, staging, results=results, training=training, pool=pool, repo_id=repo_id)
    name = checked.entry.name
    branch = revision or "main"
    files = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
    if dry_run:
        echo(f"dry run: staged {', '.join(files)} of {name!r} for {repo_id}@{branch} in {staging}; "
             "nothing was uploaded")
        return PushResult(repo_id, branch, files, True, staging, None, True)
    try:
        result = _upload(checked, staging, repo_id, branch=branch, revision=revision, private=private,
                         overwrite_card=overwrite_card, commit_message=commit_message, api=api, echo=echo)
        return dataclasses.replace(result, staging_dir=staging) if out is not None else result
    finally:
        if out is None:
            shutil.rmtree(staging, ignore_errors=True)


def _upload(checked: CheckedCheckpoint, staging: Path, repo_id: str, *, branch: str, revision: str | None,
            private: bool, overwrite_card: bool, commit_message: str | None, api: Any,
            echo: Callable[[str], None]) -> PushResult:
    from huggingface_hub import HfApi, constants

    from mrizoo import __version__

    if constants.is_offline_mode():
        raise PushError("HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it, or use --dry-run to "
                        "only stage the files")
    api = api if api is not None else HfApi()
    tokens = _known_tokens(api)
    name = checked.entry.name
    try:
        # private=None leaves a new repo at the namespace's default visibility
        api.create_repo(repo_id, private=True if private else None, exist_ok=True, repo_type="model")
        if revision is not None and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        card_on_hub = api.file_exists(repo_id, CARD_NAME, revision=revision, repo_type="model")
        with_card = overwrite_card or not card_on_hub
        files = (CONFIG_NAME, WEIGHTS_NAME) + ((CARD_NAME,) if with_card else ())
        if not with_card:
            echo(f"{CARD_NAME} exists on {repo_id}@{branch}: kept it (pass --overwrite-card to replace it); "
                 f"uploading {' and '.join(files)} only")
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(staging),
            revision=revision,
            repo_type="model",
            allow_patterns=list(files),
            commit_message=commit_message or f"Upload {name} ({', '.join(files)}) with mrizoo {__version__}",
        )
    except Exception as err:
        raise PushError(f"pushing {name!r} to {repo_id}@{branch} failed: {type(err).__name__}: "
                        f"{_scrub(str(err), tokens)}") from None
    url = getattr(info, "commit_url", None) or str(info)
    echo(f"pushed {name!r} to {repo_id}@{branch}: {url}")
    return PushResult(repo_id, branch, files, with_card, None, url, False)
