"""Hostile input: generated CLI arguments and import files never corrupt the store.

Every refused case exits 2 or 3 with one line on stderr and no traceback, and the store
is unchanged (same event count and head hash). Text full of SQL and shell
metacharacters is valid text: it is recorded as typed (normalised to NFC, with plain
spaces) and the tables stay intact. Every example runs on a copy of its own of one small
ledger, so that no example sees what another recorded.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import open_store
from homeledger.cli.main import cli
from homeledger.domain.values import clean_text
from tests.helpers import init_args, sqlite_backup

HOSTILE_TEXT = [
    "'; DROP TABLE stored_events; --", '" OR 1=1 --', "$(rm -rf /)", "`id`", "a;b|c&d>e<f",
    "\\x00", "%s%s%n", "{{7*7}}", "../../etc/passwd", "NULL", "\u0295\u2022\u1d25\u2022\u0294",
    "🏠" * 20, "é" * 400,
]  # fmt: skip
WEIRD_NUMBERS = [
    "NaN", "nan", "Infinity", "-Infinity", "inf", "1e3", "1E-2", "0x10", "1_000", "١٢٣",
    "12,50", "+5", "-0", "0", "0.00", "00.001", "9" * 40, "99999999999999999999.99",
    " 12.00", "12.00 ", "", ".5", "5.", "--5", "1.2.3", "1e999999",
]  # fmt: skip
WEIRD_DATES = ["0001-01-01", "9999-12-31", "2021-13-01", "2021-02-30", "2021-2-3", "20210101",
               "2021-01-01T00:00", "yesterday", "", "2021-01-01\n"]  # fmt: skip

hostile_text = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=80)
hostile_number = st.sampled_from(WEIRD_NUMBERS) | st.text(max_size=30)
hostile_date = st.sampled_from(WEIRD_DATES) | st.text(max_size=20)
hostile_int = st.sampled_from(["-1", "0", "1.5", "1e3", "9" * 30, "abc", ""]) | st.text(
    max_size=12
)


STEPS = [
    init_args(start="2021-01-01"),
    ("units", "acquire", "--country", "SE", "--units", "1000", "--on", "2021-01-01"),
    ("pledge", "--year", "2021"),
    ("initiative", "register", "open-one", "--name", "Open", "--country", "GW",
     "--programme", "care"),
    ("initiative", "register", "closed-one", "--name", "Closed", "--country", "NL",
     "--programme", "care"),
    ("initiative", "close", "closed-one", "--on", "2021-06-01"),
    ("allocate", "--initiative", "open-one", "--year", "2021", "--amount", "50000.00",
     "--allocation-id", "a-1"),
]  # fmt: skip


class Stores:
    """A small ledger (partnership, homes, a pledge, one open and one closed initiative,
    an allocation) recorded once; each example gets a copy of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.template = f"sqlite:///{folder / 'template.db'}"
        for step in STEPS:
            result = CliRunner().invoke(cli, ["--store", self.template, *step])
            assert result.exit_code == 0, result.stderr

    @contextmanager
    def fresh(self) -> Iterator[str]:
        """A copy of the small ledger, removed afterwards."""
        path = self.folder / f"{uuid.uuid4().hex}.db"
        try:
            yield sqlite_backup(self.template, path)
        finally:
            for leftover in self.folder.glob(f"{path.name}*"):
                leftover.unlink()


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    return Stores(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def store(stores: Stores) -> Iterator[str]:
    """A copy of the small ledger, for one test."""
    with stores.fresh() as url:
        yield url


def head(url: str) -> tuple[int, str | None]:
    store = open_store(Settings(store=url), create=False)
    try:
        last = None
        count = 0
        for envelope in store.envelopes():
            count, last = count + 1, envelope.hash
        return count, last
    finally:
        store.close()


def check(url: str, args: list[str], *, stdin: bytes | None = None) -> int:
    """Run one hostile command; refused ones must leave one clean line and no trace."""
    before = head(url)
    result = CliRunner().invoke(cli, ["--store", url, *args], input=stdin)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert result.exit_code in (0, 2, 3), (args, result.exit_code, output)
    if result.exit_code:
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("homeledger: ")
        assert result.stdout == ""
        assert head(url) == before, f"store changed by a refused command: {args}"
    return result.exit_code


SETTINGS = settings(max_examples=100, deadline=None)


@SETTINGS
@given(amount=hostile_number, command=st.sampled_from(["allocate", "receive", "disburse"]))
def test_hostile_amounts(stores: Stores, amount: str, command: str) -> None:
    with stores.fresh() as store:
        args = {
            "allocate": ["allocate", "--initiative", "open-one", "--year", "2021"],
            "receive": ["receive", "--year", "2021", "--on", "2021-05-01"],
            "disburse": ["disburse", "--initiative", "open-one", "--on", "2021-05-01"],
        }[command]
        code = check(store, [*args, "--amount", amount])
        if amount.strip() in ("NaN", "Infinity", "1e3", "0", "-0", "") or "e" in amount.lower():
            assert code == 2


@SETTINGS
@given(year=hostile_int, units=hostile_int, on=hostile_date)
def test_hostile_counts_and_dates(stores: Stores, year: str, units: str, on: str) -> None:
    with stores.fresh() as store:
        check(store, ["pledge", "--year", year])
        check(store, ["units", "dispose", "--country", "SE", "--units", units, "--on", on])


@SETTINGS
@given(text=hostile_text, country=st.text(max_size=4), slug=st.text(max_size=70))
def test_hostile_text_is_refused_or_recorded_verbatim(
    stores: Stores, text: str, country: str, slug: str
) -> None:
    with stores.fresh() as store:
        check(store, ["initiative", "register", slug, "--name", text, "--country", country,
                      "--programme", text])  # fmt: skip
        code = check(store, ["milestone", "--initiative", "open-one", "--name", text, "--on",
                             "2021-03-01", "--evidence", text, "--format", "json"])  # fmt: skip
        if code == 0:
            recorded = json.loads(CliRunner().invoke(
                cli, ["--store", store, "--format", "json", "events", "list", "--type",
                      "MilestoneReached"]).stdout)[-1]  # fmt: skip
            assert recorded["data"]["milestone"] == clean_text(text)  # NFC, plain spaces
            assert recorded["data"]["evidence"] == clean_text(text)
        path = store.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {"stored_events", "homeledger_commands"} <= tables


def _line(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields).encode() + b"\n"


IMPORT_LINES = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda b: b"\xff\xfe" + b, st.binary(max_size=20)),
    st.sampled_from([b"NaN\n", b"[1,2]\n", b"null\n", b'"allocate"\n', b"{\n",
                     b'{"command": "allocate", "amount": NaN}\n',
                     b'{"command": "allocate", "amount": Infinity}\n',
                     b'{"command": "allocate", "initiative": "open-one", "year": 2021, '
                     b'"amount": 1e400}\n']),
    st.dictionaries(st.text(max_size=12), st.none() | st.integers() | st.text(max_size=12),
                    max_size=5).map(_line),
    st.builds(
        lambda cmd, extra: _line({"command": cmd, **extra}),
        st.sampled_from(["allocate", "units.acquire", "initiative.register", "release",
                         "drop", "allocate;rm", ""]),
        st.dictionaries(
            st.sampled_from(["initiative", "year", "amount", "id", "units", "on", "country",
                             "name", "programme", "surprise", "command_id"]),
            st.none() | st.booleans() | st.integers(-10**30, 10**30) | hostile_text
            | st.floats(allow_nan=True), max_size=6),
    ),
)  # fmt: skip


