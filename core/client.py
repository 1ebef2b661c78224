"""A step's catalog over HTTP: ``ServedSteps`` answers ``StepCatalog`` from a catalog
served with ``orchestrator serve``, so a step process loads no database driver, no ORM
and no service, and holds no file or connection of the database; the process that ran
the steps records the run's end through it the same way (``end_run``).

Errors come back as the domain errors the server raised (``ConflictError``,
``PolicyError``, ``ValidationError``, ...); a server that does not answer is a
``StorageUnavailableError`` naming its URL.
"""

import contextlib
import hashlib
import http.client
import json
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlencode, urlsplit

from core.domain import NodeValue, OutcomeState, OutputCommit, PublishMode, Run, RunOutcome
from core.errors import (
    ConflictError,
    IntegrityError,
    MergeConflictError,
    NotFoundError,
    OrchestratorError,
    PolicyError,
    StorageBusyError,
    StorageUnavailableError,
    ValidationError,
)

SERVER_URL_ENV = "ORCHESTRATOR_SERVER_URL"
CHUNK_SIZE = 1 << 20
SPOOL_IN_MEMORY = 8 << 20
"""A value read with ``open`` is kept in memory up to this size, then in a temporary file."""
REUSE_IDLE = 2.0
"""Seconds a connection may have been idle and still be reused: a server closes idle
connections (uvicorn after 5 s), so an older one is replaced before a request. A request
whose body is a stream cannot be sent again if a reused connection turns out closed."""
CLOSED_BY_SERVER = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)
"""How a kept-alive connection the server closed while idle fails: the request was not
read, so it may be sent again."""
ERRORS: dict[str, type[OrchestratorError]] = {
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "validation": ValidationError,
    "busy": StorageBusyError,
    "unavailable": StorageUnavailableError,
    "integrity": IntegrityError,
}


UNIX_SCHEME = "http+unix"
"""A server on a unix socket: ``http+unix://<the socket's path, percent-encoded>``."""


class ServerUnreachableError(StorageUnavailableError):
    """The served catalog could not be connected to: no request reached it."""


