"""An S3 API on loopback for the tests: moto's standalone server in a process of its own,
and direct (boto3) access to what the catalog stored there, for tampering and inspection."""

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import boto3

from tests.support.local_server import free_port, serving

REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
"""Dummy credentials (moto accepts any unless told to check them)."""


@contextlib.contextmanager
def moto_server(log: Path, **env: str) -> Iterator[str]:
    """``python -m moto.server`` on a free loopback port until the block ends; its
    endpoint URL (``http://127.0.0.1:PORT``). ``env`` adds to the server's environment
    (``INITIAL_NO_AUTH_ACTION_COUNT=0`` makes it check credentials)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with serving("moto server", args, log, f"{endpoint}/moto-api/", {**os.environ, **env}):
        yield endpoint


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def new_bucket(endpoint: str) -> str:
    """A fresh, empty bucket's name."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


class S3Objects:
    """The objects under ``s3://bucket/prefix``, read and written behind the catalog's back."""

    def __init__(self, endpoint: str, url: str) -> None:
        self.client = s3_client(endpoint)
        self.bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.prefix = f"{prefix}/" if prefix else ""

    def key(self, cas_id: str) -> str:
        digest = cas_id.split(":", 1)[1]
        return f"{self.prefix}sha256/{digest[:2]}/{digest[2:4]}/{digest}"

    def keys(self, under: str = "") -> list[str]:
        """Every key under ``prefix + under``, relative to the prefix, sorted."""
        found: list[str] = []
        pages = self.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix + under):
            found += [item["Key"][len(self.prefix) :] for item in page.get("Contents", [])]
        return sorted(found)

    def read(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)[
            "Body"
        ].read()
        return body

    def write(self, key: str, content: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=content)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def last_modified(self, key: str) -> datetime:
        head = self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        modified: datetime = head["LastModified"]
        return modified

    def incomplete_uploads(self) -> list[str]:
        """The keys of the multipart uploads begun under the prefix and neither completed
        nor aborted (invisible to a listing of objects, but billed)."""
        found = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        return sorted(upload["Key"][len(self.prefix) :] for upload in found.get("Uploads", []))
