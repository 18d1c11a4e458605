"""Real books through the CLI: effective dates (`--on`), reversals, dry runs and the
bitemporal cut, with the exit-code and one-line contract for every refusal.

Each refusal and each dry run is checked to leave the store as it was: the number of
events, the head hash and the command receipts.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator

from homeledger.cli.main import cli

ACTOR = "books@example.org"
INIT = ("init", "--donor", "Heimstaden", "--beneficiary", "SOS Children's Villages",
        "--rate", "100.00", "--currency", "EUR", "--basis", "year-end",
        "--start", "2021-07-01")  # fmt: skip
VILLAGE = "gw-bissau-village"
# 1,000 homes: 100,000.00 pledged for 2021; 40,000.00 allocated to the village (a-1),
# 25,000.00 received, 10,000.00 disbursed, the solar panels reached.
SEED = (
    INIT,
    ("units", "acquire", "--country", "SE", "--units", "1000", "--on", "2021-07-01"),
    ("initiative", "register", VILLAGE, "--name", "Bissau", "--country", "GW",
     "--programme", "care", "--on", "2021-07-01"),
    ("pledge", "--year", "2021", "--on", "2021-07-01"),
    ("allocate", "--initiative", VILLAGE, "--year", "2021", "--amount", "40000.00",
     "--allocation-id", "a-1", "--on", "2021-09-01"),
    ("receive", "--year", "2021", "--amount", "25000.00", "--on", "2021-12-15"),
    ("disburse", "--initiative", VILLAGE, "--amount", "10000.00", "--on", "2022-01-20"),
    ("milestone", "--initiative", VILLAGE, "--name", "solar", "--on", "2022-03-15"),
)  # fmt: skip
RECEIPT, DISBURSEMENT, MILESTONE, ALLOCATION, ACQUISITION = 6, 7, 8, 5, 2


@dataclass
class Books:
    runner: CliRunner
    url: str
    path: Path

    def run(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(cli, ["--store", self.url, *args],
                                  env={"HOMELEDGER_ACTOR": ACTOR}, input=input)  # fmt: skip

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.exit_code == 0, (args, result.output)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--format", "json", *args).stdout)

    def state(self) -> tuple[int, str | None, int]:
        """Events, head hash and command receipts: what nothing may change."""
        stats = self.json("events", "stats")
        with closing(sqlite3.connect(self.path)) as db:
            receipts = db.execute("SELECT count(*) FROM homeledger_commands").fetchone()[0]
        return stats["events"], stats["head_hash"], receipts


@pytest.fixture
def books(tmp_path: Path) -> Books:
    path = tmp_path / "books.db"
    return Books(CliRunner(), f"sqlite:///{path}", path)


@pytest.fixture
def seeded(books: Books) -> Books:
    for args in SEED:
        books.ok(*args)
    return books


def one_line(result: Result, code: int) -> str:
    """The refusal contract: its exit code, nothing on stdout, one line on stderr."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("homeledger: "), result.stderr
    return lines[0]


# Effective dates.


def test_on_is_the_effective_date_and_today_is_the_default(seeded: Books) -> None:
    events = {e["position"]: e for e in seeded.json("events", "list")}
    assert events[3]["type"] == "InitiativeRegistered"
    assert [events[p]["effective_date"] for p in (3, 4, 5)] == [
        "2021-07-01", "2021-07-01", "2021-09-01"]  # fmt: skip
    assert events[RECEIPT]["effective_date"] == "2021-12-15"  # its own date
    (release,) = seeded.json("release", "a-1", "--amount", "1.00", "--reason", "x",
                             "--on", "2022-02-01")  # fmt: skip
    assert release["effective_date"] == "2022-02-01"
    seeded.ok("units", "acquire", "--country", "DK", "--units", "5", "--on", "2021-08-01")
    (adjusted,) = seeded.json("pledge", "--year", "2021")  # no --on: the day of recording
    assert adjusted["effective_date"] == adjusted["recorded_at"][:10]
    assert adjusted["data"]["delta"] == "500.00"


