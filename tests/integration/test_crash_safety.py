"""SIGKILL a writer at random moments; after every kill nothing committed is lost or torn."""

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

KILLS = 30
ROOT = Path(__file__).parent.parent.parent
BLOB_NAME = re.compile(r"[0-9a-f]{64}")


def start_writer(url: str, blob_root: Path, seed: int) -> subprocess.Popen[str]:
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
    for path in (catalog.blob_root / "sha256").rglob("*"):
        if path.is_file():
            assert BLOB_NAME.fullmatch(path.name), path
            assert catalog.cas.compute_hash(path.read_bytes()) == f"sha256:{path.name}", path


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
    catalog: core.Services, database_url: str, blob_root: Path
) -> None:
    rng = random.Random(20261126)
    catalog.assets.commit_output("seed", "main", "node0", b"0", media_type="application/json")
    catalog.database.dispose()  # let the writers have the file
    reports = 0
    for kill in range(KILLS):
        writer = start_writer(database_url, blob_root, seed=kill)
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(writer.pid, signal.SIGKILL)
        reported, errors = writer.communicate(timeout=30)
        assert writer.returncode == -signal.SIGKILL, errors
        check_invariants(catalog)
        reports += check_reported_writes(catalog, reported)
        catalog.database.dispose()
    history = catalog.tags.get_history("main")
    assert len(history) > KILLS  # the writers did commit between kills
    assert reports > KILLS  # and reported what they committed
