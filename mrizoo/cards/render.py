"""Render a model card: ``huggingface_hub.ModelCard.from_template`` with ``template.md.j2``.

A card is generated from data only -- the zoo entry, its recipe file, the architecture config,
and, when given, evaluation results (:mod:`mrizoo.results`), a training summary and a
description of the training pool -- so regenerating it from the same inputs gives the same
text (no timestamps). The template holds the card's layout and fixed prose; the sections built
from tables (:mod:`mrizoo.cards.sections`, :mod:`mrizoo.cards.scores`, calibration, adaptation)
are rendered in Python and placed by the template. ``model_cards/<name>.md`` holds the card of
every shipped entry; evaluation results are looked up in ``model_cards/results/<name>.json`` and
training summaries in ``model_cards/training/<name>.json``.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from mrizoo._atomic import atomic_file
from mrizoo.cards.adaptation import section_adaptation
from mrizoo.cards.bib import shipped_papers
from mrizoo.cards.calibration import section_calibration
from mrizoo.cards.checks import check_checkpoint
from mrizoo.cards.inputs import CARDS_DIR, PoolDescription, card_path, recipe_training_section, training_path
from mrizoo.cards.scores import eval_results, section_evaluation
from mrizoo.cards.sections import section_data, section_training, section_what
from mrizoo.cards.text import accelerations, cite, family, image_size, is_posterior, trained_masks
from mrizoo.errors import InputError
from mrizoo.models.provenance import CheckpointFacts, TrainingSummary, load_training_summary
from mrizoo.models.registry import ARCHITECTURES
from mrizoo.results import EvaluationResults, load_results, results_path
from mrizoo.train.recipe import load_recipe
from mrizoo.weights import package_checkpoint
from mrizoo.zoo import REGISTRY, model_config
from mrizoo.zoo.entry import ModelEntry

__all__ = ["TEMPLATE_NAME", "build_model_card", "render_card", "card_for", "write_card", "regenerate_cards"]

#: The Jinja template of every card, a package file of :mod:`mrizoo.cards`.
TEMPLATE_NAME = "template.md.j2"


@functools.cache
def _template() -> str:
    return (importlib.resources.files("mrizoo.cards") / TEMPLATE_NAME).read_text(encoding="utf-8")


def _citations(entry: ModelEntry) -> list[str]:
    """The BibTeX text of the entry's papers, in the entry's order."""
    papers = shipped_papers()
    unknown = [p for p in entry.papers if p not in papers]
    if unknown:
        raise InputError("no BibTeX for paper key(s)", field="entry.papers",
                         expected=f"keys of mrizoo/cards/papers.bib {sorted(papers)}", got=unknown)
    return [papers[p].text for p in entry.papers]


def _dataset_ids(entry: ModelEntry, pool: PoolDescription | None) -> list[str] | None:
    if entry.weights.kind == "builtin":
        return None
    if pool is not None:
        return [re.sub(r"[^a-z0-9]+", "-", d.name.lower()).strip("-") for d in pool.datasets]
    if "fastmri" in entry.task.data.lower() and entry.task.anatomy in ("knee", "brain"):
        return [f"fastmri-{entry.task.anatomy}"]
    return None


def _fine_tunes(recipe_name: str, entry_name: str) -> bool:
    """Whether the shipped recipe ``recipe_name`` trains (fine-tunes) the architecture of ``entry_name``."""
    try:
        recipe, _ = load_recipe(recipe_name)
    except Exception:  # unknown or invalid recipe: not a fine-tuning recipe of this entry
        return False
    return recipe.model == entry_name and recipe.init_from is not None


def build_model_card(
    entry: ModelEntry,
    *,
    config: Any = None,
    results: EvaluationResults | None = None,
    training_summary: TrainingSummary | None = None,
    pool: PoolDescription | None = None,
    recipe_training: dict[str, Any] | None = None,
    checkpoint: CheckpointFacts | None = None,
    load_spec: str | None = None,
) -> ModelCard:
    """The :class:`huggingface_hub.ModelCard` of ``entry`` (metadata + the sections, deterministic).

    ``load_spec`` (e.g. ``hf-hub:org/repo``) makes it the card of one checkpoint that is not the
    entry's published weights: the card says how to load that checkpoint, not the zoo name.
    """
    if results is not None and results.model != entry.name:
        raise InputError("evaluation results are for another model", field="model", expected=entry.name,
                         got=results.model)
    if (training_summary is not None and entry.recipe and training_summary.recipe != entry.recipe
            and not _fine_tunes(training_summary.recipe, entry.name)):
        raise InputError("training summary is for another recipe", field="recipe",
                         expected=f"{entry.recipe} or a fine-tuning recipe of {entry.name}",
                         got=training_summary.recipe)
    citations = _citations(entry)
    arch = ARCHITECTURES.get(entry.model.arch)
    tags = ["mrizoo", "mri", "mri-reconstruction", "accelerated-mri", family(entry)]
    if entry.task.anatomy not in ("any", "mixed"):
        tags.append(entry.task.anatomy)
    if is_posterior(entry):
        tags.append("posterior-sampling")
    tags += list(entry.tags)
    data = ModelCardData(
        license=entry.license,
        library_name="mrizoo",
        tags=tags,
        datasets=_dataset_ids(entry, pool),
        metrics=(sorted({k for d in results.datasets for k in d.metrics}) if results else None),
        model_name=entry.name if results else None,
        eval_results=eval_results(results) if results else None,
    )
    return ModelCard.from_template(
        data,
        template_str=_template(),
        entry=entry,
        load_spec=load_spec,
        checkpoint=checkpoint,
        citations=citations,
        posterior=is_posterior(entry),
        family=family(entry),
        accelerations=accelerations(entry),
        image_size=image_size(entry),
        mask_mix=trained_masks(recipe_training),
        cite=cite(entry),
        what=section_what(entry, config, arch.description if arch else "custom architecture", load_spec),
        training_data=section_data(entry, pool, recipe_training),
        training=section_training(entry, recipe_training, training_summary),
        evaluation=section_evaluation(entry, results),
        calibration=section_calibration(results),
        adaptation=section_adaptation(entry, results),
    )


def render_card(entry: ModelEntry, **inputs: Any) -> str:
    """The card text of ``entry`` (see :func:`build_model_card` for ``inputs``), ending in one newline."""
    return str(build_model_card(entry, **inputs)).rstrip("\n") + "\n"


def _load_optional(path: Path | None, default: Path, loader: Any) -> Any:
    if path is not None:
        return loader(path)
    return loader(default) if default.is_file() else None


def _shipped_checkpoint_facts(entry: ModelEntry) -> CheckpointFacts | None:
    """Checkpoint facts of weights that ship inside the package (None for other sources)."""
    if entry.weights.kind != "package":
        return None
    folder = package_checkpoint(str(entry.weights.path), str(entry.weights.sha256), what=entry.name)
    return check_checkpoint(folder).facts


def card_for(
    name: str,
    *,
    cards_dir: str | os.PathLike[str] = CARDS_DIR,
    results: str | os.PathLike[str] | EvaluationResults | None = None,
    training: str | os.PathLike[str] | TrainingSummary | None = None,
    pool: PoolDescription | None = None,
) -> str:
    """The card text of zoo model ``name``.

    ``results``/``training`` default to ``<cards_dir>/results/<name>.json`` and
    ``<cards_dir>/training/<name>.json`` when those files exist.
    """
    entry = REGISTRY.get(name)
    checkpoint = _shipped_checkpoint_facts(entry)
    if not isinstance(results, EvaluationResults):
        results = _load_optional(None if results is None else Path(results), results_path(name, cards_dir),
                                 load_results)
    if not isinstance(training, TrainingSummary):
        training = _load_optional(None if training is None else Path(training), training_path(name, cards_dir),
                                  load_training_summary)
    return render_card(entry, config=model_config(name), results=results, training_summary=training, pool=pool,
                       recipe_training=recipe_training_section(entry.recipe), checkpoint=checkpoint)


def write_card(text: str, path: str | os.PathLike[str]) -> bool:
    """Write a card atomically; returns False (and leaves the file alone) when the text is unchanged."""
    p = Path(path)
    if p.is_file() and p.read_text(encoding="utf-8") == text:
        return False
    with atomic_file(p, suffix=".tmp") as tmp:  # a full disk or read-only target: InputError
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return True


def regenerate_cards(
    names: Iterable[str],
    *,
    cards_dir: str | os.PathLike[str] = CARDS_DIR,
    out_dir: str | os.PathLike[str] | None = None,
    results: str | os.PathLike[str] | None = None,
    training: str | os.PathLike[str] | None = None,
) -> dict[str, bool]:
    """Regenerate the cards of ``names`` into ``out_dir`` (default ``cards_dir``).

    Every card is generated before any is written, so one bad input writes nothing.
    Returns name -> whether its file changed.
    """
    names = list(names)
    if (results is not None or training is not None) and len(names) != 1:
        raise InputError("--results/--training apply to one model, not to several",
                         expected="one name", got=f"{len(names)} names")
    texts = {n: card_for(n, cards_dir=cards_dir, results=results, training=training) for n in names}
    out = Path(out_dir if out_dir is not None else cards_dir)
    return {n: write_card(text, card_path(n, out)) for n, text in texts.items()}
