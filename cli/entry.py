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
    try:
        run()
    finally:
        # The command is over (done, failed or interrupted): a Ctrl-C from here on has
        # nothing to stop. Ignoring it keeps the exit code the command chose; otherwise a
        # signal landing while the interpreter shuts down (its handlers are reset to the
        # default then) would kill the process silently, exit -2.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
