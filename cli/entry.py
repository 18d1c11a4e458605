"""The `homeledger` command's entry point: Ctrl-C while it starts is handled like anywhere
else (exit 130, one line), not with a traceback from the middle of an import."""

from __future__ import annotations

import gc
import signal
import sys

# Every path reads or writes facts by the thousand: millions of short-lived objects, few
# kept (reference counting frees them), while the collector's default first threshold
# (700 allocations) scans the young objects again and again: 10-30 % of a replay, an
# import or a verify. A higher threshold still collects cycles, in a long-running
# follower too, about every 50,000 allocations; what the command's start-up loaded is
# frozen out of the scans.
COLLECTOR_THRESHOLDS = (50_000, 20, 100)


def main() -> None:
    try:
        from homeledger.cli.main import main as run
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping already
        sys.stderr.write("homeledger: interrupted\n")
        sys.exit(130)
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    try:
        run()
    finally:
        # The command is over (done, failed or interrupted): a Ctrl-C from here on has
        # nothing to stop. Ignoring it keeps the exit code the command chose; otherwise a
        # signal landing while the interpreter shuts down (its handlers are reset to the
        # default then) would kill the process silently, exit -2.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
