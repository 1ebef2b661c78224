"""The ``orchestrator`` command line: an adapter over the core services."""

import signal

from core.cli import landing, lineage, maintenance, policy, read, serve, write
from core.cli.app import cli

__all__ = ["cli", "landing", "lineage", "main", "maintenance", "policy", "read", "serve", "write"]


def main() -> None:
    try:
        cli(prog_name="orchestrator")
    finally:  # the command has ended (status 130 if interrupted): a late Ctrl-C waits
        signal.signal(signal.SIGINT, signal.SIG_IGN)
