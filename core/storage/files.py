"""The catalog's own files, checked before they are used.

A path the catalog was given (its DuckDB file, the file's lock, queue, journal and
write-ahead log) may name a named pipe, a device, a socket or a folder. Opening a named
pipe waits for a peer for ever, reading a device never ends, and a folder cannot be
written: so each is refused with ``StorageUnavailableError``, naming the path and what
it is, before anything waits on it.
"""

import contextlib
import os
import stat
from pathlib import Path

from core.errors import StorageUnavailableError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def kind_of(mode: int) -> str:
    """What a file of ``mode`` (``st_mode``) is, in words."""
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def not_regular(path: Path, what: str, mode: int, action: str = "use") -> StorageUnavailableError:
    """The refusal of ``path`` (``what`` it should be, e.g. "the journal"), which has ``mode``."""
    return StorageUnavailableError(
        f"cannot {action} {what} {str(path)!r}: it is {kind_of(mode)}, not a regular file"
    )


def check_regular(path: Path, what: str, action: str = "use") -> bool:
    """Whether ``path`` exists (symbolic links followed); ``StorageUnavailableError`` when it
    exists and is not a regular file. Nothing is opened."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise StorageUnavailableError(
            f"cannot {action} {what} {str(path)!r}: {exc.strerror or exc}"
        ) from exc
    if not stat.S_ISREG(mode):
        raise not_regular(path, what, mode, action)
    return True


def open_regular(
    path: Path, flags: int, what: str, mode: int = 0o644, *, action: str = "use"
) -> int:
    """``os.open(path, flags, mode)`` that never waits: a path that is not a regular file
    is refused (``StorageUnavailableError``) and left as it is. Other ``OSError``s, a
    missing file among them, are raised as they are."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, mode)
    except FileNotFoundError:
        raise
    except OSError:
        check_regular(path, what, action)  # a folder (EISDIR), a pipe with no reader (ENXIO), ...
        raise
    try:
        opened = os.fstat(fd).st_mode
        if not stat.S_ISREG(opened):
            raise not_regular(path, what, opened, action)
        os.set_blocking(fd, True)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    return fd
