"""Text that reaches a fact: valid UTF-8, normalised, and never able to poison a read.

A non-UTF-8 byte in an argument or an environment variable arrives in Python as a
lone surrogate ('J\\udcf6rg'); JSON can spell one too ("\\udcf6"). Such text is refused
(exit 2, nothing written), and so is an invisible or control character; names are
recorded in NFC with plain spaces, so that two names that look the same are the same
("solar" and "solar<zero-width space>", "solar panels" and "solar<no-break space>panels").

A store that already holds such a fact (recorded before this was refused; forged here,
re-chained so that `verify` sees a consistent history) stays readable: every read
shows the text escaped (J\\udcf6rg), and the published envelope stays the recorded one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.nats_server import NatsServer
from homeledger.cli.main import cli
from tests.forger import RawEvents
from tests.helpers import pro_rata_commands as reference_commands
from tests.helpers import record

MILESTONE = 14  # RecordMilestone "solar panels installed" of gw-bissau-village
ACTOR = "J\udcf6rg"
NAME = "solar \udcf6 panels"


def run(url: str, *args: str, env: dict[str, str] | None = None,
        stdin: str | None = None) -> Result:  # fmt: skip
    return CliRunner().invoke(cli, ["--store", url, *args], env=env, input=stdin)


def count(url: str) -> int:
    return len(json.loads(run(url, "--format", "json", "events", "list").stdout))


@pytest.fixture
def ledger(store_url: str, make_app: Callable[..., LedgerApplication]) -> str:
    record(make_app(store_url), reference_commands())
    return store_url


MILESTONE_ARGS = ["milestone", "--initiative", "gw-bissau-village", "--on", "2022-01-01"]


@pytest.mark.parametrize(
    ("args", "env", "where"),
    [
        (["--actor", ACTOR, *MILESTONE_ARGS, "--name", "m2"], {}, "--actor"),
        ([f"--actor={ACTOR}", *MILESTONE_ARGS, "--name", "m2"], {}, "--actor"),
        ([*MILESTONE_ARGS, "--name", "m2"], {"HOMELEDGER_ACTOR": ACTOR}, "HOMELEDGER_ACTOR"),
        ([*MILESTONE_ARGS, "--name", NAME], {}, "--name"),
        ([*MILESTONE_ARGS, "--name", "m2", "--evidence", "r\udcff"], {}, "--evidence"),
        (["audit", "gw\udcf6"], {}, "argument 4"),
    ],
    ids=["actor-flag", "actor-flag-equals", "actor-env", "name", "evidence", "positional"],
)
def test_text_that_is_not_utf8_is_refused_and_nothing_is_written(
    ledger: str, args: list[str], env: dict[str, str], where: str
) -> None:
    before = count(ledger)
    result = run(ledger, *args, env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and where in result.stderr
    assert "not valid UTF-8" in result.stderr and "\\udcf6" not in result.stderr
    assert count(ledger) == before


def test_an_import_line_spelling_a_lone_surrogate_is_refused(ledger: str, tmp_path: Path) -> None:
    before = count(ledger)
    path = tmp_path / "commands.jsonl"
    path.write_text('{"command": "milestone", "initiative": "gw-bissau-village", '
                    '"name": "m\\udcf6", "on": "2022-01-01"}\n')  # fmt: skip
    result = run(ledger, "import", str(path))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("homeledger: line 1: name:")
    assert count(ledger) == before


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("solar panels installed\u200b", 2),  # a zero-width space: refused
        ("\u2060solar panels installed", 2),  # a word joiner
        ("solar panels\u00a0installed", 3),  # a no-break space: the same name, reached once
        ("solar  panels installed ", 0),  # two spaces are visibly two: another name
        ("solar panels installe\u0301", 0),  # e + combining accent: another name (é)...
        ("solar panels install\u00e9", 3),  # ...the same as the precomposed é
    ],
    ids=["zero-width-space", "word-joiner", "no-break-space", "double-space",
         "decomposed", "precomposed-after-decomposed"],
)
def test_a_milestone_cannot_be_reached_twice_under_a_look_alike_name(
    ledger: str, name: str, code: int
) -> None:
    if name.endswith("\u00e9"):  # reached first under its decomposed spelling
        assert run(ledger, *MILESTONE_ARGS, "--name", "solar panels installe\u0301").exit_code == 0
    result = run(ledger, *MILESTONE_ARGS, "--name", name)
    assert result.exit_code == code, result.output
    if code == 3:
        assert "milestone-once" in result.stderr


def test_names_are_recorded_normalised(ledger: str) -> None:
    result = run(ledger, "--format", "json", *MILESTONE_ARGS, "--name",
                 " Caf\u0065\u0301\u2003opened ", "--evidence", "r\u00a01")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)[0]["data"]
    assert data["milestone"] == "Caf\u00e9 opened" and data["evidence"] == "r 1"
    actor = run(ledger, "--actor", "Zoe\u0308 ", "--format", "json", *MILESTONE_ARGS,
                "--name", "m3")  # fmt: skip
    assert json.loads(actor.stdout)[0]["actor"] == "Zo\u00eb"
    hidden = run(ledger, "--actor", "ops\u200b", *MILESTONE_ARGS, "--name", "m4")
    assert hidden.exit_code == 2 and "U+200B" in hidden.stderr


# A store that already holds such text.


@pytest.fixture
def poisoned(ledger: str) -> Iterator[str]:
    """The milestone fact recorded with a lone surrogate in its actor and its name, as
    the version before this one accepted; the history re-chained after it."""
    raw = RawEvents(ledger)
    body = raw.body(MILESTONE)
    body["actor"] = ACTOR
    body["data"]["milestone"] = NAME
    raw.rechain_from(MILESTONE, body)
    raw.close()
    yield ledger


READS = [
    ["balances"], ["balances", "--by", "initiative"], ["portfolio", "--on", "2022-01-01"],
    ["trial-balance"], ["report", "--year", "2021"], ["audit", "gw-bissau-village"],
    ["events", "list"], ["events", "show", str(MILESTONE)], ["events", "stats"],
    ["audit", "gw-bissau-village", "--as-of-position", str(MILESTONE)], ["replay"],
    ["verify"],
]  # fmt: skip


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "jsonl"])
def test_a_store_holding_a_lone_surrogate_stays_readable(poisoned: str, fmt: str) -> None:
    for args in READS:
        result = run(poisoned, "--format", fmt, *args)
        assert result.exit_code == 0, (args, result.output)
        assert "Traceback" not in result.output
    audit = run(poisoned, "--format", fmt, "audit", "gw-bissau-village").stdout
    if fmt in ("json", "jsonl"):  # the escape itself is text, escaped once more by JSON
        rows = json.loads(audit) if fmt == "json" else [json.loads(x) for x in audit.splitlines()]
        audit = json.dumps(rows)
        audit = audit.replace("\\\\", "\\")
    assert "J\\udcf6rg" in audit and "solar \\udcf6 panels" in audit


def test_the_escaped_text_is_shown_but_the_recorded_fact_is_published_unchanged(
    poisoned: str,
) -> None:
    shown = json.loads(run(poisoned, "--format", "json", "events", "show",
                           str(MILESTONE)).stdout)  # fmt: skip
    raw = RawEvents(poisoned)
    try:
        recorded = raw.body(MILESTONE)
    finally:
        raw.close()
    # The envelope is the recorded one (the hash still covers it): JSON escapes it.
    assert shown["actor"] == ACTOR and shown["data"]["milestone"] == NAME
    assert {k: v for k, v in shown.items() if k not in ("position", "scope")} == recorded


@pytest.mark.nats
def test_a_consumer_projects_a_store_holding_a_lone_surrogate(
    poisoned: str, server: NatsServer, tmp_path: Path
) -> None:
    """Relayed as recorded (the hash holds), projected from the stream, read back."""
    env = {"HOMELEDGER_NATS_URL": server.url}
    assert run(poisoned, "relay", "--once", env=env).exit_code == 0
    consumer = f"sqlite:///{tmp_path / 'consumer.db'}"
    for _ in range(2):  # a second run resumes past it
        result = run(consumer, "project", "--from-nats", "--durable", "c", "--once", env=env)
        assert result.exit_code == 0, result.output
    audit = run(consumer, "--format", "csv", "audit", "gw-bissau-village", env=env)
    assert audit.exit_code == 0 and "J\\udcf6rg" in audit.stdout
    assert run(poisoned, "verify", "--against-nats", env=env).exit_code == 0
