"""Files from plain http(s) URLs: resumable, sha256-checked downloads that never load a web page as a file.

``dest.part`` is resumed with an HTTP range request; a link that answers with Google Drive's
confirmation page for large files is followed to the file itself (:mod:`mrizoo.hub.gdrive`);
any other web page in place of the file is refused. A file that fails its sha256 check is moved
to ``$MRIZOO_HOME/quarantine/`` and never used.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from mrizoo import __version__
from mrizoo._paths import mrizoo_home, quarantine_root
from mrizoo.errors import InputError, WeightsUnavailableError
from mrizoo.hub.download import ChecksumMismatchError, WeightsNotCachedError
from mrizoo.hub.gdrive import confirmation_url, is_html

__all__ = ["check_url", "download_url"]

_CHUNK = 1 << 20
_PAGE_LIMIT = 1 << 20
logger = logging.getLogger("mrizoo.hub")


def check_url(url: str) -> None:
    if urlsplit(url).scheme not in ("http", "https"):
        raise InputError("upstream weights must come from an http(s) URL", field="weights.url",
                         expected="http:// or https://", got=url)


def _open(url: str, offset: int, timeout: float, what: str):  # -> http.client.HTTPResponse
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
        check_url(follow)
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
    check_url(url)
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
