"""The ``orchestrator`` console script's entry point.

It lives outside ``core`` so that it runs before the catalog's modules load: a Ctrl-C
while they load (the first half second of every command) or while the options are read
ends the command quietly with status 130, as one during the command does
(``core.cli.app``), instead of a traceback.
"""

import sys

EXIT_INTERRUPTED = 128 + 2  # SIGINT


def main() -> None:
    try:
        from core.cli import main as run_command

        run_command()
    except KeyboardInterrupt:  # before a command's own handling began (imports, options)
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":  # python -m orchestrator_cli: how a step starts its local server
    main()
