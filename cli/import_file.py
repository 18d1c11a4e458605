"""The import file: JSON Lines of commands, read twice and never held in memory.

Each line is one JSON object naming its command as on the command line with dots
(`"units.acquire"`), the options as fields named like the flags in snake_case, and the
positional ids as `"id"` (docs/reference.md). Money is a decimal string. Blank lines
are skipped.

The first pass checks every line (UTF-8, JSON, no repeated keys, at most MAX_LINE
bytes, a known command with valid fields) before anything is locked or written; the
second pass hands the commands to the application, which records them in one
transaction. Standard input is copied to a private temporary file during the first
pass, so that the second does not depend on how fast the input arrives.

The second pass reads lines the first one accepted, so it parses them with orjson (a
third of the cost) wherever that gives the very same fields; a digest of every line,
taken in both passes, proves that they read the same bytes, and if the file changed
in between the import fails before its transaction commits: nothing is recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, cast

import orjson
from pydantic import ValidationError

from homeledger.cli.errors import InputError, describe_validation
from homeledger.domain.commands import Command, UnknownCommandError, parse_command

MAX_LINE = 1 << 20  # 1 MiB: far more than any command needs
# Money in files is a fixed-point string: a JSON number is ambiguous (units or cents?).
MONEY_FIELDS = ("amount", "rate")


@dataclass(frozen=True)
class CommandFile:
    """A checked import file: how many commands it holds, the digest of its lines as
    they were checked, and a way to read them again."""

    path: Path
    count: int
    digest: bytes = b""

    def commands(self) -> Iterator[tuple[int, Command]]:
        """The commands again; InputError at the end if the lines are not those checked
        (raised inside the recording, which then records nothing)."""
        digest = hashlib.sha256()
        with self.path.open("rb") as stream:
            for number, raw in _lines(stream):
                digest.update(raw)
                yield number, parse_checked_line(number, raw)
        if digest.digest() != self.digest:
            raise InputError("the file changed while it was imported; nothing was recorded")


@contextlib.contextmanager
def checked(file: str) -> Iterator[CommandFile]:
    """The import file `file` ("-": standard input) with every line checked."""
    if file != "-":
        path = Path(file)
        yield CommandFile(path, *_check(_open(path)))
        return
    with tempfile.TemporaryDirectory(prefix="homeledger-import-") as folder:
        copy = Path(folder) / "stdin.jsonl"
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            count, digest = _check(sys.stdin.buffer, out)
        yield CommandFile(copy, count, digest)


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def _check(stream: IO[bytes], copy: IO[bytes] | None = None) -> tuple[int, bytes]:
    """Check every line; the number of commands and the digest of the lines (as the
    second pass reads them). With `copy`, the lines are copied."""
    count, digest = 0, hashlib.sha256()
    with stream:
        for number, raw in _lines(stream):
            parse_line(number, raw)
            count += 1
            line = raw if raw.endswith(b"\n") else raw + b"\n"
            digest.update(raw if copy is None else line)
            if copy is not None:
                copy.write(line)
    if count == 0:
        raise InputError("no commands to import")
    return count, digest.digest()


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of the non-blank lines, none longer than MAX_LINE."""
    number = 0
    while raw := stream.readline(MAX_LINE + 1):
        number += 1
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            raise InputError(f"line {number}: longer than {MAX_LINE} bytes")
        if raw.strip():
            yield number, raw


def parse_line(number: int, raw: bytes) -> Command:
    """One line as a validated command, or InputError naming the line."""
    fields: Any = _compact_fields(raw)
    if fields is None:
        fields = _stdlib_fields(number, raw)
    if not isinstance(fields, dict):
        raise InputError(f"line {number}: a command must be a JSON object")
    for key in MONEY_FIELDS:
        if key in fields and not isinstance(fields[key], str):
            raise InputError(
                f'line {number}: {key} must be a decimal string such as "250000.00", '
                "not a JSON number"
            )
    try:
        return parse_command(fields)
    except UnknownCommandError as exc:
        raise InputError(f"line {number}: {exc}") from None
    except ValidationError as exc:
        raise InputError(f"line {number}: {describe_validation(exc, flags=False)}") from None


def _stdlib_fields(number: int, raw: bytes) -> Any:
    """A line parsed by the standard library: repeated keys refused, numbers with a
    fraction read as Decimal, NaN and Infinity refused."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"line {number}: not valid UTF-8") from None
    try:
        fields = json.loads(text, parse_float=Decimal, parse_constant=_no_constant,
                            object_pairs_hook=_unique_keys)  # fmt: skip
    except _RepeatedKeyError as exc:
        raise InputError(f"line {number}: the key {exc.key[:40]!r} appears twice") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"line {number}: not valid JSON ({str(exc)[:80]})") from None
    return fields


def parse_checked_line(number: int, raw: bytes) -> Command:
    """A line `parse_line` accepted before, parsed again: through orjson when it gives
    the fields the standard library gave (a flat object of text, integers, booleans
    and nulls; its keys were checked unique then), else through `parse_line` itself."""
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return parse_line(number, raw)
    if type(fields) is not dict or not all(map(_scalar, fields.values())):
        return parse_line(number, raw)  # a float (a Decimal then), a list...: as checked
    try:
        return parse_command(fields)
    except (UnknownCommandError, ValidationError):
        return parse_line(number, raw)  # the same error, named as the first pass named it


def _compact_fields(raw: bytes) -> dict[str, Any] | None:
    """The fields of a line written as orjson writes JSON (compact, keys in the line's
    order, UTF-8), parsed by orjson; None for any other line, which the standard
    library's parser checks (a repeated key, a float read as a Decimal, a constant).

    Writing the parsed object back must give the line's very bytes: a repeated key
    would come back once, so it cannot pass, and text, integers, booleans and null
    read back so exactly are read as the standard library reads them."""
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(fields) is not dict or not all(map(_scalar, fields.values())):
        return None
    if orjson.dumps(fields) != raw.rstrip(b"\r\n"):
        return None
    return cast(dict[str, Any], fields)


def _scalar(value: Any) -> bool:
    kind = type(value)
    return kind is str or kind is int or kind is bool or value is None


class _RepeatedKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: a repeated key is refused, not
    silently resolved to its last value."""
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key in fields:
            raise _RepeatedKeyError(key)
        fields[key] = value
    return fields


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


__all__ = ["MAX_LINE", "CommandFile", "checked", "parse_checked_line", "parse_line"]