def check_server_url(url: str) -> str:
    """``url`` without a trailing ``/`` if it is an ``http://host[:port][/prefix]`` or an
    ``http+unix://<socket path, percent-encoded>[/prefix]`` URL, else a
    ``ValidationError`` naming it."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        port_ok = parts is not None and (parts.port is None or parts.port > 0)
    except ValueError:  # a port that is no number, or out of range
        parts, port_ok = None, False
    located = parts is not None and (
        (parts.scheme == "http" and bool(parts.hostname))
        or (parts.scheme == UNIX_SCHEME and unquote(parts.netloc).startswith("/"))
    )
    if parts is None or not port_ok or not located or parts.query:
        raise ValidationError(
            f"invalid server url {url!r}: expected http://host:port of `orchestrator serve`, "
            f"or {UNIX_SCHEME}://%2Fpath%2Fto%2Fsocket of `orchestrator serve --unix-socket`"
        )
    return url.rstrip("/")


def unix_server_url(socket_path: str) -> str:
    """The server URL of a catalog served on the unix socket at ``socket_path``."""
    return f"{UNIX_SCHEME}://{quote(socket_path, safe='')}"


class _UnixConnection(http.client.HTTPConnection):
    """An HTTP connection over a unix socket."""

    def __init__(self, socket_path: str, timeout: float, blocksize: int) -> None:
        super().__init__("localhost", timeout=timeout, blocksize=blocksize)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class ServedSteps:
    """``StepCatalog`` over HTTP, one keep-alive connection per thread."""

    def __init__(self, url: str, *, timeout: float = 300.0) -> None:
        self.url = check_server_url(url)
        parts = urlsplit(self.url)
        self._socket_path = unquote(parts.netloc) if parts.scheme == UNIX_SCHEME else None
        self._host, self._port = parts.hostname or "", parts.port or 80
        self._prefix = parts.path
        self._timeout = timeout
        self._local = threading.local()
        self._reads: dict[str, int] = {}
        """How many values this process located for each run since a commit of the run
        carried them: the server writes a run's noted reads with the run's next commit,
        else on a flush."""
        self._reads_lock = threading.Lock()

    def pin(
        self,
        run_id: str,
        tag: str = "main",
        *,
        job_name: str | None = None,
        at_version: str | None = None,
        publish: PublishMode | str | None = None,
        parent_run_id: str | None = None,
    ) -> tuple[uuid.UUID, uuid.UUID | None]:
        """The run's snapshot and base, as ``RunService.pin``."""
        body = {
            "run_id": run_id,
            "tag": tag,
            "job_name": job_name,
            "at_version": at_version,
            "publish": None if publish is None else str(publish),
            "parent_run_id": parent_run_id,
        }
        pinned = self._json("POST", "/steps/pin", body=json.dumps(body).encode(), json_body=True)
        return _uuid(pinned["snapshot_id"]), _optional_uuid(pinned["base_id"])

    def commit_output(
        self,
        run_id: str,
        tag: str,
        node: str,
        content: bytes | BinaryIO,
        *,
        media_type: str,
        deps: list[str] | tuple[str, ...] = (),
        partition_key: str | None = None,
        code_version: str | None = None,
        job_name: str | None = None,
        publish: PublishMode | str | None = None,
    ) -> OutputCommit:
        query = {
            "run_id": run_id,
            "tag": tag,
            "node": node,
            "media_type": media_type,
            "deps": list(deps),
            "partition_key": partition_key,
            "code_version": code_version,
            "job_name": job_name,
            "publish": None if publish is None else str(publish),
        }
        seen = self._located(run_id)
        sent = _Hashing(content)
        answer = self._json("POST", "/steps/outputs", query, body=sent.body)
        self._carried(run_id, seen)
        commit = OutputCommit(
            value=_node_value(answer["value"]),
            tag=answer["tag"],
            artifact_id=_uuid(answer["artifact_id"]),
            version_hash=answer["version_hash"],
            from_target_id=_optional_uuid(answer["from_target_id"]),
            revision=answer["revision"],
            changed=answer["changed"],
            from_version_hash=answer["from_version_hash"],
        )
        sent.check(commit.value)
        return commit

    commit_output_stream = commit_output

    def commit_step_output(
        self,
        run_id: str,
        tag: str,
        node: str,
        content: bytes | BinaryIO,
        *,
        media_type: str,
        job_name: str | None = None,
    ) -> NodeValue:
        query = {
            "run_id": run_id,
            "tag": tag,
            "node": node,
            "media_type": media_type,
            "job_name": job_name,
        }
        seen = self._located(run_id)
        sent = _Hashing(content)
        value = _node_value(self._json("POST", "/steps/op-outputs", query, body=sent.body))
        self._carried(run_id, seen)
        sent.check(value)
        return value

    commit_step_output_stream = commit_step_output

    def locate_input(
        self,
        run_id: str | None,
        tag: str,
        node: str,
        *,
        partition_key: str | None = None,
        pin_tag: str | None = None,
        pin_version: str | None = None,
        producer: str | None = None,
    ) -> NodeValue:
        query = {
            "run_id": run_id,
            "tag": tag,
            "node": node,
            "partition_key": partition_key,
            "pin_tag": pin_tag,
            "pin_version": pin_version,
            "producer": producer,
        }
        value = _node_value(self._json("GET", "/steps/inputs", query))
        self._note_read(run_id)
        return value

    def locate_step_output(
        self, run_id: str | None, tag: str, producer: str, node: str
    ) -> NodeValue:
        query = {"run_id": run_id, "tag": tag, "producer": producer, "node": node}
        value = _node_value(self._json("GET", "/steps/op-outputs", query))
        self._note_read(run_id)
        return value

    def read(self, value: NodeValue) -> bytes:
        """The bytes of ``value``, verified against its cas id."""
        with self._blob(value) as response:
            content = self._body(response, "GET", value.cas_id)
        _verify(value, hashlib.sha256(content), len(content))
        return content

    def open(self, value: NodeValue) -> BinaryIO:
        """The bytes of ``value`` in a file at its start (in memory while small), verified
        against its cas id; the caller closes it."""
        spooled = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY)  # noqa: SIM115 (returned)
        try:
            digest, size = hashlib.sha256(), 0
            with self._blob(value) as response:
                while chunk := self._body(response, "GET", value.cas_id, CHUNK_SIZE):
                    digest.update(chunk)
                    spooled.write(chunk)
                    size += len(chunk)
                if response.length:  # the connection ended before Content-Length did
                    raise self._broken_off("GET", value.cas_id, f"{response.length} bytes short")
            _verify(value, digest, size)
            spooled.seek(0)
        except BaseException:
            spooled.close()
            raise
        return spooled  # type: ignore[return-value]

    def flush_reads(self, run_id: str) -> None:
        """Have the server write the reads this process noted for ``run_id`` that no
        commit carried (none: no request)."""
        seen = self._located(run_id)
        if seen:
            self._json("POST", "/steps/reads", {"run_id": run_id})
            self._carried(run_id, seen)

    def end_run(
        self,
        run_id: str,
        status: str,
        *,
        finished_at: datetime | None = None,
        failed_checks: Sequence[str] = (),
    ) -> Run:
        """Record how a run ended, and audit it, as ``RunService.end_run``."""
        body = {
            "status": status,
            "finished_at": None if finished_at is None else finished_at.isoformat(),
            # text goes as it is, for the server to refuse: it is not a list of names
            "failed_checks": failed_checks
            if isinstance(failed_checks, str)
            else list(failed_checks),
        }
        path = f"/runs/{quote(run_id, safe='')}/end"
        return _run(self._json("POST", path, body=json.dumps(body).encode(), json_body=True))

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _note_read(self, run_id: str | None) -> None:
        if run_id is not None:
            with self._reads_lock:
                self._reads[run_id] = self._reads.get(run_id, 0) + 1

    def _located(self, run_id: str) -> int:
        with self._reads_lock:
            return self._reads.get(run_id, 0)

    def _carried(self, run_id: str, seen: int) -> None:
        """A commit or flush of ``run_id`` that started after ``seen`` reads wrote them
        (a read noted since, by another thread, waits for the next one)."""
        with self._reads_lock:
            if self._reads.get(run_id) == seen:
                self._reads.pop(run_id, None)

    @contextlib.contextmanager
    def _blob(self, value: NodeValue) -> Iterator[http.client.HTTPResponse]:
        response = self._send("GET", f"/blobs/{quote(value.cas_id, safe=':')}", None, None)
        try:
            if response.status != 200:
                raise _error(self.url, response.status, self._body(response, "GET", value.cas_id))
            yield response
        finally:
            response.close()

    def _body(
        self, response: http.client.HTTPResponse, method: str, path: str, size: int = -1
    ) -> bytes:
        """``size`` bytes (all: -1) of ``response``'s body; an answer cut short is the
        server's failure to answer, not a damaged value."""
        try:
            return response.read(size) if size >= 0 else response.read()
        except (http.client.HTTPException, OSError) as exc:
            raise self._broken_off(method, path, exc) from exc

    def _broken_off(self, method: str, path: str, why: object) -> StorageUnavailableError:
        self.close()
        return StorageUnavailableError(
            f"the served catalog at {self.url} broke off its answer to {method} {path}: {why}"
        )

    def _json(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        *,
        body: "bytes | _Hashing | None" = None,
        json_body: bool = False,
    ) -> Any:
        response = self._send(method, path, query, body, json_body=json_body)
        content = self._body(response, method, path)
        if response.status >= 300:
            raise _error(self.url, response.status, content)
        return json.loads(content) if content else None

    def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: "bytes | _Hashing | None",
        *,
        json_body: bool = False,
    ) -> http.client.HTTPResponse:
        """The response to one request. A reused connection the server had closed before
        it read the request is replaced, and the request sent again when its body can be
        sent again; any other failure (a timeout: the server may have acted) is raised."""
        target = self._prefix + path
        if query:
            kept = {key: value for key, value in query.items() if value is not None}
            target += "?" + urlencode(kept, doseq=True)
        headers = {"Content-Type": "application/json" if json_body else "application/octet-stream"}
        replayable = body is None or isinstance(body, bytes)
        for attempt in (1, 2):
            try:
                connection, reused = self._connection(method, path)
            except ServerUnreachableError as exc:
                if attempt == 1:
                    raise
                # the first attempt went out on a connection the server then closed: it
                # may have acted on it, so this is no longer "nothing was sent"
                raise StorageUnavailableError(
                    f"the served catalog at {self.url} did not answer {method} {path}: {exc}"
                ) from exc
            try:
                connection.request(
                    method,
                    target,
                    body=body,
                    headers=headers,
                    encode_chunked=not replayable,
                )
                response = connection.getresponse()
            except (http.client.HTTPException, OSError) as exc:
                self.close()
                if attempt == 1 and reused and replayable and isinstance(exc, CLOSED_BY_SERVER):
                    continue
                raise StorageUnavailableError(
                    f"the served catalog at {self.url} did not answer {method} {path}: {exc}"
                ) from exc
            self._local.used = time.monotonic()
            return response
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _connection(self, method: str, path: str) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it served a request before; a new one is
        connected here, so that a server that cannot be reached is told apart
        (``ServerUnreachableError``: nothing was sent)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and time.monotonic() - self._local.used < REUSE_IDLE:
            return connection, True
        self.close()
        if self._socket_path is None:
            connection = http.client.HTTPConnection(
                self._host, self._port, timeout=self._timeout, blocksize=CHUNK_SIZE
            )
        else:
            connection = _UnixConnection(self._socket_path, self._timeout, CHUNK_SIZE)
        try:
            connection.connect()
        except OSError as exc:
            raise ServerUnreachableError(
                f"the served catalog at {self.url} could not be reached for {method} {path}: {exc}"
            ) from exc
        self._local.connection = connection
        return connection, False


