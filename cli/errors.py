"""One place that maps failures to exit codes and one clear line on stderr."""

from __future__ import annotations

import sqlite3

import click
import psycopg
from pydantic import ValidationError

from homeledger.adapters.application import BatchError
from homeledger.adapters.settings import ConfigError
from homeledger.adapters.store import StoreBusyError, StoreUnavailableError
from homeledger.domain.commands import UnknownCommandError
from homeledger.domain.errors import DomainError
from homeledger.domain.events import UnknownEventTypeError
from homeledger.domain.money import AmountError

OK, FINDING, BAD_INPUT, REFUSED, UNREACHABLE, INTERNAL = 0, 1, 2, 3, 4, 5


class InputError(click.ClickException):
    """Bad input found by the CLI itself (exit 2)."""

    exit_code = BAD_INPUT


class Failure(click.ClickException):
    """A failure already classified: its exit code and its one line."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # per instance: the classified code


class Unreachable(click.ClickException):
    """A service (store or NATS) that cannot be reached or read (exit 4)."""

    exit_code = UNREACHABLE


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


def classify(exc: BaseException, *, flags: bool = True) -> tuple[int, str]:
    """The exit code and message of a failure."""
    if isinstance(exc, BatchError):
        code, message = classify(exc.error, flags=False)
        return code, f"command {exc.index + 1}: {message}"
    if isinstance(exc, DomainError):
        return REFUSED, f"refused [{exc.rule}]: {exc.message}"
    if isinstance(exc, StoreBusyError):
        return REFUSED, f"refused [store-busy]: {exc}"
    if isinstance(exc, ValidationError):
        return BAD_INPUT, f"invalid input: {describe_validation(exc, flags)}"
    if isinstance(exc, AmountError | ConfigError | UnknownCommandError | UnknownEventTypeError):
        return BAD_INPUT, f"invalid input: {exc}"
    if isinstance(exc, StoreUnavailableError):
        return UNREACHABLE, f"store unavailable: {exc}"
    if isinstance(exc, click.ClickException):
        return exc.exit_code, exc.format_message()
    if isinstance(exc, OSError | sqlite3.DatabaseError | psycopg.Error):
        return UNREACHABLE, f"store or NATS unavailable: {_first_line(exc)}"
    # A failure nobody foresaw is a bug, not a verification finding (exit 1).
    return INTERNAL, f"internal error: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
