"""Blob bytes in a local folder, at ``<root>/sha256/ab/cd/<hex>`` (a ``BlobStore``).

Writes go to ``<root>/tmp/`` first, are fsynced, then renamed into place (and the
directory fsynced), so a reader never sees a partial blob and a crash leaves at worst
an unreferenced temporary file. ``put_later`` does the same on writer threads, so the
fsyncs overlap the caller's other work. Callers validate ids before they reach this
module. A failing filesystem (read-only, full, gone) raises ``StorageUnavailableError``
naming the file, never a bare ``OSError``; an absent blob is ``FileNotFoundError`` from
``open`` and ``None`` elsewhere.
"""

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from core.errors import StorageUnavailableError
from core.identifiers import CAS_ID_PATTERN
from core.storage.blobs import CHUNK_SIZE as CHUNK_SIZE
from core.storage.blobs import hash_stream as hash_stream
from core.storage.files import open_regular

WRITER_THREADS = 4
"""Blob files written at once by ``put_later`` (most of a write is waiting on fsync)."""


class FolderBlobStore:
    """Immutable files named by the sha256 of their bytes, in a local folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self._tmp = self.root / "tmp"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:  # a file that is no folder stands in the way
            blocked = self.root if not self.root.is_dir() else self._tmp
            raise StorageUnavailableError(
                f"cannot use blob folder {str(self.root)!r}: {str(blocked)!r} is not a folder"
            ) from exc
        except OSError as exc:
            raise StorageUnavailableError(
                f"cannot use blob folder {str(self.root)!r}: {exc.strerror}"
            ) from exc

    @property
    def url(self) -> str:
        return str(self.root)

    def location(self, cas_id: str) -> str:
        return str(self.path(cas_id))

    def path(self, cas_id: str) -> Path:
        algorithm, digest = cas_id.split(":", 1)
        return self.root / algorithm / digest[:2] / digest[2:4] / digest

    def exists(self, cas_id: str) -> bool:
        return self.path(cas_id).is_file()

    def put_bytes(self, cas_id: str, content: bytes | memoryview) -> bool:
        """Store ``content`` (already hashed to ``cas_id``); ``False`` if it was present.

        A blob already present is touched, so ``gc`` sees it as freshly stored.
        """
        target = self.path(cas_id)
        if self._intact(target, len(content)):
            return False
        with self._temporary() as (handle, temporary):
            _write(handle, content, temporary)
            self._publish(handle, temporary, target)
        return True

    def put_later(self, blobs: Sequence[tuple[str, bytes]]) -> list["Future[bool]"]:
        """Start ``put_bytes`` for each (cas id, content) on a writer thread."""
        writers = _writers()
        return [writers.submit(self.put_bytes, cas_id, content) for cas_id, content in blobs]

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Hash and write ``stream`` in one pass, in bounded memory; return (cas_id, size)."""
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        with self._temporary() as (handle, temporary):
            while read := _read_into(stream, buffer, view):
                chunk = view[:read]
                digest.update(chunk)
                _write(handle, chunk, temporary)
                size += read
            cas_id = "sha256:" + digest.hexdigest()
            target = self.path(cas_id)
            if not self._intact(target, size):
                self._publish(handle, temporary, target)
        return cas_id, size

    def open(self, cas_id: str) -> BinaryIO:
        """The stored file, open for reading (``FileNotFoundError`` if absent); the caller
        verifies its bytes and closes it."""
        path = self.path(cas_id)
        try:  # a pipe or a device there would block or never end: refused
            return os.fdopen(open_regular(path, os.O_RDONLY, "blob file", action="read"), "rb")
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _unavailable("read", path, exc) from exc

    def set_aside(self, cas_id: str, opened: BinaryIO) -> str | None:
        """Move the file ``opened`` reads (found corrupt) out of the store, so storing the
        same bytes again writes a sound copy; returns where it went, or ``None`` if the
        store no longer holds that file (it was stored again or collected meanwhile).

        The file lands in the temporary folder, touched, so ``gc`` keeps it as long as
        any other recent leftover there (an hour by default) before removing it.
        ``StorageUnavailableError`` if it cannot be moved (a read-only folder): the file
        stays where it is, and every read of it still fails verification.
        """
        aside = self._tmp / f"{cas_id.split(':', 1)[1]}.corrupt"
        try:
            os.replace(self.path(cas_id), aside)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unmovable(cas_id, exc) from exc
        try:
            if not os.path.samestat(os.fstat(opened.fileno()), aside.stat()):
                self.restore(cas_id, str(aside))  # a sound copy replaced it after we read: keep it
                return None
            os.utime(aside)
        except OSError as exc:
            raise _unavailable("move", aside, exc) from exc
        return str(aside)

    def _intact(self, target: Path, size: int) -> bool:
        """Whether ``target`` holds ``size`` bytes; touches it when it does."""
        try:
            os.utime(target)
            return target.stat().st_size == size
        except (FileNotFoundError, NotADirectoryError):  # absent, or in the way of a write
            return False
        except OSError as exc:  # present but cannot be touched: it could not be stored either
            raise _unavailable("write", target, exc) from exc

    def modified_at(self, cas_id: str) -> float | None:
        """When the blob was last stored (or stored again), or ``None`` if absent."""
        return _modified_at(self.path(cas_id))

    def size(self, cas_id: str) -> int | None:
        status = _stat(self.path(cas_id))
        return None if status is None else status.st_size

    def quarantine(self, cas_id: str) -> tuple[str, float] | None:
        """Move the blob out of the store (atomically); return where it went and when it
        was last stored, or ``None`` if it was absent (another ``gc`` may have taken it).
        """
        quarantined = self._tmp / f"{cas_id.split(':', 1)[1]}.gc"
        try:
            os.replace(self.path(cas_id), quarantined)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unmovable(cas_id, exc) from exc
        modified = _modified_at(quarantined)
        return str(quarantined), time.time() if modified is None else modified

    def restore(self, cas_id: str, quarantined: str) -> None:
        """Put a quarantined blob back (unless the blob was stored again meanwhile)."""
        try:
            if self.path(cas_id).exists():
                Path(quarantined).unlink(missing_ok=True)
            else:
                os.replace(quarantined, self.path(cas_id))
        except FileNotFoundError:  # nothing left to put back
            return
        except OSError as exc:
            raise StorageUnavailableError(
                f"cannot put blob {cas_id} back from {str(quarantined)!r} into blob folder "
                f"{str(self.root)!r}: {exc.strerror or exc}; move it back by hand"
            ) from exc

    def discard(self, location: str) -> None:
        """Remove a file of the temporary folder (a collected blob, an old leftover)."""
        path = Path(location)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise _unavailable("remove", path, exc) from exc

    def _unmovable(self, cas_id: str, exc: OSError) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"cannot move blob {cas_id} out of blob folder {str(self.root)!r}: "
            f"{exc.strerror or exc}"
        )

    def stored_ids(self) -> Iterator[str]:
        """The ids of every blob file in the store (other files are not blobs: skipped)."""
        for path in sorted((self.root / "sha256").glob("*/*/*")):
            cas_id = f"sha256:{path.name}"
            if CAS_ID_PATTERN.fullmatch(cas_id) and self.path(cas_id) == path and path.is_file():
                yield cas_id

    def temporary_files(self) -> list[tuple[str, float]]:
        """Leftovers in the temporary folder (crashed writes, interrupted collections),
        each with when it was last modified."""
        try:
            paths = sorted(self._tmp.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _unavailable("list", self._tmp, exc) from exc
        found = ((path, _modified_at(path)) for path in paths)
        return [(str(path), modified) for path, modified in found if modified is not None]

    @contextlib.contextmanager
    def _temporary(self) -> Iterator[tuple[BinaryIO, Path]]:
        try:
            try:
                fd, name = tempfile.mkstemp(dir=self._tmp, suffix=".part")
            except FileNotFoundError:  # the temporary folder was removed: make it again
                self._tmp.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(dir=self._tmp, suffix=".part")
        except OSError as exc:
            raise _unavailable("write", self._tmp, exc) from exc
        temporary = Path(name)
        try:
            handle = os.fdopen(fd, "wb")
            try:
                yield handle, temporary
            except BaseException:
                # closing flushes what a failed write left buffered, which fails again
                # (a full disk) and would hide the error being raised: drop it
                with contextlib.suppress(OSError):
                    handle.close()
                raise
            try:
                handle.close()
            except OSError as exc:
                raise _unavailable("write", temporary, exc) from exc
        finally:
            with contextlib.suppress(OSError):  # a temporary file nobody will take for a blob
                temporary.unlink(missing_ok=True)

    def _publish(self, handle: BinaryIO, temporary: Path, target: Path) -> None:
        try:
            handle.flush()
            os.fsync(handle.fileno())
            created = _make_dirs(target.parent)
            os.replace(temporary, target)
            for directory in [target.parent, *created]:
                fsync_directory(directory)
        except OSError as exc:
            raise _unavailable("write", target, exc) from exc


def _write(handle: BinaryIO, chunk: bytes | memoryview, temporary: Path) -> None:
    try:
        handle.write(chunk)
    except OSError as exc:
        raise _unavailable("write", temporary, exc) from exc


def _modified_at(path: Path) -> float | None:
    """When ``path`` was last modified, or ``None`` if it is absent."""
    status = _stat(path)
    return None if status is None else status.st_mtime


def _stat(path: Path) -> os.stat_result | None:
    """``path``'s status, or ``None`` if it is absent."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unavailable("read", path, exc) from exc


def _unavailable(action: str, path: Path, exc: OSError) -> StorageUnavailableError:
    reason = exc.strerror or exc
    return StorageUnavailableError(f"cannot {action} blob file {str(path)!r}: {reason}")


def _read_into(stream: BinaryIO, buffer: bytearray, view: memoryview) -> int:
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return readinto(buffer) or 0
    chunk = stream.read(CHUNK_SIZE)
    view[: len(chunk)] = chunk
    return len(chunk)


def _make_dirs(directory: Path) -> list[Path]:
    """``mkdir -p``; return the parents of the directories it created."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
    return [path.parent for path in missing]


def fsync_directory(directory: Path) -> None:
    """Make the entries of ``directory`` (a file created or renamed there) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _WriterPool:
    """One thread pool per process, made on first use (a forked child makes its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="blob-writer")
            return self._pool

    def forget(self) -> None:
        """In a forked child: the parent's threads are not there."""
        self._lock = threading.Lock()
        self._pool = None


_writers = _WriterPool()
os.register_at_fork(after_in_child=_writers.forget)
