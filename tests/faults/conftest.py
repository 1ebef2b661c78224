"""Fixtures of the fault-injection tier: real faults, made by the operating system.

A tmpfs is mounted (and remounted read-only, or made tiny so that it fills) under the
test's own folder; CI runs as root, so mounts work there. Where the kernel refuses a
mount (not root, no mount namespace), the test is skipped with the kernel's reason.
"""

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


class Tmpfs:
    """A tmpfs mounted at ``path``: remount it read-only or writable again."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read_only(self) -> None:
        _mount("-o", "remount,ro", str(self.path))

    def writable(self) -> None:
        _mount("-o", "remount,rw", str(self.path))


def _mount(*arguments: str) -> None:
    subprocess.run(["mount", *arguments], check=True, capture_output=True, text=True)


@pytest.fixture
def make_tmpfs(tmp_path: Path) -> Iterator[Callable[..., Tmpfs]]:
    """``make_tmpfs(size="2m")`` mounts a new tmpfs under ``tmp_path``; unmounted after."""
    mounted: list[Path] = []

    def make(size: str = "64m", name: str = "mnt") -> Tmpfs:
        path = tmp_path / name
        path.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("the fault tier needs mount(8) to make a tmpfs")
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (run as root): {result.stderr.strip()}")
        mounted.append(path)
        return Tmpfs(path)

    yield make
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
