"""The ``orchestrator`` command line: an adapter over the core services."""

from core.cli import maintenance, read, serve, write
from core.cli.app import cli

__all__ = ["cli", "main", "maintenance", "read", "serve", "write"]


def main() -> None:
    cli(prog_name="orchestrator")
