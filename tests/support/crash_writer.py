"""A writer that never stops: the crash-safety test kills it with SIGKILL at random moments.

Run as ``python -m tests.support.crash_writer URL BLOB_ROOT SEED``; prints ``ready`` once connected,
then a line for each write once it has returned (committed): ``artifact <id>``,
``blob <cas id>``, ``move <tag> <move id>`` or ``run <run id>``. The test checks that each
is still there after the kill.
"""

import contextlib
import random
import sys
import uuid

import core

TAGS = ["main", "team/prod", "scratch"]
STREAM_COPIES = {"local": 2000, "s3": 100_000}
"""Copies of the content in a streamed blob: ~150 KB to a folder, ~7.5 MB (a multipart
upload of two parts) to an object store."""


def write_forever(url: str, blob_root: str, seed: int) -> None:
    rng = random.Random(seed)
    copies = STREAM_COPIES["s3" if blob_root.startswith("s3://") else "local"]
    with core.connect(url, blob_root) as catalog:
        print("ready", flush=True)
        step = 0
        while True:
            step += 1
            action = rng.random()
            content = f'{{"seed": {seed}, "step": {step}, "nonce": "{uuid.uuid4()}"}}'.encode()
            if action < 0.45:
                commit = catalog.assets.commit_output(
                    f"crash-{seed}",
                    "main",
                    f"node{step % 7}",
                    content,
                    media_type="application/json",
                    deps=[f"node{(step + 1) % 7}"] if step % 7 < 6 else [],
                )
                committed("artifact", commit.artifact_id)
                committed("blob", commit.value.cas_id)
            elif action < 0.6:
                committed("blob", catalog.cas.store_stream(_Chunks(content * copies)))
            elif action < 0.75:
                head = catalog.tags.get_tag("main")
                tag = rng.choice(TAGS[1:])
                catalog.tags.create_or_move_tag(tag, head.target_id)
                committed("move", tag, catalog.tags.get_history(tag)[-1].id)
            elif action < 0.85:
                created = catalog.workflows.create_workflow(
                    core.CreateWorkflowRequest(
                        "crash", {"nodes": {f"w{step}": {"deps": []}}}, tag="scratch"
                    )
                )
                committed("artifact", created.artifact_id)
            elif action < 0.95:
                committed("run", catalog.runs.create_run(f"run-{seed}-{step}", "main").run_id)
            else:
                with contextlib.suppress(core.NotFoundError):
                    catalog.tags.delete_tag("scratch")


def committed(*fields: object) -> None:
    """Report a write that has returned, so the test can look for it after the kill (one
    line in one write: a kill can still cut it, so only whole lines count)."""
    sys.stdout.write(" ".join(map(str, fields)) + "\n")
    sys.stdout.flush()


class _Chunks:
    """A stream in 64 KiB pieces, so a kill can land mid-write."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        piece = self._data[self._offset : self._offset + 65536]
        self._offset += len(piece)
        return piece


if __name__ == "__main__":
    write_forever(sys.argv[1], sys.argv[2], int(sys.argv[3]))
