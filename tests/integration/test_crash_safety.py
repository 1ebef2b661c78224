"""SIGKILL a writer at random moments; after every kill nothing committed is lost or torn,
with the blobs in a local folder and in an S3 bucket (where a kill lands mid multipart
upload too: no content key may then hold other bytes)."""

import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

import core
from tests.support.blob_access import raw_blobs

KILLS = {"local": 16, "s3": 6}
"""Kills per run (an object store write takes longer, so fewer land in the same time);
each run takes the same moments (a fixed seed), spread over ``DELAYS``."""
DELAYS = {"local": (0.05, 0.6), "s3": (0.1, 1.5)}
"""Seconds a writer runs before its kill: long enough for some of its writes to commit."""
ROOT = Path(__file__).parent.parent.parent
BLOB_NAME = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def blob_root(any_blob_root: Path | str) -> Path | str:
    return any_blob_root


def start_writer(url: str, blob_root: Path | str, seed: int) -> subprocess.Popen[str]:
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.support.crash_writer", url, str(blob_root), str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    line = writer.stdout.readline().strip()
    assert line == "ready", writer.stderr.read() if writer.stderr else line
    return writer


def check_invariants(catalog: core.Services) -> None:
    report = catalog.maintenance.verify()
    assert report.problems == [], report.problems
    for tag in catalog.tags.list_tags():
        catalog.artifacts.resolve(tag.target_id)  # exists, and every link hashes right
    with catalog.database.transaction() as session:
        artifacts = session.execute(sa.text("SELECT id, cas_id FROM artifacts")).all()
        revisions = dict(session.execute(sa.text("SELECT name, revision FROM tags")).all())
        moves = Counter(session.scalars(sa.text("SELECT tag_name FROM tag_moves")))
    for _, cas_id in artifacts:
        catalog.cas.get_content(cas_id)  # present and verified
    assert revisions == dict(moves)  # a revision counts exactly the recorded moves
    raw = raw_blobs(catalog)
    for cas_id in raw.ids():  # every blob file or content key holds its bytes, whole
        assert BLOB_NAME.fullmatch(cas_id[7:]), cas_id
        assert catalog.cas.compute_hash(raw.read(cas_id)) == cas_id, cas_id


def check_reported_writes(catalog: core.Services, reported: str) -> int:
    """Every write the killed writer reported as returned is in the catalog; how many.
    A last line without its newline was cut by the kill and is left out."""
    lines = [line.split() for line in reported.split("\n")[:-1]]
    for kind, *fields in lines:
        if kind == "artifact":
            catalog.artifacts.get_by_id(uuid.UUID(fields[0]))
        elif kind == "blob":
            catalog.cas.get_content(fields[0])
        elif kind == "move":
            tag, move_id = fields
            assert int(move_id) in {move.id for move in catalog.tags.get_history(tag)}, fields
        else:
            assert kind == "run", kind
            catalog.runs.get_run(fields[0])
    return len(lines)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(
    catalog: core.Services, database_url: str, blob_root: Path | str
) -> None:
    store = "local" if isinstance(blob_root, Path) else "s3"
    kills = KILLS[store]
    rng = random.Random(20261126)
    catalog.assets.commit_output("seed", "main", "node0", b"0", media_type="application/json")
    catalog.database.dispose()  # let the writers have the file
    reports = 0
    for kill in range(kills):
        writer = start_writer(database_url, blob_root, seed=kill)
        time.sleep(rng.uniform(*DELAYS[store]))
        os.kill(writer.pid, signal.SIGKILL)
        reported, errors = writer.communicate(timeout=30)
        assert writer.returncode == -signal.SIGKILL, errors
        check_invariants(catalog)
        reports += check_reported_writes(catalog, reported)
        catalog.database.dispose()
    history = catalog.tags.get_history("main")
    assert len(history) > kills  # the writers did commit between kills
    assert reports > kills  # and reported what they committed


STREAMER = '''
import sys, core

class Endless:
    """1 MiB pieces for ever; says when 12 MiB were read (a part is uploading)."""
    def __init__(self):
        self.sent = 0
    def read(self, size=-1):
        self.sent += 1 << 20
        if self.sent == 12 << 20:
            print("streaming", flush=True)
        return bytes([self.sent % 251]) * (1 << 20)

with core.connect(sys.argv[1], sys.argv[2]) as catalog:
    catalog.cas.store_stream(Endless())
'''


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.3, 1.0])
def test_sigkill_mid_store_stream_to_s3_leaves_no_content_key(
    database_url: str, s3_blob_root: str, delay: float
) -> None:
    """Killed while its parts upload: no content key, no row; nothing else is harmed."""
    with core.connect(database_url, s3_blob_root) as catalog:
        before = catalog.cas.store_content(b"committed before the kill")
    streamer = subprocess.Popen(
        [sys.executable, "-c", STREAMER, database_url, s3_blob_root],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert streamer.stdout is not None
    assert streamer.stdout.readline().strip() == "streaming", streamer.stderr
    time.sleep(delay)
    os.kill(streamer.pid, signal.SIGKILL)
    streamer.communicate(timeout=30)
    assert streamer.returncode == -signal.SIGKILL
    with core.connect(database_url, s3_blob_root) as catalog:
        raw = raw_blobs(catalog)
        assert raw.ids() == [before]  # no content key but the committed blob's
        assert catalog.cas.get_content(before) == b"committed before the kill"
        assert catalog.maintenance.verify().problems == []
        leftovers = raw.temporary()  # at most a finished temporary upload, which gc sweeps
        assert all(name.endswith(".part") for name in leftovers), leftovers
