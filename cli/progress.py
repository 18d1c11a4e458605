"""The one progress printer: on a terminal (stderr is a tty) a line that rewrites itself
with the count, the rate and, when the total is known, the percentage and the time
left; nothing anywhere else (a pipe, a file, a test), so that output stays clean.

    with Progress("replaying", total=head) as bar:
        bar.advance(1000)
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

REFRESH = 0.2  # seconds between redraws


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class Progress:
    """A count of `unit` towards `total` (None: unknown), shown on stderr if it is a
    terminal. Counting past the total turns it into a plain count."""

    def __init__(self, label: str, total: int | None = None, unit: str = "events",
                 stream: TextIO | None = None, enabled: bool | None = None) -> None:  # fmt: skip
        self.label = label
        self.total = total or None
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.count = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self.close()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def rate(self) -> float:
        elapsed = self.seconds
        return self.count / elapsed if elapsed > 0 else 0.0

    def advance(self, count: int) -> None:
        self.count += count
        now = time.monotonic()
        if self.enabled and now - self._drawn >= REFRESH:
            self._drawn = now
            self._draw(self.line())

    def line(self) -> str:
        """What the terminal shows now."""
        rate = self.rate()
        shown = f"{self.label}: {self.count:,}"
        if self.total is not None and self.count <= self.total:
            shown += f"/{self.total:,} {self.unit} {100 * self.count // self.total}%"
            left = (self.total - self.count) / rate if rate > 0 else None
            shown += f", {rate:,.0f} {self.unit}/s"
            return shown + (f", {_clock(left)} left" if left is not None else "")
        return f"{shown} {self.unit}, {rate:,.0f} {self.unit}/s"

    def _draw(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """Erase the line (the command prints its own summary)."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


class RelayProgress:
    """The relay's progress (adapters.relay's Progress protocol) on the one printer; a
    following relay says at start what it follows and from where."""

    def __init__(self, follow: str | None = None, enabled: bool | None = None) -> None:
        self.follow = follow
        self.enabled = enabled
        self.bar: Progress | None = None

    def start(self, backlog: int) -> None:
        if self.follow is not None:
            sys.stderr.write(f"homeledger: following {self.follow}: {backlog:,} events to "
                             "publish first, then each new one (Ctrl-C to stop)\n")  # fmt: skip
        self.bar = Progress("relaying", backlog, enabled=self.enabled)

    def advance(self, published: int) -> None:
        if self.bar is not None:
            self.bar.advance(published)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