class _Hashing:
    """A request body (bytes, or a stream read as it is sent) and the sha256 of what was
    sent, to check the value the server says it stored."""

    def __init__(self, content: bytes | BinaryIO) -> None:
        self._digest = hashlib.sha256()
        self._size = 0
        self._stream: BinaryIO | None = None
        if isinstance(content, bytes):
            self._digest.update(content)
            self._size = len(content)
        else:
            self._stream = content
        self.body: bytes | _Hashing = content if isinstance(content, bytes) else self

    def read(self, size: int = -1) -> bytes:
        assert self._stream is not None, "only a stream body is read"
        chunk = self._stream.read(size)
        self._digest.update(chunk)
        self._size += len(chunk)
        return chunk

    def check(self, value: NodeValue) -> None:
        _verify(value, self._digest, self._size, "sent to")


def _uuid(text: str) -> uuid.UUID:
    return uuid.UUID(text)


def _optional_uuid(text: str | None) -> uuid.UUID | None:
    return None if text is None else uuid.UUID(text)


def _node_value(answer: Mapping[str, Any]) -> NodeValue:
    return NodeValue(
        answer["node"],
        answer["partition_key"],
        answer["cas_id"],
        answer["media_type"],
        answer["size"],
    )


def _run(answer: Mapping[str, Any]) -> Run:
    outcome = answer["outcome"]
    return Run(
        answer["run_id"],
        _uuid(answer["snapshot_id"]),
        _optional_uuid(answer["base_id"]),
        answer["tag"],
        answer["status"],
        datetime.fromisoformat(answer["started_at"]),
        None if answer["finished_at"] is None else datetime.fromisoformat(answer["finished_at"]),
        answer["job_name"],
        PublishMode(answer["publish"]),
        _optional_uuid(answer["head_id"]),
        None
        if outcome is None
        else RunOutcome(
            OutcomeState(outcome["state"]),
            outcome["revision"],
            _optional_uuid(outcome["to_target_id"]),
            tuple(outcome["checks"]),
            tuple((each["node"], each["partition_key"]) for each in outcome["conflicts"]),
        ),
    )


