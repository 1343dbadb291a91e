"""Upload a staged folder to a Hugging Face Hub model repository in one commit.

Transport only: the caller says which files of the folder to send; the repository is created
if missing (private on request), a branch other than ``main`` is created if missing, and one
file (a hand-written ``README.md``, say) can be kept when the repository already has it.
Authentication is left to ``huggingface_hub`` (``HF_TOKEN`` or a stored login); every token
known to the process is scrubbed from error messages, and none is ever printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants, get_token

from mrizoo import __version__
from mrizoo.errors import InputError, MrizooError

__all__ = ["PushError", "Upload", "validate_repo_id", "validate_branch", "upload_folder"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class PushError(MrizooError):
    """The Hub refused or could not be reached; the message never contains a token."""


@dataclass(frozen=True)
class Upload:
    """One commit made on the Hub: where, which files, and its URL."""

    repo_id: str
    branch: str
    files: tuple[str, ...]
    commit_url: str


def validate_repo_id(repo_id: str) -> str:
    """``ORG/NAME`` with Hub-legal characters, else :class:`InputError`."""
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise InputError("not a Hub repository id", field="repo_id",
                         expected="ORG/NAME (letters, digits, '.', '_', '-')", got=repr(repo_id))
    return repo_id


def validate_branch(revision: str | None) -> str:
    """The branch a commit goes to (``main`` when None); pull-request refs and blanks are refused."""
    if revision is not None and (not revision.strip() or revision.startswith("refs/pr/")):
        raise InputError("not a branch name", field="revision", expected="a branch name such as main",
                         got=repr(revision))
    return revision or "main"


def _known_tokens(api: Any) -> list[str]:
    found = {os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN"), getattr(api, "token", None)}
    try:
        found.add(get_token())
    except Exception:  # token lookup failures must not mask the original problem
        pass
    return sorted((t for t in found if isinstance(t, str) and len(t) >= 4), key=len, reverse=True)


def _scrub(text: str, tokens: list[str]) -> str:
    for token in tokens:
        text = text.replace(token, "***")
    return text


def upload_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    files: Sequence[str],
    *,
    what: str,
    revision: str | None = None,
    private: bool = False,
    keep_existing: str | None = None,
    keep_hint: str = "",
    commit_message: str | None = None,
    api: Any = None,
    echo: Callable[[str], None] = print,
) -> Upload:
    """Commit ``files`` of ``folder`` to ``repo_id`` (branch ``revision``, default main) in one commit.

    ``what`` names the upload in messages. ``keep_existing`` (one of ``files``) is left out when
    the repository already holds it; ``keep_hint`` tells the user how to replace it instead.
    """
    validate_repo_id(repo_id)
    branch = validate_branch(revision)
    if constants.is_offline_mode():
        raise PushError("HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it, or use --dry-run to "
                        "only stage the files")
    api = api if api is not None else HfApi()
    tokens = _known_tokens(api)
    try:
        # private=None leaves a new repo at the namespace's default visibility
        api.create_repo(repo_id, private=True if private else None, exist_ok=True, repo_type="model")
        if revision is not None and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        sent = tuple(files)
        if keep_existing is not None and api.file_exists(repo_id, keep_existing, revision=revision,
                                                         repo_type="model"):
            sent = tuple(f for f in files if f != keep_existing)
            echo(f"{keep_existing} exists on {repo_id}@{branch}: kept it{keep_hint}; "
                 f"uploading {' and '.join(sent)} only")
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(Path(folder)),
            revision=revision,
            repo_type="model",
            allow_patterns=list(sent),
            commit_message=commit_message or f"Upload {what} ({', '.join(sent)}) with mrizoo {__version__}",
        )
    except Exception as err:
        raise PushError(f"pushing {what!r} to {repo_id}@{branch} failed: {type(err).__name__}: "
                        f"{_scrub(str(err), tokens)}") from None
    url = getattr(info, "commit_url", None) or str(info)
    echo(f"pushed {what!r} to {repo_id}@{branch}: {url}")
    return Upload(repo_id, branch, sent, url)