@pytest.mark.parametrize(("args", "rule"), [
    pytest.param(("pledge", "--year", "2022", "--on", "2021-06-30"), "[not-before-start]: "
                 "pledge dated 2021-06-30 is before the partnership's start on 2021-07-01",
                 id="pledge-before-start"),
    pytest.param(("allocate", "--initiative", VILLAGE, "--year", "2021", "--amount", "1.00",
                  "--on", "2999-01-01"), "[not-after-recording]: allocation dated 2999-01-01 "
                 "is after the day it is recorded", id="allocation-in-the-future"),
    pytest.param(("units", "acquire", "--country", "SE", "--units", "1", "--on", "2999-01-01"),
                 "[not-after-recording]: acquisition dated 2999-01-01", id="acquisition-ahead"),
    pytest.param(("initiative", "register", "nl-siblings", "--name", "S", "--country", "NL",
                  "--programme", "care", "--on", "2020-01-01"),
                 "[not-before-start]: registration dated 2020-01-01", id="registration-early"),
    pytest.param(("release", "a-1", "--amount", "1.00", "--reason", "x", "--on", "2021-13-01"),
                 "--on", id="not-a-date"),
    pytest.param(("reverse", str(DISBURSEMENT), "--reason", "x", "--on", "2022-01-19"),
                 "[not-before-reversed-fact]: reversal dated 2022-01-19 is before the "
                 "FundsDisbursed it reverses, dated 2022-01-20", id="reversal-before-fact"),
    pytest.param(("reverse", "seven", "--reason", "x"), "is not a position", id="bad-ref"),
    pytest.param(("reverse", "0", "--reason", "x"), "is not a position", id="position-zero"),
    pytest.param(("reverse", str(RECEIPT)), "--reason", id="no-reason"),
])  # fmt: skip
def test_a_bad_date_or_reference_is_bad_input(seeded: Books, args: tuple[str, ...],
                                               rule: str) -> None:  # fmt: skip
    before = seeded.state()
    line = one_line(seeded.run(*args), 2)
    assert rule in line, line
    assert seeded.state() == before


# Reversals.


@pytest.mark.parametrize(("args", "says"), [
    pytest.param(("reverse", str(ALLOCATION), "--reason", "x"), "[reversible]: FundsAllocated "
                 "at position 5 cannot be reversed", id="not-reversible"),
    pytest.param(("reverse", "99", "--reason", "x"), "[reversal-target]: no fact is recorded "
                 "at position 99", id="no-such-position"),
    pytest.param(("reverse", "6f0d6f36-52d8-4cf4-9d0e-5f2ad1c1e0a1", "--reason", "x"),
                 "[reversal-target]: no fact is recorded with event id", id="no-such-id"),
    pytest.param(("receive", "--year", "2021", "--amount", "75000.01", "--on", "2022-03-31"),
                 "[receipt-within-pledge]", id="receipt-still-refused"),
])  # fmt: skip
def test_a_refused_reversal_changes_nothing(seeded: Books, args: tuple[str, ...],
                                            says: str) -> None:  # fmt: skip
    before = seeded.state()
    line = one_line(seeded.run(*args), 3)
    assert says in line, line
    assert seeded.state() == before


def test_reverse_by_position_or_event_id_once(seeded: Books) -> None:
    receipt = seeded.json("events", "show", str(RECEIPT))
    (reversal,) = seeded.json("reverse", receipt["event_id"].upper(), "--reason", "mistyped",
                              "--on", "2022-04-04")  # fmt: skip
    assert reversal["type"] == "FactReversed" and reversal["scope"] == "2021"
    assert reversal["effective_date"] == "2022-04-04"
    assert reversal["data"] == {
        "reverses": receipt["event_id"], "reversed_type": "DonationReceived",
        "reversed_position": RECEIPT, "reason": "mistyped", "original": receipt["data"],
    }  # fmt: skip
    Draft202012Validator(seeded.json("schema", "FactReversed")).validate(reversal)
    before = seeded.state()
    for ref in (str(RECEIPT), receipt["event_id"]):
        line = one_line(seeded.run("reverse", ref, "--reason", "again"), 3)
        assert "[reverse-once]: DonationReceived at position 6 was already reversed" in line
    line = one_line(seeded.run("reverse", str(reversal["position"]), "--reason", "undo"), 3)
    assert "[reversible]: FactReversed" in line
    assert seeded.state() == before
    (year,) = seeded.json("balances")
    assert (year["received"], year["outstanding"]) == ("0.00", "100000.00")


