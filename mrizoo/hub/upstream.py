"""Checkpoints published elsewhere in another format: fetch the URL, verify, convert once, cache.

For an entry with ``weights.kind: upstream`` (e.g. fastMRI's official ``.pt`` state dicts),
the file is streamed to ``$MRIZOO_HOME/downloads/<name>/`` (a ``.part`` file that a later call
resumes with an HTTP range request), checked against the entry's sha256, converted with the
entry's converter (``torch.load(weights_only=True)``: no code runs) into a checkpoint folder
``$MRIZOO_HOME/upstream/<name>/<key>/`` (``config.json`` + ``model.safetensors`` +
``source.json``), and the raw download is then removed. Later loads use the folder, after
checking the converted weights against the sha256 recorded in ``source.json``.

A link that answers with Google Drive's confirmation page for large files is followed to the
file itself (:mod:`mrizoo.hub.gdrive`); any other web page in place of the file is refused.
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
import http.client
import json
import logging
import os
import posixpath
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from mrizoo.errors import InputError, WeightsUnavailableError
from mrizoo.hub.archive import extract_member, is_tar
from mrizoo.hub.download import ChecksumMismatchError, WeightsNotCachedError, hub_offline, quarantine_root
from mrizoo.hub.format import CONFIG_NAME, WEIGHTS_NAME, load_weights, save_pretrained, sha256_file
from mrizoo.hub.gdrive import confirmation_url, is_html
from mrizoo.hub.local_zoo import mrizoo_home

__all__ = ["CONVERTERS", "ARCHIVE_MEMBERS", "SOURCE_NAME", "UpstreamCheckpoint", "upstream_cache_dir",
           "download_url", "convert_file", "fetch_upstream"]

#: converter name (in an entry, and a format of ``mrizoo import``) -> the architecture it produces
CONVERTERS: dict[str, str] = {"fastmri-varnet": "varnet", "fastmri-unet": "unet", "csgm-ncsnv2": "ncsnv2"}
#: the checkpoint inside a converter's release archive (the only member ever extracted)
ARCHIVE_MEMBERS: dict[str, str] = {"csgm-ncsnv2": "ncsnv2-mri-mvue/logs/mri-mvue/checkpoint_100000.pth"}
SOURCE_NAME = "source.json"
_CHUNK = 1 << 20
_PAGE_LIMIT = 1 << 20
logger = logging.getLogger("mrizoo.hub")


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
    return mrizoo_home() / "upstream" / name / _key(url, sha256, converter)


def _check_url(url: str) -> None:
    if urlsplit(url).scheme not in ("http", "https"):
        raise InputError("upstream weights must come from an http(s) URL", field="weights.url",
                         expected="http:// or https://", got=url)


def _open(url: str, offset: int, timeout: float, what: str):  # -> http.client.HTTPResponse
    from mrizoo import __version__

    headers = {"User-Agent": f"mrizoo/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the partial file is not a prefix of this one: start over
            return None
        if err.code in (404, 410):
            raise WeightsUnavailableError(f"{what}: {url} answered HTTP {err.code}: the upstream file has moved "
                                          f"or was removed") from None
        if err.code in (401, 403):
            raise WeightsUnavailableError(f"{what}: {url} answered HTTP {err.code}: access denied") from None
        raise WeightsUnavailableError(f"{what}: {url} answered HTTP {err.code}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise WeightsNotCachedError(f"{what}: could not reach {urlsplit(url).netloc} ({reason}); run "
                                    f"`mrizoo pull {what}` on a connected machine and copy {mrizoo_home()} "
                                    f"here") from None


def _open_file(url: str, offset: int, timeout: float, what: str):  # -> (response or None, its URL)
    """Open ``url`` at ``offset``; follow a Google Drive confirmation page; refuse any other page."""
    target = url
    for _ in range(3):
        response = _open(target, offset, timeout, what)
        if response is None or not is_html(response.headers.get("Content-Type")):
            return response, target
        with response:
            page = response.read(_PAGE_LIMIT)
            cookies = response.headers.get_all("Set-Cookie") or []
            final = response.geturl() or target
        follow = confirmation_url(page, final, cookies)
        if follow is None or follow == target:
            break
        _check_url(follow)
        logger.info("%s: following the download confirmation of %s", what, urlsplit(final).netloc)
        target = follow
    raise WeightsUnavailableError(f"{what}: {url} answered with a web page instead of the file (a removed or "
                                  f"private file, or a download quota reached); open it in a browser to see why")


def download_url(url: str, dest: str | os.PathLike[str], *, sha256: str | None = None, timeout: float = 60.0,
                 what: str | None = None) -> str:
    """Stream ``url`` to ``dest`` (resuming ``dest.part``); return the file's sha256.

    With ``sha256`` given, a mismatching file is moved to the quarantine folder and
    :class:`ChecksumMismatchError` is raised; ``dest`` then does not exist. Google Drive's
    confirmation page for large files is followed (also when resuming).
    """
    _check_url(url)
    what = what or url
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    response, _ = _open_file(url, offset, timeout, what)
    if response is None:
        part.unlink()
        offset = 0
        response, _ = _open_file(url, 0, timeout, what)
    with response:
        resumed = offset > 0 and response.status == 206
        if resumed:
            start = (response.headers.get("Content-Range") or "").removeprefix("bytes ").split("-")[0]
            if start != str(offset):
                raise WeightsUnavailableError(f"{what}: {url} answered a range request with "
                                              f"{response.headers.get('Content-Range')!r}")
            logger.info("%s: resuming the download of %s at byte %d", what, url, offset)
        length = response.headers.get("Content-Length")
        expected_end = (offset if resumed else 0) + int(length) if length and length.isdigit() else None
        digest = hashlib.sha256()
        if resumed:
            with open(part, "rb") as f:
                while block := f.read(_CHUNK):
                    digest.update(block)
        try:
            with open(part, "ab" if resumed else "wb") as out:
                while block := response.read(_CHUNK):
                    out.write(block)
                    digest.update(block)
        except (OSError, socket.timeout, http.client.HTTPException) as err:
            raise WeightsNotCachedError(f"{what}: the download of {url} broke off ({err}); run the command again "
                                        f"to resume it") from None
    size = part.stat().st_size
    if expected_end is not None and size != expected_end:
        raise WeightsNotCachedError(f"{what}: the download of {url} stopped at {size} of {expected_end} bytes; "
                                    f"run the command again to resume it")
    actual = digest.hexdigest()
    if sha256 is not None and actual != sha256:
        bad = quarantine_root() / "upstream" / dest.parent.name / f"{dest.name}.{actual[:16]}"
        bad.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(part), bad)
        raise ChecksumMismatchError(
            f"{what}: the file downloaded from {url} has sha256 {actual}, but {sha256} is pinned; it was moved "
            f"to {bad}, and nothing was converted or loaded (a wrong pin, or a changed or intercepted download)",
            path=bad, expected=sha256, got=actual)
    os.replace(part, dest)
    return actual


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
    from mrizoo.models.csgm_checkpoint import convert_csgm_checkpoint
    from mrizoo.models.fastmri_checkpoint import convert_fastmri_checkpoint

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
    from mrizoo.zoo.factory import create

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
    from filelock import FileLock

    from mrizoo.zoo import registry

    src = registry.REGISTRY.get(name).weights
    if src.kind != "upstream" or not src.url or not src.converter:
        raise InputError(f"zoo model {name!r} has no upstream weights", field="weights.kind",
                         expected="upstream", got=src.kind)
    if src.converter not in CONVERTERS:
        raise InputError(f"zoo model {name!r}: unknown converter", path=registry.REGISTRY.source(name),
                         field="weights.converter", expected=f"one of {sorted(CONVERTERS)}", got=src.converter)
    _check_url(src.url)
    folder = upstream_cache_dir(name, src.url, src.sha256, src.converter)
    if _complete(folder):
        return _read_cached(folder, name)
    if hub_offline():
        raise WeightsNotCachedError(
            f"{name}: the converted checkpoint is not in {folder} and HF_HUB_OFFLINE is set; run "
            f"`mrizoo pull {name}` on a connected machine and copy {mrizoo_home()} (MRIZOO_HOME) here")
    locks = mrizoo_home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"upstream-{name}-{folder.name}.lock")):
        if _complete(folder):  # another process finished it while we waited
            return _read_cached(folder, name)
        basename = posixpath.basename(urlsplit(src.url).path) or "checkpoint.pt"
        raw = mrizoo_home() / "downloads" / name / f"{folder.name}-{basename}"
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