def _verify(value: NodeValue, digest: Any, size: int, how: str = "received from") -> None:
    if size != value.size or f"sha256:{digest.hexdigest()}" != value.cas_id:
        raise IntegrityError(
            f"the bytes {how} the served catalog ({size} bytes, sha256:"
            f"{digest.hexdigest()}) are not {value.cas_id} ({value.size} bytes)"
        )


def _error(url: str, status: int, content: bytes) -> OrchestratorError:
    """The domain error a server's error answer stands for."""
    try:
        detail = json.loads(content)["error"]
        kind, message = detail["type"], detail["message"]
    except (ValueError, KeyError, TypeError):
        return OrchestratorError(f"the served catalog at {url} answered HTTP {status}")
    if kind == "policy":
        return PolicyError(
            message, tag=detail.get("tag") or "", pattern=detail.get("pattern") or ""
        )
    if kind == "withdrawn":  # the server answers nothing more, and did nothing of this
        return ServerUnreachableError(f"the served catalog at {url} withdrew: {message}")
    if kind == "no_route":
        return StorageUnavailableError(
            f"{url} has no such route ({message}): is it `orchestrator serve` of this version?"
        )
    if kind == "conflict" and detail.get("conflicts") is not None:
        conflicts = [(each["node"], each["partition_key"]) for each in detail["conflicts"]]
        return MergeConflictError(message, conflicts)
    return ERRORS.get(kind, OrchestratorError)(message)