def test_a_reversed_milestone_is_reached_again_and_the_trail_links_the_reversal(
    seeded: Books,
) -> None:  # fmt: skip
    again = ("milestone", "--initiative", VILLAGE, "--name", "solar", "--on", "2022-04-02")
    assert "[milestone-once]" in one_line(seeded.run(*again), 3)
    seeded.ok("reverse", str(MILESTONE), "--reason", "not connected yet", "--on", "2022-04-01")
    seeded.ok("reverse", str(DISBURSEMENT), "--reason", "wrong initiative", "--on", "2022-04-01")
    seeded.ok(*again)
    trail = seeded.json("audit", VILLAGE)
    assert [(r["type"], r["change"], r["balance"], r["reversed_position"]) for r in trail] == [
        ("InitiativeRegistered", None, "0.00", None),
        ("FundsAllocated", "40000.00", "40000.00", None),
        ("FundsDisbursed", "-10000.00", "30000.00", None),
        ("MilestoneReached", None, "30000.00", None),
        ("FactReversed", None, "30000.00", MILESTONE),
        ("FactReversed", "10000.00", "40000.00", DISBURSEMENT),
        ("MilestoneReached", None, "40000.00", None),
    ]  # fmt: skip
    assert trail[4]["detail"] == "reverses MilestoneReached at position 8: not connected yet"
    listed = seeded.json("events", "list", "--initiative", VILLAGE, "--type", "FactReversed")
    assert [e["data"]["reversed_position"] for e in listed] == [MILESTONE, DISBURSEMENT]
    trial = seeded.json("trial-balance")
    assert trial["balanced"] and {a["account"]: a["balance"] for a in trial["accounts"]}[
        "disbursed"] == "0.00"  # fmt: skip


def test_import_takes_reversals_and_never_a_target(seeded: Books, tmp_path: Path) -> None:
    lines = tmp_path / "commands.jsonl"
    lines.write_text(json.dumps({"command": "reverse", "id": str(RECEIPT), "reason": "dup",
                                 "on": "2022-04-04", "target": {"event_id": "x"}}) + "\n")
    before = seeded.state()
    line = one_line(seeded.run("import", str(lines)), 2)
    assert "line 1" in line and "'target' cannot be given" in line
    assert seeded.state() == before
    lines.write_text(
        json.dumps({"command": "reverse", "id": str(RECEIPT), "reason": "dup"}) + "\n"
        + json.dumps({"command": "receive", "year": 2021, "amount": "2500.00",
                      "on": "2021-12-15"}) + "\n"
    )  # fmt: skip
    seeded.ok("import", str(lines))
    (year,) = seeded.json("balances")
    assert year["received"] == "2500.00"


# Dry runs: decided like the real command, written never.

DRY_RUNS = [
    pytest.param(("units", "acquire", "--country", "DK", "--units", "5", "--on", "2021-08-01"),
                 0, id="units-acquire"),
    pytest.param(("units", "dispose", "--country", "SE", "--units", "5", "--on", "2021-08-01"),
                 0, id="units-dispose"),
    pytest.param(("units", "dispose", "--country", "SE", "--units", "5000", "--on",
                  "2021-08-01"), 3, id="units-dispose-too-many"),
    pytest.param(("pledge", "--year", "2022", "--on", "2022-01-01"), 0, id="pledge"),
    pytest.param(("pledge", "--year", "2021"), 3, id="pledge-unchanged"),
    pytest.param(("pledge", "--year", "2022", "--on", "2020-01-01"), 2, id="pledge-early"),
    pytest.param(("receive", "--year", "2021", "--amount", "1.00", "--on", "2022-01-01"), 0,
                 id="receive"),
    pytest.param(("receive", "--year", "2021", "--amount", "1.001", "--on", "2022-01-01"), 2,
                 id="receive-bad-amount"),
    pytest.param(("initiative", "register", "nl-siblings", "--name", "S", "--country", "NL",
                  "--programme", "care"), 0, id="initiative-register"),
    pytest.param(("initiative", "register", VILLAGE, "--name", "S", "--country", "NL",
                  "--programme", "care"), 3, id="initiative-register-twice"),
    pytest.param(("initiative", "close", VILLAGE, "--on", "2022-06-30"), 0,
                 id="initiative-close"),
    pytest.param(("allocate", "--initiative", VILLAGE, "--year", "2021", "--amount", "1.00"),
                 0, id="allocate"),
    pytest.param(("allocate", "--initiative", VILLAGE, "--year", "2021", "--amount",
                  "60000.01"), 3, id="allocate-too-much"),
    pytest.param(("release", "a-1", "--amount", "1.00", "--reason", "x"), 0, id="release"),
    pytest.param(("disburse", "--initiative", VILLAGE, "--amount", "1.00", "--on",
                  "2022-01-21"), 0, id="disburse"),
    pytest.param(("milestone", "--initiative", VILLAGE, "--name", "shelter", "--on",
                  "2022-06-01"), 0, id="milestone"),
    pytest.param(("reverse", str(ACQUISITION), "--reason", "x"), 0, id="reverse"),
    pytest.param(("reverse", str(ALLOCATION), "--reason", "x"), 3, id="reverse-refused"),
    pytest.param(INIT, 3, id="init-twice"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "code"), DRY_RUNS)
