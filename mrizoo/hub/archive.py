"""One member out of a downloaded tar archive, refusing archives that could write outside their folder.

Every member of the archive is checked before anything is written: its name must be
relative, without ``..`` parts, and inside the archive's top folder (the first part of the
wanted member's name); links and device files are refused. Only the wanted member (a
regular file) is then streamed to its destination, atomically.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from pathlib import Path

from mrizoo._atomic import atomic_file
from mrizoo.errors import InputError

__all__ = ["extract_member", "is_tar"]


def is_tar(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a (possibly compressed) tar archive."""
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _unsafe(name: str, top: str) -> str | None:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        return "a '..' part"
    if not parts or parts[0] != top:
        return f"outside the folder {top}/"
    return None


def extract_member(archive: str | os.PathLike[str], member: str, dest: str | os.PathLike[str]) -> Path:
    """Write ``member`` of ``archive`` to ``dest``; refuse the archive if any member is unsafe."""
    src, out = Path(archive), Path(dest)
    top = posixpath.normpath(member).split("/")[0]
    try:
        with tarfile.open(src, mode="r:*") as tar:
            wanted = None
            for info in tar.getmembers():
                why = _unsafe(info.name, top)
                if why is None and not (info.isfile() or info.isdir()):
                    why = "a link or special file"
                if why is not None:
                    raise InputError(f"refusing the archive: member {info.name!r} is {why}", path=src,
                                     expected=f"only files and folders under {top}/")
                if info.isfile() and posixpath.normpath(info.name) == posixpath.normpath(member):
                    wanted = info
            if wanted is None:
                raise InputError("the archive does not hold the checkpoint", path=src, field=member,
                                 expected=f"a file {member}")
            reader = tar.extractfile(wanted)
            if reader is None:
                raise InputError("the archive member cannot be read", path=src, field=member)
            with atomic_file(out) as tmp, reader, open(tmp, "wb") as f:
                shutil.copyfileobj(reader, f, 1 << 20)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise InputError(f"not a readable tar archive ({type(err).__name__}: {err})", path=src) from None
    return out
