"""Checkpoints from the Hugging Face Hub: pinned download, sha256 check, and errors a person can act on.

Downloads go through ``huggingface_hub`` and its cache, so ``HF_HOME`` / ``HF_HUB_CACHE``,
``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE`` work as they do for any Hub library. A
file whose sha256 does not match the pinned one is never loaded: a fresh download is moved
out of the Hugging Face cache into ``$MRIZOO_HOME/quarantine/``; a file that was cached
before is left where it is and reported. Token values never appear in messages or logs.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mrizoo._paths import quarantine_root
from mrizoo.errors import InputError, WeightsUnavailableError
from mrizoo.hub.layout import CONFIG_NAME, HF_HUB_PREFIX, WEIGHTS_NAME, sha256_file

__all__ = [
    "HF_HUB_PREFIX", "HubLocation", "HubAccessError", "HubRepoNotFoundError", "HubRevisionNotFoundError",
    "HubFileNotFoundError", "WeightsNotCachedError", "ChecksumMismatchError", "FetchOptions", "parse_hub_spec",
    "snapshot_commit",
    "fetch_hub_checkpoint", "hub_offline", "token_is_set", "hub_endpoint", "cached_zoo_repos",
    "delete_cached_repos", "quarantine_root",
]

_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class HubAccessError(WeightsUnavailableError):
    """The Hub answered, but not with the file: no such repo, no access, wrong revision or file."""


class HubRepoNotFoundError(HubAccessError):
    """The repo does not exist at the endpoint, or the token (if any) does not grant access."""


class HubRevisionNotFoundError(HubAccessError):
    """The repo exists but has no such branch, tag or commit."""


class HubFileNotFoundError(HubAccessError):
    """The repo and revision exist but do not hold the expected file."""


class WeightsNotCachedError(WeightsUnavailableError):
    """No network (offline mode or unreachable) and the weights are not in the local cache."""


class ChecksumMismatchError(WeightsUnavailableError):
    """A weights file does not have the sha256 its source pins; it was not loaded."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None, expected: str, got: str) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.expected = expected
        self.got = got


@dataclass(frozen=True)
class HubLocation:
    """A checkpoint folder in a Hub repo: ``filename`` is its weights file (``[subfolder/]model.safetensors``)."""

    repo_id: str
    revision: str
    filename: str = WEIGHTS_NAME
    sha256: str | None = None

    def __post_init__(self) -> None:
        if posixpath.basename(self.filename) != WEIGHTS_NAME:
            raise InputError("the weights file of a checkpoint must be named model.safetensors",
                             field="weights.filename", expected=f"[subfolder/]{WEIGHTS_NAME}", got=self.filename)

    @property
    def subfolder(self) -> str:
        return posixpath.dirname(self.filename)

    @property
    def config_filename(self) -> str:
        return posixpath.join(self.subfolder, CONFIG_NAME) if self.subfolder else CONFIG_NAME

    @property
    def repo_path(self) -> str:
        """``org/repo[/subfolder]``: where in the Hub the checkpoint folder is."""
        return f"{self.repo_id}/{self.subfolder}" if self.subfolder else self.repo_id

    def __str__(self) -> str:
        return f"{self.repo_path}@{self.revision}"


def snapshot_commit(folder: Path) -> str:
    """The commit of a folder inside the Hugging Face cache (``.../snapshots/<commit>/...``), else ''."""
    parts = folder.parts
    if "snapshots" in parts:
        i = len(parts) - 1 - parts[::-1].index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    return ""


