"""Checkpoints published elsewhere in another format: fetch the URL, verify, convert once, cache.

For an entry with ``weights.kind: upstream`` (e.g. fastMRI's official ``.pt`` state dicts),
the file is streamed to ``$MRIZOO_HOME/downloads/<name>/`` (a ``.part`` file that a later call
resumes with an HTTP range request), checked against the entry's sha256, converted with the
entry's converter (``torch.load(weights_only=True)``: no code runs) into a checkpoint folder
``$MRIZOO_HOME/upstream/<name>/<key>/`` (``config.json`` + ``model.safetensors`` +
``source.json``), and the raw download is then removed. Later loads use the folder, after
checking the converted weights against the sha256 recorded in ``source.json``.

A link that answers with Google Drive's confirmation page for large files is followed to the
file itself (:mod:`mrizoo.hub.urls`, :mod:`mrizoo.hub.gdrive`); any other web page in place of the file is refused.
A release packed as a tar archive (the CSGM-Langevin prior) has its one checkpoint member
extracted, after every member of the archive was checked to stay inside its folder
(:mod:`mrizoo.hub.archive`); nothing else is extracted.

When an entry pins no sha256, the sha256 of what was downloaded is recorded in
``source.json`` and logged, so it can be pinned (later loads check the converted weights
against the sha256 recorded with them). A file that fails its sha256 check is moved
to ``$MRIZOO_HOME/quarantine/`` and nothing is converted. ``HF_HUB_OFFLINE=1`` also stops
these downloads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from filelock import FileLock

from mrizoo._paths import downloads_root, locks_root, mrizoo_home, upstream_root
from mrizoo.errors import InputError
from mrizoo.hub.archive import extract_member, is_tar
from mrizoo.hub.download import ChecksumMismatchError, WeightsNotCachedError, hub_offline
from mrizoo.hub.urls import check_url, download_url
from mrizoo.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_weights, save_pretrained, sha256_file
from mrizoo.models.csgm_checkpoint import convert_csgm_checkpoint
from mrizoo.models.fastmri_checkpoint import convert_fastmri_checkpoint
from mrizoo.zoo import registry
from mrizoo.zoo.build import create

__all__ = ["CONVERTERS", "ARCHIVE_MEMBERS", "SOURCE_NAME", "UpstreamCheckpoint", "upstream_cache_dir",
           "convert_file", "fetch_upstream"]

#: converter name (in an entry, and a format of ``mrizoo import``) -> the architecture it produces
CONVERTERS: dict[str, str] = {"fastmri-varnet": "varnet", "fastmri-unet": "unet", "csgm-ncsnv2": "ncsnv2"}
#: the checkpoint inside a converter's release archive (the only member ever extracted)
ARCHIVE_MEMBERS: dict[str, str] = {"csgm-ncsnv2": "ncsnv2-mri-mvue/logs/mri-mvue/checkpoint_100000.pth"}
SOURCE_NAME = "source.json"
logger = logging.getLogger("mrizoo.zoo")


@dataclass(frozen=True)
class UpstreamCheckpoint:
    """A converted upstream checkpoint folder and the provenance recorded with it."""

    folder: Path
    url: str
    sha256: str
    sha256_pinned: bool


def _key(url: str, sha256: str | None, converter: str) -> str:
    return hashlib.sha256(f"{url}\n{sha256 or ''}\n{converter}".encode()).hexdigest()[:16]


def upstream_cache_dir(name: str, url: str, sha256: str | None, converter: str) -> Path:
    """The converted checkpoint folder of an upstream source (a new source -> a new folder)."""
    return upstream_root() / name / _key(url, sha256, converter)


def _complete(folder: Path) -> bool:
    return all((folder / n).is_file() for n in (CONFIG_NAME, WEIGHTS_NAME, SOURCE_NAME))


def _read_cached(folder: Path, what: str) -> UpstreamCheckpoint:
    source = json.loads((folder / SOURCE_NAME).read_text())
    actual = sha256_file(folder / WEIGHTS_NAME)
    if actual != source.get("weights_sha256"):
        raise ChecksumMismatchError(
            f"{what}: the converted weights {folder / WEIGHTS_NAME} have sha256 {actual}, not the "
            f"{source.get('weights_sha256')} recorded when they were converted; they were not loaded. "
            f"Run `mrizoo cache clean {what}` and load again to fetch them anew",
            path=folder / WEIGHTS_NAME, expected=str(source.get("weights_sha256")), got=actual)
    return UpstreamCheckpoint(folder, source["url"], source["sha256"], bool(source.get("sha256_pinned")))


def convert_file(converter: str, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> dict:
    """Convert a checkpoint file of format ``converter`` to safetensors ``dst``; return the inferred config.

    A release archive (tar) is accepted where the format has one (:data:`ARCHIVE_MEMBERS`):
    only its checkpoint member is extracted, next to ``dst``, and removed afterwards.
    """
    if converter not in CONVERTERS:
        raise InputError("unknown checkpoint format", field="format", expected=f"one of {sorted(CONVERTERS)}",
                         got=repr(converter))
    src, dst = Path(src), Path(dst)
    if converter != "csgm-ncsnv2":
        return convert_fastmri_checkpoint(src, dst, CONVERTERS[converter])  # type: ignore[arg-type]
    if not (src.is_file() and is_tar(src)):
        return convert_csgm_checkpoint(src, dst)
    member = dst.with_name(f".{dst.name}.member.pth")
    try:
        extract_member(src, ARCHIVE_MEMBERS[converter], member)
        return convert_csgm_checkpoint(member, dst)
    finally:
        member.unlink(missing_ok=True)


def _convert(name: str, raw: Path, converter: str, url: str, digest: str, pinned: bool, folder: Path) -> None:
    """Convert ``raw`` with the entry's converter, check it against the entry's model, write ``folder``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=folder.parent) as tmp:
        converted = Path(tmp) / "converted.safetensors"
        inferred = convert_file(converter, raw, converted)
        model = create(name)
        try:
            load_weights(model, converted)
        except InputError:
            raise InputError(f"zoo model {name!r}: the upstream checkpoint does not fit the entry's model config",
                             path=url, field="model.config", got=f"a checkpoint of {inferred}") from None
        provenance = {"url": url, "sha256": digest, "sha256_pinned": pinned, "converter": converter}
        ckpt = save_pretrained(model, Path(tmp) / "checkpoint", extra={"upstream": provenance})
        source = {**provenance, "name": name, "weights_sha256": sha256_file(ckpt / WEIGHTS_NAME),
                  "converted_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (ckpt / SOURCE_NAME).write_text(json.dumps(source, indent=2) + "\n")
        if folder.exists():  # an incomplete folder of an earlier run: ours, not a finished checkpoint
            shutil.rmtree(folder)
        os.replace(ckpt, folder)


def fetch_upstream(name: str, *, timeout: float = 60.0) -> UpstreamCheckpoint:
    """The converted checkpoint of zoo entry ``name`` (``weights.kind: upstream``), fetched once."""
    src = registry.REGISTRY.get(name).weights
    if src.kind != "upstream" or not src.url or not src.converter:
        raise InputError(f"zoo model {name!r} has no upstream weights", field="weights.kind",
                         expected="upstream", got=src.kind)
    if src.converter not in CONVERTERS:
        raise InputError(f"zoo model {name!r}: unknown converter", path=registry.REGISTRY.source(name),
                         field="weights.converter", expected=f"one of {sorted(CONVERTERS)}", got=src.converter)
    check_url(src.url)
    folder = upstream_cache_dir(name, src.url, src.sha256, src.converter)
    if _complete(folder):
        return _read_cached(folder, name)
    if hub_offline():
        raise WeightsNotCachedError(
            f"{name}: the converted checkpoint is not in {folder} and HF_HUB_OFFLINE is set; run "
            f"`mrizoo pull {name}` on a connected machine and copy {mrizoo_home()} (MRIZOO_HOME) here")
    locks = locks_root()
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"upstream-{name}-{folder.name}.lock")):
        if _complete(folder):  # another process finished it while we waited
            return _read_cached(folder, name)
        basename = posixpath.basename(urlsplit(src.url).path) or "checkpoint.pt"
        raw = downloads_root() / name / f"{folder.name}-{basename}"
        logger.info("%s: downloading %s", name, src.url)
        digest = download_url(src.url, raw, sha256=src.sha256, timeout=timeout, what=name)
        if src.sha256 is None:
            logger.warning("%s: the entry pins no sha256 for %s; the downloaded file has sha256 %s (recorded in "
                           "%s); pin it in the entry's weights.sha256", name, src.url, digest, folder / SOURCE_NAME)
        try:
            _convert(name, raw, src.converter, src.url, digest, src.sha256 is not None, folder)
        finally:
            raw.unlink(missing_ok=True)
    return _read_cached(folder, name)