def test_a_dry_run_exits_as_the_command_and_writes_nothing(seeded: Books, args: tuple[str, ...],
                                                            code: int) -> None:  # fmt: skip
    before = seeded.state()
    dry = seeded.run("--format", "json", *args, "--dry-run")
    assert dry.exit_code == code, dry.output
    assert seeded.state() == before
    real = seeded.run("--format", "json", *args)
    assert real.exit_code == code, real.output
    if code:
        assert dry.stderr == real.stderr
        return
    assert dry.stderr == "dry run: nothing was recorded\n"
    (would,), (did,) = json.loads(dry.stdout), json.loads(real.stdout)
    assert (would["type"], would["position"], would["effective_date"]) == (
        did["type"], did["position"], did["effective_date"])  # fmt: skip
    if args[0] != "allocate":  # a new allocation id each time
        assert would["data"] == did["data"]
    assert seeded.state()[0] == before[0] + 1


def test_a_dry_run_of_init_on_a_fresh_store_records_nothing(books: Books) -> None:
    result = books.run(*INIT, "--dry-run")
    assert result.exit_code == 0 and "PartnershipEstablished" in result.stdout
    assert books.state() == (0, None, 0)


# Reading by business date.


def test_events_list_by_effective_date_and_the_last_n(seeded: Books) -> None:
    seeded.ok("reverse", str(RECEIPT), "--reason", "x", "--on", "2022-04-04")
    dated = seeded.json("events", "list", "--from", "2021-09-01", "--to", "2022-01-31")
    assert [e["position"] for e in dated] == [ALLOCATION, RECEIPT, DISBURSEMENT]
    last = seeded.json("events", "list", "--last", "2")
    assert [e["position"] for e in last] == [MILESTONE, 9]
    assert [e["type"] for e in seeded.json("events", "list", "--type", "DonationReceived",
                                           "--last", "5")] == ["DonationReceived"]  # fmt: skip
    assert seeded.json("events", "list", "--last", "0") == []
    assert "--limit or --last" in one_line(seeded.run("events", "list", "--limit", "1",
                                                      "--last", "1"), 2)  # fmt: skip
    assert "--from" in one_line(seeded.run("events", "list", "--from", "2021-02-30"), 2)


def test_reads_say_where_they_stand(seeded: Books) -> None:
    cut = seeded.run("balances", "--to", "2021-12-31", "--as-of-position", "5")
    assert cut.exit_code == 0
    assert cut.stderr.startswith("as of position 5 (recorded by ")
    assert cut.stderr.rstrip().endswith("; facts effective on or before 2021-12-31")
    assert "40,000.00" in cut.stdout and "25,000.00" not in cut.stdout  # a table: separators
    rows = json.loads(seeded.run("--format", "json", "audit", VILLAGE, "--to", "2021-12-31").stdout)
    assert {(r["as_of_position"], r["to"]) for r in rows} == {(8, "2021-12-31")}
    assert [r["seq"] for r in rows] == [1, 2]
    plain = seeded.json("balances")
    assert "as_of_position" not in plain[0]
    early = seeded.run("balances", "--as-of", "2000-01-01T00:00:00Z")
    assert early.exit_code == 0 and early.stdout == ""
    assert early.stderr.startswith("as of 2000-01-01T00:00:00Z: nothing was recorded yet "
                                   "(the first fact was recorded at ")  # fmt: skip
    assert seeded.run("--format", "json", "balances", "--as-of-position", "0").stdout == "[]\n"
    assert "--to" in one_line(seeded.run("balances", "--to", "31.12.2021"), 2)
    # A read that fails at a cut says so in its one line, and nothing of the cut.
    line = one_line(seeded.run("audit", "nl-nowhere", "--as-of-position", "3"), 2)
    assert "nl-nowhere" in line and "as of position 3" in line
    missing = seeded.path.parent / "no-such-folder" / "report.csv"
    line = one_line(seeded.run("report", "--year", "2021", "--as-of-position", "3", "--out",
                               str(missing)), 2)  # fmt: skip
    assert "cannot write" in line
    report = json.loads(seeded.run("--format", "json", "report", "--year", "2021", "--to",
                                   "2021-12-15", "--as-of-position", "7").stdout)  # fmt: skip
    assert (report["as_of_position"], report["to"]) == (7, "2021-12-15")
    assert report["pledge"]["received"] == "25000.00" and report["disbursed"] == "0.00"