def parse_hub_spec(spec: str, revision: str | None = None) -> HubLocation:
    """``hf-hub:org/repo[/subfolder][@revision]`` -> :class:`HubLocation` (revision defaults to ``main``)."""
    body = spec[len(HF_HUB_PREFIX):] if spec.startswith(HF_HUB_PREFIX) else spec
    path, at, rev = body.partition("@")
    parts = path.strip("/").split("/")
    expected = "hf-hub:org/repo[/subfolder][@revision]"
    if len(parts) < 2 or not all(_REPO_PART.match(p) for p in parts):
        raise InputError("not a Hub checkpoint reference", field="name", expected=expected, got=repr(spec))
    if at and not rev:
        raise InputError("empty revision after '@'", field="name", expected=expected, got=repr(spec))
    if rev and revision is not None and rev != revision:
        raise InputError("two different revisions given", field="revision", expected=rev, got=revision)
    sub = "/".join(parts[2:])
    return HubLocation("/".join(parts[:2]), rev or revision or "main",
                       f"{sub}/{WEIGHTS_NAME}" if sub else WEIGHTS_NAME)


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is in force (as huggingface_hub sees it)."""
    try:
        # imported on use: the package's submodules load lazily, and older versions lack this name
        from huggingface_hub import is_offline_mode
    except ImportError:  # older huggingface_hub
        # imported on use, as above
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    return bool(is_offline_mode())


def token_is_set() -> bool | None:
    """Whether huggingface_hub has a token (``HF_TOKEN`` or a saved login); None when that cannot be told."""
    try:
        # imported on use: huggingface_hub's submodules load lazily
        from huggingface_hub import get_token

        return get_token() is not None
    except Exception:  # e.g. a failing token exchange; the value itself is never looked at here
        return None


def hub_endpoint() -> str:
    """The Hub endpoint in use (``HF_ENDPOINT``), without any user:password part."""
    # imported on use: a heavy package that most calls of this module do not need
    from huggingface_hub import constants

    parts = urlsplit(constants.ENDPOINT)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _hub_cache(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    # imported on use: a heavy package that most calls of this module do not need
    from huggingface_hub import constants

    return Path(cache_dir).expanduser() if cache_dir is not None else Path(constants.HF_HUB_CACHE)


def _repo_folder(repo_id: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    return _hub_cache(cache_dir) / ("models--" + repo_id.replace("/", "--"))


def _pull_hint(what: str) -> str:
    return f"`mrizoo pull {what}`"


def _token_note() -> str:
    state = token_is_set()
    if state is None:
        return "whether a token is set could not be determined"
    if state:
        return "a token is set (HF_TOKEN or a saved login): if the repo exists, it does not grant access to it"
    return "no token is set: for a private or gated repo set HF_TOKEN or run `hf auth login`"


@dataclass(frozen=True)
class FetchOptions:
    """How to fetch, as ``huggingface_hub`` takes it: ``token`` (never logged; default: ``HF_TOKEN`` or
    the saved login), ``cache_dir`` (default: the Hugging Face cache), ``local_files_only`` (no
    network: the cache or an error) and ``force_download`` (fetch again even when cached)."""

    token: str | bool | None = None
    cache_dir: str | os.PathLike[str] | None = None
    local_files_only: bool = False
    force_download: bool = False

    def __repr__(self) -> str:  # the token never reaches a log or a traceback
        token = "None" if self.token is None else ("<set>" if self.token else "False")
        return (f"FetchOptions(token={token}, cache_dir={self.cache_dir!r}, "
                f"local_files_only={self.local_files_only}, force_download={self.force_download})")


def _download(loc: HubLocation, filename: str, revision: str, what: str, opts: FetchOptions = FetchOptions()) -> Path:
    """One file through huggingface_hub, its exceptions turned into mrizoo errors."""
    # imported on use: a heavy package that most calls of this module do not need
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    remote_missing = getattr(hf_errors, "RemoteEntryNotFoundError", None) or hf_errors.EntryNotFoundError
    where = f"{loc.repo_id} at {hub_endpoint()}"
    try:
        return Path(hf_hub_download(loc.repo_id, filename, revision=revision, token=opts.token,
                                    cache_dir=opts.cache_dir, local_files_only=opts.local_files_only,
                                    force_download=opts.force_download))
    except hf_errors.GatedRepoError:
        raise HubRepoNotFoundError(
            f"{what}: the Hub repo {where} is gated; accept its conditions on the repo page, then use a token "
            f"of that account ({_token_note()})") from None
    except hf_errors.RepositoryNotFoundError:
        raise HubRepoNotFoundError(
            f"{what}: the Hub repo {where} was not found or is not accessible; check the repo id "
            f"(and HF_ENDPOINT); {_token_note()}") from None
    except hf_errors.RevisionNotFoundError:
        raise HubRevisionNotFoundError(
            f"{what}: the Hub repo {where} has no revision {revision!r} (a branch, tag or commit sha); "
            f"check the pinned revision") from None
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled):
        if opts.local_files_only:
            reason = "only local files were asked for"
        elif hub_offline():
            reason = "HF_HUB_OFFLINE is set"
        else:
            reason = f"the Hub at {hub_endpoint()} could not be reached"
        raise WeightsNotCachedError(
            f"{what}: {filename} of {loc.repo_id}@{revision} is not in the Hugging Face cache ({_hub_cache(opts.cache_dir)}) "
            f"and {reason}; run {_pull_hint(what)} on a connected machine and copy that cache folder "
            f"(HF_HOME) here, or go online") from None
    except remote_missing:
        raise HubFileNotFoundError(
            f"{what}: the Hub repo {where} has no file {filename!r} at revision {revision!r}; "
            f"is it an mrizoo checkpoint (config.json + model.safetensors)?") from None
    except hf_errors.HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        raise HubAccessError(f"{what}: the Hub at {hub_endpoint()} answered HTTP {status} for {filename} "
                             f"of {loc.repo_id}@{revision}") from None
    except getattr(hf_errors, "HTTPError", ()) as err:  # transport errors (connection reset, timeout) of the HTTP client
        raise WeightsNotCachedError(
            f"{what}: could not download {filename} of {loc.repo_id}@{revision} from {hub_endpoint()} "
            f"({type(err).__name__}); check the network or HF_ENDPOINT, or run {_pull_hint(what)} "
            f"on a connected machine") from None


def _snapshot_of(path: Path, filename: str) -> Path:
    """``.../snapshots/<commit>`` of a file downloaded to ``.../snapshots/<commit>/<filename>``."""
    folder = path
    for _ in filename.split("/"):
        folder = folder.parent
    return folder


def _blob_names(repo_id: str, cache_dir: str | os.PathLike[str] | None = None) -> set[str]:
    blobs = _repo_folder(repo_id, cache_dir) / "blobs"
    return set(os.listdir(blobs)) if blobs.is_dir() else set()


def _quarantine(path: Path, loc: HubLocation, revision: str, blobs_before: set[str], actual: str) -> Path | None:
    """Take a freshly downloaded bad file out of the Hugging Face cache; return where it went."""
    dest = (quarantine_root() / "hub" / ("models--" + loc.repo_id.replace("/", "--")) / revision
            / f"{loc.filename}.{actual[:16]}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        blob = path.resolve()
        path.unlink()
        if blob.name in blobs_before or not blob.exists():
            return None  # the blob was there before this call: it belongs to another cached file
        shutil.move(str(blob), dest)
    else:
        shutil.move(str(path), dest)
    return dest


def _verify(path: Path, loc: HubLocation, revision: str, was_cached: bool, blobs_before: set[str],
            what: str) -> str:
    actual = sha256_file(path)
    if loc.sha256 is None or actual == loc.sha256:
        return actual
    head = (f"{what}: {loc.filename} of {loc.repo_id}@{revision} has sha256 {actual}, but {loc.sha256} "
            f"is pinned; it was not loaded")
    if was_cached:
        raise ChecksumMismatchError(
            f"{head}. The file was in the Hugging Face cache before ({path}) and is left in place; remove it "
            f"with `mrizoo cache clean {what}` and download it again", path=path, expected=loc.sha256, got=actual)
    moved = _quarantine(path, loc, revision, blobs_before, actual)
    where = f"moved to {moved}" if moved else "removed from the Hugging Face cache"
    raise ChecksumMismatchError(
        f"{head}. The fresh download was {where}. The repo holds different bytes at this revision than "
        f"the entry pins (a wrong pin, or a changed or intercepted download: check HF_ENDPOINT)",
        path=moved, expected=loc.sha256, got=actual)


def fetch_hub_checkpoint(loc: HubLocation, *, what: str | None = None,
                         options: FetchOptions = FetchOptions()) -> tuple[Path, str]:
    """Download (or find in the cache) the checkpoint folder at ``loc``; return ``(folder, weights sha256)``.

    The weights file comes first and its commit pins ``config.json``, so both come from one
    snapshot even when the revision is a branch that moves. ``what`` names the request in
    messages (the zoo name or the ``hf-hub:`` spec).
    """
    # imported on use: a heavy package that most calls of this module do not need
    from huggingface_hub import try_to_load_from_cache

    what = what or f"{HF_HUB_PREFIX}{loc}"
    cached = try_to_load_from_cache(loc.repo_id, loc.filename, revision=loc.revision, cache_dir=options.cache_dir)
    blobs_before = _blob_names(loc.repo_id, options.cache_dir)
    weights = _download(loc, loc.filename, loc.revision, what, options)
    was_cached = isinstance(cached, str) and Path(cached) == weights and not options.force_download
    digest = _verify(weights, loc, loc.revision, was_cached, blobs_before, what)
    snapshot = _snapshot_of(weights, loc.filename)
    config = _download(loc, loc.config_filename, snapshot.name if _COMMIT.match(snapshot.name) else loc.revision,
                       what, options)
    folder = weights.parent
    if config.parent != folder:  # a cache laid out unlike huggingface_hub's: keep the two files together
        raise HubAccessError(f"{what}: config.json and model.safetensors were cached in different folders "
                             f"({config.parent} and {folder})")
    return folder, digest


def _is_mrizoo_repo(repo: object) -> bool:
    for revision in getattr(repo, "revisions", ()):
        for f in revision.files:
            if f.file_name == CONFIG_NAME:
                try:
                    if json.loads(Path(f.file_path).read_text()).get("library_name") == "mrizoo":
                        return True
                except (OSError, ValueError, AttributeError):
                    continue
    return False


def cached_zoo_repos(repo_ids: set[str] | None = None, *, any_mrizoo: bool = True) -> list:
    """Cached Hub model repos that belong to the zoo: ids in ``repo_ids``, or holding an mrizoo checkpoint.

    Returns huggingface_hub ``CachedRepoInfo`` objects (from ``scan_cache_dir``); other
    repos of the cache are never returned.
    """
    # imported on use: a heavy package that most calls of this module do not need
    from huggingface_hub import scan_cache_dir

    # imported on use: a heavy package that most calls of this module do not need
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(_hub_cache())
    except CacheNotFound:
        return []
    wanted = repo_ids or set()
    return sorted((r for r in info.repos if r.repo_type == "model"
                   and (r.repo_id in wanted or (any_mrizoo and _is_mrizoo_repo(r)))), key=lambda r: r.repo_id)


def delete_cached_repos(repos: list) -> int:
    """Delete whole cached repos (as listed by :func:`cached_zoo_repos`); return the bytes freed."""
    # imported on use: a heavy package that most calls of this module do not need
    from huggingface_hub import DeleteCacheStrategy

    if not repos:
        return 0
    folders = frozenset(Path(r.repo_path) for r in repos)
    cache = _hub_cache().resolve()
    for folder in folders:  # never anything outside the Hugging Face hub cache
        if folder.resolve().parent != cache:
            raise InputError("refusing to delete a folder outside the Hugging Face cache", path=folder)
    size = sum(int(r.size_on_disk) for r in repos)
    DeleteCacheStrategy(expected_freed_size=size, blobs=frozenset(), refs=frozenset(), repos=folders,
                        snapshots=frozenset()).execute()
    return size
