"""Model cards: the ``README.md`` of every zoo model and of every published checkpoint.

Cards sit above training and evaluation: they read zoo entries, recipes, evaluation results
(:mod:`mrizoo.results`) and training provenance (:mod:`mrizoo.models.provenance`), render them
through ``template.md.j2`` with the BibTeX of ``papers.bib``, and :mod:`mrizoo.cards.publish`
checks a checkpoint folder, stages it with its card and hands it to the Hub upload
(:mod:`mrizoo.hub.upload`).
"""

from mrizoo.cards.adaptation import section_adaptation
from mrizoo.cards.calibration import section_calibration
from mrizoo.cards.inputs import CARDS_DIR, PoolDataset, PoolDescription, card_path, shipped_entry_names
from mrizoo.cards.render import build_model_card, card_for, regenerate_cards, render_card, write_card

__all__ = [
    "CARDS_DIR", "PoolDataset", "PoolDescription", "card_path", "shipped_entry_names",
    "build_model_card", "card_for", "regenerate_cards", "render_card", "write_card",
    "section_adaptation", "section_calibration",
]
