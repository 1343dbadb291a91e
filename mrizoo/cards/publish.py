"""Publish a checkpoint folder to the Hugging Face Hub: config, weights and model card in one commit.

The folder is checked before anything is sent (:func:`~mrizoo.cards.checks.check_checkpoint`:
``config.json`` readable, architecture and config valid, every tensor of ``model.safetensors``
present with the right shape and finite), the files are staged together with a generated
``README.md`` that describes this checkpoint (its own parameter count, training summary, metrics
and recipe settings), and :func:`mrizoo.hub.upload.upload_folder` sends them as a single commit.
An existing card on the Hub is kept unless asked otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrizoo._yaml import read_yaml
from mrizoo.cards.checks import CheckedCheckpoint, check_checkpoint
from mrizoo.cards.inputs import PoolDescription, recipe_training_section
from mrizoo.cards.render import render_card
from mrizoo.errors import InputError
from mrizoo.hub.upload import upload_folder, validate_branch, validate_repo_id
from mrizoo.models.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_config
from mrizoo.models.provenance import TRAINING_SUMMARY_NAME, CheckpointFacts, TrainingSummary, load_training_summary
from mrizoo.results import RUN_RESULTS_NAME, EvaluationResults, load_results
from mrizoo.train.run_folder import MODEL_DIR, RECIPE_NAME, RUN_NAME
from mrizoo.zoo.entry import ModelEntry, WeightsSource

__all__ = ["PushResult", "check_checkpoint", "checkpoint_folder", "stage_checkpoint", "push_checkpoint"]


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


def checkpoint_folder(path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """``(checkpoint folder, run folder or None)`` of what a user passes to push.

    A training run folder (``RUN_DIR``, holding ``model/config.json``) stands for its published
    checkpoint ``RUN_DIR/model``; ``RUN_DIR/model`` itself is recognised as part of its run.
    """
    src = Path(path)
    if not (src / CONFIG_NAME).is_file() and (src / MODEL_DIR / CONFIG_NAME).is_file():
        return src / MODEL_DIR, src
    if src.name == MODEL_DIR and (src.parent / RUN_NAME).is_file():
        return src, src.parent
    return src, None


def _run_meta(run: Path | None) -> dict[str, Any]:
    if run is None or not (run / RUN_NAME).is_file():
        return {}
    try:
        doc = json.loads((run / RUN_NAME).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"unreadable run description ({err})", path=run / RUN_NAME) from None
    return doc if isinstance(doc, dict) else {}


def _run_recipe_training(run: Path | None) -> dict[str, Any] | None:
    """The ``training:`` mapping of the recipe copy a run folder keeps (None without one)."""
    path = None if run is None else run / RECIPE_NAME
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


def _card_text(checked: CheckedCheckpoint, src: Path, run: Path | None, *,
               results: str | os.PathLike[str] | EvaluationResults | None,
               training: str | os.PathLike[str] | TrainingSummary | None,
               pool: PoolDescription | None, repo_id: str | None) -> str:
    """The card of a checked checkpoint, with the results and training summary found beside it."""
    folders = [src] + ([run] if run is not None else [])
    if results is None:
        results = next((f / RUN_RESULTS_NAME for f in folders if (f / RUN_RESULTS_NAME).is_file()), None)
    if results is not None and not isinstance(results, EvaluationResults):
        results = load_results(results)
    if training is None:
        training = next((f / TRAINING_SUMMARY_NAME for f in folders if (f / TRAINING_SUMMARY_NAME).is_file()), None)
    if training is not None and not isinstance(training, TrainingSummary):
        training = load_training_summary(training)
    entry = checked.entry
    recipe_training = recipe_training_section(entry.recipe)
    load_spec = None
    if not _is_published(entry, checked.facts.weights_sha256):
        smoke = bool(_run_meta(run).get("smoke")) or (training is not None and training.notes.endswith("smoke run"))
        imported = checked.config_doc.get("imported")
        imported = imported if isinstance(imported, dict) else None
        entry = _checkpoint_entry(entry, checked.facts, training, smoke, imported)
        recipe_training = _run_recipe_training(run) or recipe_training
        load_spec = f"hf-hub:{repo_id}" if repo_id else "path/to/this/checkpoint"
    return render_card(entry, config=checked.arch_config, results=results, training_summary=training, pool=pool,
                       recipe_training=recipe_training, checkpoint=checked.facts, load_spec=load_spec)


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
        if Path(run_dir).is_dir() and (Path(run_dir) / RUN_NAME).is_file():
            raise InputError("the run folder has no published model yet (the run did not finish)",
                             path=Path(run_dir) / MODEL_DIR, expected="model/config.json written by mrizoo train")
        read_config(src)  # the clear "not a checkpoint" error
    out = Path(staging)
    created = _prepare_dir(out)
    try:
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if (src / name).is_file():
                shutil.copyfile(src / name, out / name)
        checked = check_checkpoint(out)
        text = _card_text(checked, src, run, results=results, training=training, pool=pool, repo_id=repo_id)
        (out / CARD_NAME).write_text(text, encoding="utf-8")
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for item in out.iterdir():
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        raise
    return dataclasses.replace(checked, directory=src)


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
    branch = validate_branch(revision)
    staging = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="mrizoo-push-"))
    if out is None:
        staging.rmdir()  # stage_checkpoint creates it again, and removes it on failure
    checked = stage_checkpoint(run_dir, staging, results=results, training=training, pool=pool, repo_id=repo_id)
    name = checked.entry.name
    files = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
    if dry_run:
        echo(f"dry run: staged {', '.join(files)} of {name!r} for {repo_id}@{branch} in {staging}; "
             "nothing was uploaded")
        return PushResult(repo_id, branch, files, True, staging, None, True)
    try:
        done = upload_folder(staging, repo_id, files, what=name, revision=revision, private=private,
                             keep_existing=None if overwrite_card else CARD_NAME,
                             keep_hint=" (pass --overwrite-card to replace it)", commit_message=commit_message,
                             api=api, echo=echo)
    finally:
        if out is None:
            shutil.rmtree(staging, ignore_errors=True)
    return PushResult(repo_id, branch, done.files, CARD_NAME in done.files, staging if out is not None else None,
                      done.commit_url, False)
