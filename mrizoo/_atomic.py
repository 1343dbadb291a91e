"""Atomic writes: a file or a folder appears complete under its final name, or not at all."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mrizoo.errors import InputError

__all__ = ["atomic_file", "atomic_dir", "default_mode", "write_error"]

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def default_mode(directory: bool = False) -> int:
    """The permission bits a plain ``open()`` (or ``mkdir``) would give under the user's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def write_error(err: OSError, path: str | os.PathLike[str]) -> InputError | None:
    """A clear :class:`InputError` for a failed write of ``path`` (disk full, read-only, no permission).

    Also reads HDF5's wrapped messages (``errno = 28``); None for other errors.
    """
    text = str(err)
    if err.errno in _FULL or "No space left" in text or "errno = 28" in text or "Disk quota" in text:
        return InputError("no space left on the device; nothing was written", path=path,
                          expected="free space for the output")
    if err.errno in _DENIED or "Read-only file system" in text or "Permission denied" in text:
        return InputError("cannot write there (read-only or no permission); nothing was written", path=path,
                          expected="a writable location")
    return None


@contextmanager
def atomic_file(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    A full disk or a read-only target (while creating, writing or renaming) becomes the clear
    :class:`InputError` of :func:`write_error`; nothing is left behind.
    """
    out = Path(path)
    tmp: str | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=suffix, dir=out.parent)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, out)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        mapped = write_error(err, out) if isinstance(err, OSError) else None
        if mapped is None:
            raise
        raise mapped from None


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; swap it in for ``path`` when the block succeeds.

    An existing ``path`` is moved aside first and removed only after the new folder is in place.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, default_mode(directory=True))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
