"""Checkpoints on disk and on the Hugging Face Hub: format, download, upload, model cards."""

from mrizoo.hub.format import from_pretrained, load_weights, read_config, save_pretrained, sha256_file

__all__ = ["from_pretrained", "load_weights", "read_config", "save_pretrained", "sha256_file"]
