"""A readable stream of what a writer writes, in bounded memory: a pipe and a thread.

The catalog stores a stream by reading it (``store_stream``); a Parquet writer writes. A
``WrittenStream`` runs the writer on a thread into a pipe whose other end the caller reads,
so the file is never whole in memory or on disk twice. A writer that fails makes the read
fail (never a short stream taken for the whole value); a reader that stops early closes
the pipe, which stops the writer.
"""

import contextlib
import fcntl
import io
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from typing_extensions import Buffer

PIPE_SIZE = 1 << 20
"""Bytes the pipe holds (Linux's ``F_SETPIPE_SZ``; the system default elsewhere)."""


class WriterError(Exception):
    """The writer failed: what it wrote so far is not the value."""


class WrittenStream(io.RawIOBase):
    """Reads what ``write(sink)`` writes on a thread of its own; a context manager."""

    def __init__(self, write: Callable[[BinaryIO], None]) -> None:
        super().__init__()
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(AttributeError, OSError):  # Linux only; a bigger pipe
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self._source = os.fdopen(read_fd, "rb", buffering=0)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._produce, args=(write, write_fd), name="written-stream", daemon=True
        )
        self._thread.start()

    def _produce(self, write: Callable[[BinaryIO], None], write_fd: int) -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=PIPE_SIZE) as sink:
                write(sink)
        except BaseException as exc:  # handed to the reader, which raises it
            self._error = exc

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "Buffer") -> int:
        read = self._source.readinto(buffer)
        if not read:  # the writer closed its end: finished, or failed
            self._thread.join()
            if self._error is not None:
                raise WriterError(str(self._error)) from self._error
        return read or 0

    def close(self) -> None:
        """Close the pipe (a writer still writing stops on it) and wait for the writer."""
        if not self.closed:
            self._source.close()
            self._thread.join()
        super().close()
