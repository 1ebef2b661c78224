"""The DuckDB catalog's journal: commits made but not yet applied to the file.

A deferred transaction (see ``core.storage.db``) commits by appending one record to
``<database>.journal`` and syncing it, which takes a fraction of a millisecond where the
same writes as DuckDB statements take ten. The process holding the file applies the
journal to it in one transaction ("folds" it: ``core.storage.duckdb.fold``) before
anything else reads the file, before it gives the file up, and whenever the journal
grows long; a process that finds a journal when it takes the file (its writer died
holding it) folds it first.

Each line is one JSON object (``core.storage.duckdb.record_format`` says which): the
CRC-32 of its JSON text in hex, a space, the JSON text. A
line cut short by a crash was never acknowledged to anyone and is ignored; a bad line
before the last one is corruption. A failed append is cut off again; when even that fails
the journal is ``damaged`` and takes no more records until it has been emptied.
"""

import contextlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

from core.errors import StorageUnavailableError
from core.storage.blobstore import fsync_directory
from core.storage.files import open_regular

Line = dict[str, Any]
"""One line's JSON object."""


class Journal:
    """The append-only journal file of one DuckDB catalog; only the lock holder uses it."""

    WHAT = "the catalog's journal"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.damaged = False
        """A failed append may have left its line, or part of it: append nothing until a
        fold (from the records in memory) has emptied the journal."""

    def append(self, record: Line) -> None:
        """Add ``record`` durably (written and synced when this returns); on failure the
        journal is as it was, or ``damaged`` (the line may be there: an interruption after
        it was synced)."""
        if self.damaged:
            raise StorageUnavailableError(f"the journal {str(self.path)!r} must be emptied first")
        text = json.dumps(record, separators=(",", ":"), allow_nan=False)
        line = f"{zlib.crc32(text.encode()):08x} {text}\n".encode()
        created = not self.path.exists()
        try:
            fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.WHAT)
        except OSError as exc:
            raise self._unavailable("write", exc) from exc
        durable = False
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
                if created:
                    fsync_directory(self.path.parent)
                durable = True
            except BaseException as exc:
                if not durable:
                    self._cut(fd, size)
                if isinstance(exc, OSError):
                    raise self._unavailable("write", exc) from exc
                raise
        except BaseException:
            if durable:  # interrupted once the line was in: whether it counts is unknown
                self.damaged = True
            raise
        finally:
            with contextlib.suppress(OSError):  # the line is synced, or cut, already
                os.close(fd)

    def _cut(self, fd: int, size: int) -> None:
        """Take a failed append's bytes off again (``damaged`` if that fails too)."""
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError:
            self.damaged = True

    def _unavailable(self, action: str, exc: OSError) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"cannot {action} the journal {str(self.path)!r}: {exc.strerror or exc}"
        )

    def records(self) -> list[object]:
        """Every whole line's JSON value, oldest first (a torn last line is left out); a bad line
        before the last is ``StorageUnavailableError``."""
        lines = self._read().split(b"\n")
        lines.pop()  # b"" after a whole last record, or a line cut short (never acknowledged)
        records: list[object] = []
        for number, line in enumerate(lines, 1):
            record = _decode(line)
            if record is None:
                raise StorageUnavailableError(
                    f"journal {str(self.path)!r} is corrupt at line {number}; move it aside "
                    f"to open the catalog without its {len(lines)} records"
                )
            records.append(record)
        return records

    def _read(self) -> bytes:
        """The journal's bytes (none when it does not exist)."""
        try:
            fd = open_regular(self.path, os.O_RDONLY, self.WHAT)
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise self._unavailable("read", exc) from exc
        try:
            with os.fdopen(fd, "rb", closefd=False) as opened:
                return opened.read()
        except OSError as exc:
            raise self._unavailable("read", exc) from exc
        finally:
            os.close(fd)

    def clear(self) -> None:
        """Empty the journal (once its records are in the file)."""
        try:
            fd = open_regular(self.path, os.O_WRONLY | os.O_TRUNC, self.WHAT)
        except FileNotFoundError:
            self.damaged = False
            return
        except OSError as exc:
            raise self._unavailable("empty", exc) from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise self._unavailable("empty", exc) from exc
        finally:
            os.close(fd)
        self.damaged = False

    def is_empty(self) -> bool:
        try:
            return self.path.stat().st_size == 0
        except FileNotFoundError:
            return True


def _decode(line: bytes) -> object | None:
    checksum, _, text = line.partition(b" ")
    try:
        if int(checksum, 16) != zlib.crc32(text):
            return None
        record: object = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any record
        return None
    return record
