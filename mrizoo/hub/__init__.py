"""Transport to and from the Hugging Face Hub: pinned, sha256-checked downloads, uploads, the cache.

The hub knows file names and repositories, never models: the checkpoint format is
:mod:`mrizoo.models.checkpoint`, names and weight sources are :mod:`mrizoo.zoo`, model cards
are :mod:`mrizoo.cards`.
"""

from mrizoo.hub.download import (
    ChecksumMismatchError,
    HubAccessError,
    HubFileNotFoundError,
    HubLocation,
    HubRepoNotFoundError,
    HubRevisionNotFoundError,
    WeightsNotCachedError,
    fetch_hub_checkpoint,
    parse_hub_spec,
)
from mrizoo.hub.layout import CARD_NAME, CONFIG_NAME, HF_HUB_PREFIX, WEIGHTS_NAME, sha256_file

__all__ = [
    "ChecksumMismatchError", "HubAccessError", "HubFileNotFoundError", "HubLocation", "HubRepoNotFoundError",
    "HubRevisionNotFoundError", "WeightsNotCachedError", "fetch_hub_checkpoint", "parse_hub_spec",
    "CARD_NAME", "CONFIG_NAME", "HF_HUB_PREFIX", "WEIGHTS_NAME", "sha256_file",
]