@SETTINGS
@given(lines=st.lists(IMPORT_LINES, min_size=1, max_size=4), valid_first=st.booleans())
def test_hostile_import_files(stores: Stores, tmp_path_factory: pytest.TempPathFactory,
                              lines: list[bytes], valid_first: bool) -> None:  # fmt: skip
    with stores.fresh() as store:
        body = b"".join(lines)
        if valid_first:  # a good line before the bad ones must not be recorded either
            body = _line({"command": "milestone", "initiative": "open-one",
                          "name": "never recorded", "on": "2021-04-01"}) + body  # fmt: skip
        path = tmp_path_factory.mktemp("import") / "commands.jsonl"
        path.write_bytes(body)
        check(store, ["import", str(path)])


def test_ten_megabyte_line_is_refused(store: str, tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    path.write_bytes(_line({"command": "milestone", "initiative": "open-one",
                            "name": "x" * 10_000_000, "on": "2021-04-01"}))  # fmt: skip
    assert check(store, ["import", str(path)]) == 2


def test_duplicate_command_id_with_different_content(store: str, tmp_path: Path) -> None:
    base = ["allocate", "--initiative", "open-one", "--year", "2021", "--command-id", "dup-1"]
    assert check(store, [*base, "--amount", "10.00"]) == 0
    assert check(store, [*base, "--amount", "10.00"]) == 0  # a repeat: same answer
    assert check(store, [*base, "--amount", "11.00"]) == 3
    path = tmp_path / "dups.jsonl"
    path.write_bytes(
        _line({"command": "allocate", "initiative": "open-one", "year": 2021,
               "amount": "1.00", "command_id": "dup-2"})
        + _line({"command": "allocate", "initiative": "open-one", "year": 2021,
                 "amount": "2.00", "command_id": "dup-2"})
    )  # fmt: skip
    assert check(store, ["import", str(path)]) == 3


def test_allocating_to_a_closed_initiative_is_refused(store: str) -> None:
    assert check(store, ["allocate", "--initiative", "closed-one", "--year", "2021",
                         "--amount", "1.00"]) == 3  # fmt: skip
