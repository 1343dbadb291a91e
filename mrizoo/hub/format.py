"""The on-disk format of a published model: ``config.json`` + ``model.safetensors`` (+ ``README.md``).

Kept as the Hub's name for the format: the format itself is :mod:`mrizoo.models.checkpoint`
(which imports nothing from the zoo or the Hub), and building the model a folder describes is
:func:`mrizoo.zoo.pretrained.from_pretrained`.
"""

from __future__ import annotations

from mrizoo.models.checkpoint import (
    CARD_NAME,
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_KINDS,
    WEIGHTS_NAME,
    WEIGHTS_SHA256_KEY,
    describe_weights,
    load_weights,
    read_config,
    save_pretrained,
    sha256_file,
    verify_weights,
    weights_source,
)
from mrizoo.zoo.pretrained import from_pretrained

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME", "FORMAT_VERSION", "WEIGHTS_SHA256_KEY", "WEIGHTS_KINDS",
           "save_pretrained", "from_pretrained", "read_config", "load_weights", "sha256_file", "verify_weights",
           "weights_source", "describe_weights"]
