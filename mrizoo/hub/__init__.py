"""Checkpoints on disk and on the Hugging Face Hub: format, download, upload, model cards, caches."""

from mrizoo.hub.cards import card_for, regenerate_cards, render_card
from mrizoo.hub.download import (
    ChecksumMismatchError,
    HubAccessError,
    HubFileNotFoundError,
    HubRepoNotFoundError,
    HubRevisionNotFoundError,
    WeightsNotCachedError,
)
from mrizoo.hub.evaluation import DatasetResult, EvaluationResults, load_results, save_results
from mrizoo.hub.format import from_pretrained, load_weights, read_config, save_pretrained, sha256_file
from mrizoo.hub.local_zoo import local_zoo_dir, mrizoo_home
from mrizoo.hub.push import push_checkpoint
from mrizoo.hub.resolve import cached_items, remove_cached, resolve_checkpoint

__all__ = [
    "card_for", "regenerate_cards", "render_card",
    "ChecksumMismatchError", "HubAccessError", "HubFileNotFoundError", "HubRepoNotFoundError",
    "HubRevisionNotFoundError", "WeightsNotCachedError",
    "DatasetResult", "EvaluationResults", "load_results", "save_results",
    "from_pretrained", "load_weights", "read_config", "save_pretrained", "sha256_file",
    "local_zoo_dir", "mrizoo_home", "push_checkpoint",
    "cached_items", "remove_cached", "resolve_checkpoint",
]
