"""The import file: checked whole before anything is written, recorded in one transaction.

A line that repeats a key, or is longer than the cap, is refused with its number and
nothing written; standard input is read like a file; a reversal may name a fact the same
file recorded a few lines before (it is stored first); a command id given twice in one
file, around such a reversal, is recorded once; the summary says what was recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from homeledger.cli.import_file import MAX_LINE
from homeledger.cli.main import cli
from tests.helpers import MakeApp, init_line, one_line


def run(store: str, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--store", store, *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def events(store: str) -> int:
    code, out, err = run(store, "--format", "json", "events", "stats")
    assert code in (0, 4), err
    return int(json.loads(out)["events"]) if code == 0 else 0


def lines(*fields: dict[str, object]) -> bytes:
    return b"".join(json.dumps(f).encode() + b"\n" for f in fields)


OPENING = (
    init_line(),
    {"command": "units.acquire", "country": "SE", "units": 1000, "on": "2021-07-01"},
    {"command": "pledge", "year": 2021, "on": "2021-07-01"},
)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"command": "init", "command": "pledge", "year": 2021}\n', "appears twice"),
        (b'{"command": "' + b"x" * MAX_LINE + b'"}\n', "longer than"),
        (b"\xff\xfe\n", "not valid UTF-8"),
    ],
    ids=["repeated-key", "too-long", "not-utf8"],
)
def test_a_bad_line_is_named_and_nothing_is_written(
    sqlite_url: str, tmp_path: Path, raw: bytes, says: str
) -> None:
    path = tmp_path / "commands.jsonl"
    path.write_bytes(lines(*OPENING) + raw)
    code, out, err = run(sqlite_url, "import", str(path))
    assert code == 2, err
    line = one_line(err)
    assert "line 4" in line and says in line, line
    assert out == "" and events(sqlite_url) == 0


def test_a_reversal_names_a_fact_of_the_same_file_and_ids_repeat_once(sqlite_url: str) -> None:
    receipt = {"command": "receive", "year": 2021, "amount": "5000.00", "on": "2021-12-15",
               "command_id": "r-1"}  # fmt: skip
    file = lines(*OPENING, receipt,
                 {"command": "reverse", "id": "4", "reason": "typed in the wrong year",
                  "on": "2021-12-16"},
                 receipt)  # fmt: skip
    code, out, err = run(sqlite_url, "import", "-", stdin=file)
    assert code == 0, err
    assert out.strip() == (
        "imported 6 commands: 5 events recorded at positions 1..5; "
        "1 recorded before, answered as then"
    )
    code, listed, err = run(sqlite_url, "--format", "jsonl", "events", "list")
    assert code == 0, err
    reversal = json.loads(listed.splitlines()[4])
    assert reversal["type"] == "FactReversed" and reversal["data"]["reversed_position"] == 4


def test_a_dry_run_says_what_would_be_recorded_and_writes_nothing(sqlite_url: str) -> None:
    code, out, err = run(sqlite_url, "import", "--dry-run", "-", stdin=lines(*OPENING))
    assert code == 0, err
    assert out.strip() == (
        "dry run: 3 commands would record 3 events at positions 1..3; nothing was recorded"
    )
    assert events(sqlite_url) == 0


def test_a_file_changed_between_the_check_and_the_recording_records_nothing(
    make_app: MakeApp, sqlite_url: str, tmp_path: Path
) -> None:
    """The second pass parses lines faster because the first accepted them: the digest
    of the lines proves that both passes read the same bytes."""
    from homeledger.cli.errors import InputError
    from homeledger.cli.import_file import checked

    path = tmp_path / "commands.jsonl"
    path.write_bytes(lines(*OPENING))
    app = make_app(sqlite_url)
    with checked(str(path)) as commands:
        # A repeated key the first pass would have refused (the second keeps the last).
        path.write_bytes(lines(*OPENING[:2]) + b'{"command": "pledge", "year": 2021, '
                         b'"year": 2022, "on": "2021-07-01"}\n')  # fmt: skip
        with pytest.raises(InputError, match="changed while it was imported"):
            app.record_all(commands.commands())
    assert app.store.max_position() == 0


@pytest.mark.parametrize("line", [
    {"command": "units.acquire", "country": "SE", "units": 1000.0, "on": "2021-07-01"},
    {"command": "pledge", "year": 2021, "on": "2021-07-01", "command_id": "\u00e9t\u00e9"},
    {"command": "pledge", "year": 2021, "extra": [1]},
    {"command": "pledge", "year": 2**65},
])  # fmt: skip
def test_the_second_pass_reads_a_line_as_the_first(line: dict[str, object]) -> None:
    from homeledger.cli.errors import InputError
    from homeledger.cli.import_file import parse_checked_line, parse_line

    raw = json.dumps(line).encode()
    try:
        first: object = parse_line(1, raw)
    except InputError as exc:
        first = str(exc)
    try:
        second: object = parse_checked_line(1, raw)
    except InputError as exc:
        second = str(exc)
    assert second == first


@pytest.mark.parametrize(("raw", "says"), [
    (b'{"command":"pledge","year":2021,"year":2022}\n', "appears twice"),
    (b'{"command":"allocate","initiative":"a","year":2021,"amount":5}\n', "decimal string"),
    (b'{"command":"pledge","year":NaN}\n', "not valid JSON"),
    (b'["pledge"]\n', "must be a JSON object"),
])  # fmt: skip
def test_compact_lines_are_checked_as_any_other(raw: bytes, says: str) -> None:
    """Lines written as orjson writes JSON take a faster parser, and the same checks."""
    from homeledger.cli.errors import InputError
    from homeledger.cli.import_file import parse_line

    with pytest.raises(InputError, match=says):
        parse_line(4, raw)


def test_the_collector_is_as_it_was_after_an_import(sqlite_url: str, tmp_path: Path) -> None:
    """An import makes the cyclic collector rare while it runs, and only then."""
    import gc

    path = tmp_path / "commands.jsonl"
    path.write_bytes(lines(*OPENING))
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    code, _, err = run(sqlite_url, "import", str(path))
    assert code == 0, err
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen
