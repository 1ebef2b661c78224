"""The ``orchestrator`` console script's entry point.

It lives outside ``core`` so that it runs before the catalog's modules load: a Ctrl-C
while they load (the first half second of every command) ends the command quietly with
status 130, as one during the command does, instead of a traceback of the imports.
"""

import sys

EXIT_INTERRUPTED = 128 + 2  # SIGINT


def main() -> None:
    try:
        from core.cli import main as run_command
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    run_command()
