"""The `homeledger` command's entry point: Ctrl-C while it starts is handled like anywhere
else (exit 130, one line), not with a traceback from the middle of an import."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    try:
        from homeledger.cli.main import main as run
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping already
        sys.stderr.write("homeledger: interrupted\n")
        sys.exit(130)
    run()
