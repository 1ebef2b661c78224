"""Compare-and-swaps raced over real HTTP: every winner answers with the state it made.

Many threads of httpx clients race ``If-Match`` moves of one tag (and patches of one
workflow) against a real ``orchestrator serve``. Every 2xx must carry the revision and
target its own move produced, and the winners' moves must be the tag's history exactly.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.http.server import serve

pytestmark = pytest.mark.slow

CLIENTS = 16
ROUNDS = 20
TARGETS = 4
DAG = {"nodes": {"orders": {"deps": []}}}


@dataclass(frozen=True)
class Win:
    """A move a client won: the revision it produced and where it left the tag."""

    client: str
    revision: int
    target_id: str | None


def _add(node: str) -> list[dict]:
    return [{"op": "add", "path": f"/nodes/{node}", "value": {"deps": []}}]


def _versions(http: httpx.Client) -> list[str]:
    """Make ``TARGETS`` versions on the tag ``main``; their artifact ids."""
    created = http.post("/workflows", json={"name": "race", "dag": DAG})
    assert created.status_code == 201, created.text
    ids = [created.json()["artifact_id"]]
    for index in range(1, TARGETS):
        patched = http.patch("/workflows/main", json=_add(f"n{index}"))
        assert patched.status_code == 200, patched.text
        ids.append(patched.json()["artifact_id"])
    return ids


def _race_tag(base: str, index: int, targets: list[str]) -> list[Win]:
    """GET then ``If-Match`` PUT (every fifth round a DELETE) of the tag ``race``."""
    me = f"client-{index}"
    wins: list[Win] = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for round_ in range(ROUNDS):
            got = http.get("/tags/race")
            if got.status_code == 404:  # deleted: its last move says where it is now
                last = http.get("/tags/race/history").json()[-1]
                current, seen = last["to_target_id"], last["revision"]
            else:
                assert got.status_code == 200, got.text
                current, seen = got.json()["target_id"], int(got.headers["ETag"].strip('"'))
                assert got.json()["revision"] == seen
            if current is not None and round_ % 5 == 4:
                deleted = http.delete(
                    "/tags/race", params={"moved_by": me}, headers={"If-Match": f'"{seen}"'}
                )
                assert deleted.status_code in (204, 404, 409), deleted.text
                if deleted.status_code == 204:
                    wins.append(Win(me, seen + 1, None))
                continue
            target = targets[(index + round_) % TARGETS]
            if target == current:
                target = targets[(index + round_ + 1) % TARGETS]
            put = http.put(
                "/tags/race",
                json={"target": target, "moved_by": me},
                headers={"If-Match": f'"{seen}"'},
            )
            assert put.status_code in (200, 201, 409), put.text
            if put.status_code == 409:
                continue
            body = put.json()
            # the state this move produced, not a later one made by someone else
            assert put.headers["ETag"] == f'"{seen + 1}"', (seen, put.headers, body)
            assert body["revision"] == seen + 1, (seen, body)
            assert body["target_id"] == target and body["updated_by"] == me, body
            wins.append(Win(me, seen + 1, target))
    return wins


def _race_workflow(base: str, index: int) -> list[Win]:
    """GET then ``If-Match`` PATCH of the workflow on ``main``."""
    me = f"client-{index}"
    wins: list[Win] = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for round_ in range(ROUNDS):
            got = http.get("/workflows/main")
            assert got.status_code == 200, got.text
            seen = int(got.headers["ETag"].strip('"'))
            patched = http.patch(
                "/workflows/main",
                json=_add(f"c{index}r{round_}"),
                headers={"If-Match": f'"{seen}"'},
            )
            assert patched.status_code in (200, 409), patched.text
            if patched.status_code == 409:
                continue
            body = patched.json()
            assert patched.headers["ETag"] == f'"{seen + 1}"' and body["revision"] == seen + 1
            wins.append(Win(me, body["revision"], body["artifact_id"]))
    return wins


def _assert_history_is_the_winners(http: httpx.Client, tag: str, before: int, wins: list[Win]):
    """The moves after revision ``before`` are exactly the winners' moves."""
    history = http.get(f"/tags/{tag}/history").json()
    raced = {move["revision"]: move for move in history if move["revision"] > before}
    revisions = [win.revision for win in wins]
    assert len(set(revisions)) == len(revisions), "two winners share a revision"
    assert len(wins) == len(raced), (len(wins), len(raced))
    for win in wins:
        assert raced[win.revision]["to_target_id"] == win.target_id, (win, raced[win.revision])
    assert [move["revision"] for move in history] == list(range(1, len(history) + 1))


def test_racing_tag_swaps_answer_with_their_own_moves(
    database_url: str, blob_root: Path, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with (
        serve(database_url, blob_root, log) as base,
        httpx.Client(base_url=base, timeout=60) as http,
    ):
        targets = _versions(http)
        assert http.put("/tags/race", json={"target": targets[0]}).status_code == 201
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = pool.map(lambda i: _race_tag(base, i, targets), range(CLIENTS))
            wins = [win for client in results for win in client]
        assert len(wins) > ROUNDS  # the race was real: many moves were won
        _assert_history_is_the_winners(http, "race", 1, wins)


def test_racing_workflow_patches_answer_with_their_own_moves(
    database_url: str, blob_root: Path, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with (
        serve(database_url, blob_root, log) as base,
        httpx.Client(base_url=base, timeout=60) as http,
    ):
        created = http.post("/workflows", json={"name": "race", "dag": DAG})
        assert created.status_code == 201, created.text
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = pool.map(lambda i: _race_workflow(base, i), range(CLIENTS))
            wins = [win for client in results for win in client]
        assert len(wins) > ROUNDS
        _assert_history_is_the_winners(http, "main", 1, wins)
