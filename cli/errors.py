"""One place that maps failures to exit codes and one clear line on stderr."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import asyncio

    from pydantic import ValidationError

OK, FINDING, BAD_INPUT, REFUSED, UNREACHABLE, INTERNAL = 0, 1, 2, 3, 4, 5


# The largest position (or count of them) SQLite and PostgreSQL can store.
MAX_POSITION = 2**63 - 1
DAY = 86_400.0


def positions(least: int = 0) -> click.IntRange:
    """A position or count option: a whole number the stores can hold."""
    return click.IntRange(least, MAX_POSITION)


class Seconds(click.FloatRange):
    """A finite number of seconds within bounds (never NaN or infinite)."""

    name = "seconds"

    def __init__(self, least: float, most: float = DAY) -> None:
        super().__init__(least, most)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:  # fmt: skip
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


class InputError(click.ClickException):
    """Bad input found by the CLI itself (exit 2)."""

    exit_code = BAD_INPUT


class Failure(click.ClickException):
    """A failure already classified: its exit code and its one line."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # per instance: the classified code


def describe_validation(error: ValidationError, flags: bool = True) -> str:
    """The first problem of a pydantic validation error, in one line."""
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    name = loc
    if flags and loc:  # positional ids are arguments, everything else is a flag
        flag = "nats" if loc == "nats_url" else loc.replace("_", "-")  # --nats sets nats_url
        name = "ID" if loc == "id" else f"--{flag}"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"unknown field {loc!r}"
    if first["type"] == "missing":
        return f"missing {name}"
    if first["type"] in ("int_type", "int_parsing"):
        message = f"must be a whole number, not {str(first.get('input'))[:40]}"
    return f"{name}: {message}" if name else message


def _kinds(*names: str) -> tuple[type[BaseException], ...]:
    """The exception classes named "module:Class" whose modules are already loaded: a
    failure raised by a module that was never imported cannot be one of its classes, so
    classifying it imports nothing (the CLI starts without NATS or psycopg)."""
    found: list[type[BaseException]] = []
    for name in names:
        module, _, attribute = name.partition(":")
        loaded = sys.modules.get(module if module.startswith(("psycopg", "pydantic"))
                                 else f"homeledger.{module}")  # fmt: skip
        if loaded is not None:
            found.append(getattr(loaded, attribute))
    return tuple(found)


# Failures whose text is the whole message, by exit code.
_BAD_INPUT = ("domain.money:AmountError", "adapters.errors:ConfigError",
              "domain.commands:UnknownCommandError", "domain.events:UnknownEventTypeError")
_PLAIN: dict[int, tuple[str, ...]] = {
    BAD_INPUT: ("adapters.nats_stream:StreamConfigError", "adapters.consumer:ConsumerConfigError",
                "cli.bootstrap:ConsumerStoreGivenError",
                "projections.stream_projector:NotAConsumerStoreError",
                "projections.as_of:UnknownInitiativeError"),
    FINDING: ("adapters.relay:StreamDisagreesError", "projections.runner:ProjectionsAheadError"),
    UNREACHABLE: ("adapters.errors:NatsUnavailableError",
                  "adapters.consumer:UnreadableMessageError"),
}  # fmt: skip


def classify(exc: BaseException, *, flags: bool = True) -> tuple[int, str]:
    """The exit code and message of a failure."""
    from homeledger.adapters.errors import (
        LedgerIntegrityError,
        StoreBusyError,
        StoreUnavailableError,
        first_line,
    )

    if isinstance(exc, _kinds("adapters.application:BatchError")):
        code, message = classify(exc.error, flags=False)  # type: ignore[attr-defined]
        return code, f"command {exc.index + 1}: {message}"  # type: ignore[attr-defined]
    if isinstance(exc, _kinds("domain.errors:EffectiveDateError")):  # a date it cannot hold
        return BAD_INPUT, f"invalid input [{exc.rule}]: {exc.message}"  # type: ignore[attr-defined]
    if isinstance(exc, _kinds("domain.errors:DomainError")):
        return REFUSED, f"refused [{exc.rule}]: {exc.message}"  # type: ignore[attr-defined]
    if isinstance(exc, StoreBusyError):
        return REFUSED, f"refused [store-busy]: {exc}"
    if isinstance(exc, _kinds("pydantic:ValidationError")):
        return BAD_INPUT, f"invalid input: {describe_validation(exc, flags)}"  # type: ignore[arg-type]
    if isinstance(exc, _kinds(*_BAD_INPUT)):
        return BAD_INPUT, f"invalid input: {exc}"
    for code, kinds in _PLAIN.items():
        if isinstance(exc, _kinds(*kinds)):
            return code, str(exc)
    if isinstance(exc, _kinds("projections.stream_projector:StreamIntegrityError")):
        return FINDING, f"refused to project: {exc}"
    if isinstance(exc, LedgerIntegrityError):
        return FINDING, f"refused: {exc}; nothing was recorded (run verify)"
    if isinstance(exc, _kinds("adapters.nats_server:NatsServerError")):
        return UNREACHABLE, f"cannot start nats-server: {exc}"
    if isinstance(exc, StoreUnavailableError):
        return UNREACHABLE, f"store unavailable: {exc}"
    if isinstance(exc, click.ClickException):
        return exc.exit_code, exc.format_message()
    if isinstance(exc, (OSError, sqlite3.DatabaseError, *_kinds("psycopg:Error"))):
        return UNREACHABLE, f"store or NATS unavailable: {first_line(exc)}"
    # A failure nobody foresaw is a bug, not a verification finding (exit 1).
    return INTERNAL, f"internal error: {type(exc).__name__}: {first_line(exc)}"


@contextlib.contextmanager
def quiet_asyncio() -> Iterator[None]:
    """asyncio logs a warning for every TLS connection that nats-py closes: not ours."""
    logger = logging.getLogger("asyncio")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_until_signal(main: Callable[[Any], Any]) -> Any:
    """Run a coroutine factory; SIGTERM and SIGINT ask it to stop between batches.

    SIGTERM is a request to stop (the command ends as done); SIGINT, once the work
    stopped cleanly, ends it as interrupted (KeyboardInterrupt: exit 130).
    """
    import asyncio

    received: list[int] = []

    async def runner() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, _stopping(stop, received, sig))
        return await main(stop)

    with quiet_asyncio():
        result = asyncio.run(runner())
    if signal.SIGINT in received:
        raise KeyboardInterrupt
    return result


def _stopping(stop: asyncio.Event, received: list[int], sig: int) -> Callable[[], None]:
    def handler() -> None:
        received.append(sig)
        stop.set()

    return handler
