"""The CLI end to end, in process: recording, inspection, formats, import and exit codes.

Every case goes through `cli.main.cli` exactly as an operator types it (`--store URL`
first), with the actor given by environment (docs/reference.md). Failure cases check the
whole contract: the documented exit code, exactly one line on stderr, no traceback,
nothing on stdout, and the ledger unchanged afterwards.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaValidationError

from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import open_store
from homeledger.cli.main import cli
from tests.helpers import init_args, init_line

ACTOR = "ops@example.org"
UNREACHABLE_PG = "postgresql://user:s3cret@127.0.0.1:1/x"
# The envelope's fields, in the order the example shows them.
ENVELOPE_FIELDS = [
    "event_id", "type", "schema_version", "position", "scope", "aggregate_id",
    "aggregate_version", "effective_date", "recorded_at", "actor", "command_id",
    "correlation_id", "data", "prev_hash", "hash",
]  # fmt: skip
EVENT_TYPES = {
    "PartnershipEstablished", "UnitsAcquired", "UnitsDisposed", "DonationPledged",
    "DonationReceived", "InitiativeRegistered", "FundsAllocated", "AllocationReleased",
    "FundsDisbursed", "MilestoneReached", "InitiativeClosed", "LedgerSealed", "FactReversed",
}  # fmt: skip
MONEY_FIELDS = ("rate", "amount", "delta")
MONEY = re.compile(r"^-?[0-9]+\.[0-9]{2}$")
RECORDED_AT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$")

# The reference case: Heimstaden's homes across its countries, held all of 2021.
HOMES = {"SE": 40_000, "DE": 20_000, "DK": 15_000, "NO": 12_000, "NL": 8_000,
         "CZ": 5_000, "FI": 4_000, "PL": 3_000, "GB": 2_000, "IS": 1_000}  # fmt: skip
PROGRAMMES = ("family strengthening", "family-like alternative care", "youth employability")
# 19 countries; the first 13 have two initiatives each: 32 initiatives in all.
INITIATIVE_COUNTRIES = ("GW", "NL", "SE", "NO", "DK", "DE", "CZ", "PL", "FI", "IS", "ET",
                        "KE", "UA", "SO", "BA", "LB", "MZ", "BD", "PE")  # fmt: skip


def reference_initiatives() -> list[tuple[str, str, str, str]]:
    """(slug, name, country, programme) for 32 initiatives in 19 countries."""
    named = {"GW": ("gw-bissau-village", "gw-crisis-shelter"),
             "NL": ("nl-siblings-together", "nl-youth-employability")}  # fmt: skip
    result = []
    for index, country in enumerate(INITIATIVE_COUNTRIES):
        slugs = named.get(country) or (f"{country.lower()}-family-strengthening",
                                       f"{country.lower()}-alternative-care")  # fmt: skip
        for slug in slugs[: 2 if index < 13 else 1]:
            programme = PROGRAMMES[len(result) % len(PROGRAMMES)]
            result.append((slug, f"SOS {slug.replace('-', ' ')}", country, programme))
    return result


INITIATIVES = reference_initiatives()
ALLOCATIONS = {slug: Decimal("250000.00") + i * Decimal("1234.56")
               for i, (slug, *_rest) in enumerate(INITIATIVES)}  # fmt: skip

INIT = init_args(start="2021-01-01")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, url: str, *args: str, actor: str = ACTOR,
           input: str | bytes | None = None) -> Result:  # fmt: skip
    """Run `homeledger --store URL ARGS...` in process, the actor set by environment."""
    return runner.invoke(cli, ["--store", url, *args], env={"HOMELEDGER_ACTOR": actor},
                         input=input)  # fmt: skip


@dataclass
class CliLedger:
    """One store driven through the CLI."""

    runner: CliRunner
    url: str

    def run(self, *args: str, input: str | bytes | None = None) -> Result:
        return invoke(self.runner, self.url, *args, input=input)

    def ok(self, *args: str, input: str | bytes | None = None) -> Result:
        result = self.run(*args, input=input)
        assert result.exit_code == 0, f"{args}: exit {result.exit_code}: {result.stderr!r}"
        assert result.stderr == "", result.stderr
        return result

    def json(self, *args: str, input: str | bytes | None = None) -> Any:
        return json.loads(self.ok("--format", "json", *args, input=input).stdout)

    def state(self) -> tuple[int, str | None]:
        """The number of events and the chain head: what a failed command must not change."""
        stats = self.json("events", "stats")
        return stats["events"], stats["head_hash"]


@pytest.fixture
def cli_ledger(runner: CliRunner, sqlite_url: str) -> CliLedger:
    return CliLedger(runner, sqlite_url)


@pytest.fixture
def any_cli_ledger(runner: CliRunner, store_url: str) -> CliLedger:
    """The same ledger on SQLite and on PostgreSQL."""
    return CliLedger(runner, store_url)


@pytest.fixture
def empty_cli_ledger(cli_ledger: CliLedger) -> CliLedger:
    """A store that exists and holds no event."""
    open_store(Settings(store=cli_ledger.url)).close()
    assert cli_ledger.state() == (0, None)
    return cli_ledger


# A small ledger every refusal is measured against:
# 2021 pledged 100000.00, allocated 60000.00 (unallocated 40000.00), received 40000.00
# (outstanding 60000.00); gw-bissau-village disbursed 10000.00 of its 60000.00 (available
# 50000.00); nl-siblings-together closed.
SEED = (
    INIT,
    ("units", "acquire", "--country", "SE", "--units", "1000", "--on", "2021-01-01"),
    ("pledge", "--year", "2021"),
    ("initiative", "register", "gw-bissau-village", "--name", "Bissau village hub",
     "--country", "GW", "--programme", "family-like alternative care"),
    ("initiative", "register", "nl-siblings-together", "--name", "Siblings together",
     "--country", "NL", "--programme", "family-like alternative care"),
    ("allocate", "--initiative", "gw-bissau-village", "--year", "2021", "--amount", "60000.00",
     "--allocation-id", "alloc-gw"),
    ("receive", "--year", "2021", "--amount", "40000.00", "--on", "2021-03-01"),
    ("disburse", "--initiative", "gw-bissau-village", "--amount", "10000.00",
     "--on", "2021-04-01"),
    ("milestone", "--initiative", "gw-bissau-village", "--name", "solar-panels",
     "--on", "2021-09-01"),
    ("initiative", "close", "nl-siblings-together", "--on", "2021-10-01", "--reason", "merged"),
)  # fmt: skip


@pytest.fixture
def seeded(cli_ledger: CliLedger) -> CliLedger:
    for args in SEED:
        cli_ledger.ok(*args)
    return cli_ledger


def assert_fails(result: Result, code: int) -> str:
    """The failure contract (exit codes, one line); returns the one stderr line."""
    assert result.exit_code == code, (
        f"expected exit {code}, got {result.exit_code}; stderr: {result.stderr!r}"
    )
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream, stream
    unexpected = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not unexpected, repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {result.stderr!r}"
    assert lines[0].startswith("homeledger: "), lines[0]
    assert result.stdout == "", result.stdout
    return lines[0]


# The reference case, on SQLite and PostgreSQL.


def record_reference_case(cli_ledger: CliLedger) -> None:
    cli_ledger.ok(*INIT)
    for country, homes in HOMES.items():
        cli_ledger.ok("units", "acquire", "--country", country, "--units", str(homes),
                  "--on", "2021-01-01", "--ref", f"portfolio-{country.lower()}")  # fmt: skip
    pledged = cli_ledger.json("pledge", "--year", "2021")
    assert [e["data"]["amount"] for e in pledged] == ["11000000.00"]
    for slug, name, country, programme in INITIATIVES:
        cli_ledger.ok("initiative", "register", slug, "--name", name, "--country", country,
                  "--programme", programme)  # fmt: skip
    for slug, amount in ALLOCATIONS.items():
        cli_ledger.ok("allocate", "--initiative", slug, "--year", "2021", "--amount", str(amount),
                  "--allocation-id", f"alloc-{slug}")  # fmt: skip


def test_reference_case_pledges_and_allocates(any_cli_ledger: CliLedger) -> None:
    assert sum(HOMES.values()) == 110_000
    assert len(INITIATIVES) >= 30 and len({i[2] for i in INITIATIVES}) == 19
    record_reference_case(any_cli_ledger)

    [pledge] = any_cli_ledger.json("events", "list", "--type", "DonationPledged")
    assert pledge["scope"] == "2021"
    assert pledge["data"] == {"year": 2021, "basis": "year-end", "unit_basis": 110_000,
                              "rate": "100.00", "amount": "11000000.00",
                              "delta": "11000000.00", "currency": "EUR"}  # fmt: skip
    allocated = any_cli_ledger.json("events", "list", "--type", "FundsAllocated")
    assert len(allocated) == len(INITIATIVES)
    assert sum(Decimal(e["data"]["amount"]) for e in allocated) == sum(ALLOCATIONS.values())
    assert {e["data"]["initiative"]: Decimal(e["data"]["amount"]) for e in allocated} == (
        ALLOCATIONS
    )
    assert all(e["scope"] == e["data"]["initiative"] for e in allocated)
    registered = any_cli_ledger.json("events", "list", "--type", "InitiativeRegistered")
    assert len({e["data"]["country"] for e in registered}) == 19

    trail = any_cli_ledger.json("events", "list", "--initiative", "gw-bissau-village")
    assert [e["type"] for e in trail] == ["InitiativeRegistered", "FundsAllocated"]

    total = 1 + len(HOMES) + 1 + 2 * len(INITIATIVES)
    stats = any_cli_ledger.json("events", "stats")
    everything = any_cli_ledger.json("events", "list")
    assert stats["events"] == len(everything) == total
    assert stats["last_position"] == everything[-1]["position"]
    assert stats["head_hash"] == everything[-1]["hash"]
    assert stats["by_type"] == {"PartnershipEstablished": 1, "UnitsAcquired": len(HOMES),
                                "DonationPledged": 1, "InitiativeRegistered": len(INITIATIVES),
                                "FundsAllocated": len(INITIATIVES)}  # fmt: skip
    assert {e["actor"] for e in everything} == {ACTOR}


def test_reference_case_events_show_by_position_and_id(any_cli_ledger: CliLedger) -> None:
    record_reference_case(any_cli_ledger)
    everything = any_cli_ledger.json("events", "list")
    for envelope in (everything[0], everything[len(everything) // 2], everything[-1]):
        assert any_cli_ledger.json("events", "show", str(envelope["position"])) == envelope
        assert any_cli_ledger.json("events", "show", envelope["event_id"]) == envelope
        assert any_cli_ledger.json("events", "show", envelope["event_id"].upper()) == envelope
    table = any_cli_ledger.ok("events", "show", str(everything[-1]["position"])).stdout
    assert everything[-1]["event_id"] in table and "FundsAllocated" in table


def test_reference_case_envelopes_validate_against_their_schemas(any_cli_ledger: CliLedger) -> None:
    record_reference_case(any_cli_ledger)
    schemas = json.loads(any_cli_ledger.ok("schema").stdout)
    for envelope in any_cli_ledger.json("events", "list"):
        Draft202012Validator(schemas[envelope["type"]]).validate(envelope)


@pytest.mark.parametrize(
    ("basis", "start", "amount", "unit_basis"),
    [
        ("year-end", "2021-01-01", "11000000.00", 110_000),
        ("year-end", "2021-07-01", "11000000.00", 110_000),
        ("pro-rata", "2021-01-01", "11000000.00", 110_000 * 365),
        # Half a year: rate x unit-days / days in year, rounded half-even once.
        ("pro-rata", "2021-07-01",
         str((Decimal(100) * 110_000 * 184 / 365).quantize(Decimal("0.01"), ROUND_HALF_EVEN)),
         110_000 * 184),
    ],
    ids=["year-end-january", "year-end-july", "pro-rata-january", "pro-rata-july"],
)  # fmt: skip
def test_pledge_follows_the_basis(
    cli_ledger: CliLedger, basis: str, start: str, amount: str, unit_basis: int
) -> None:
    cli_ledger.ok(*init_args(basis=basis, start=start))
    for country, homes in HOMES.items():
        cli_ledger.ok("units", "acquire", "--country", country, "--units", str(homes),
                      "--on", start)  # fmt: skip
    [pledge] = cli_ledger.json("pledge", "--year", "2021")
    assert (pledge["data"]["amount"], pledge["data"]["unit_basis"]) == (amount, unit_basis)
    assert pledge["data"]["basis"] == basis


# Schemas.


def test_schema_prints_a_json_schema_per_event_type(cli_ledger: CliLedger) -> None:
    everything = json.loads(cli_ledger.ok("schema").stdout)
    assert set(everything) == EVENT_TYPES
    for schema in everything.values():
        Draft202012Validator.check_schema(schema)
    one = json.loads(cli_ledger.ok("schema", "FundsAllocated").stdout)
    Draft202012Validator.check_schema(one)
    assert one == everything["FundsAllocated"]


def _break_amount_as_number(env: dict[str, Any]) -> None:
    env["data"]["amount"] = 60000.0


def _break_amount_decimals(env: dict[str, Any]) -> None:
    env["data"]["amount"] = "60000"


def _break_missing_initiative(env: dict[str, Any]) -> None:
    del env["data"]["initiative"]


def _break_missing_hash(env: dict[str, Any]) -> None:
    del env["hash"]


def _break_type(env: dict[str, Any]) -> None:
    env["type"] = "FundsDisbursed"


@pytest.mark.parametrize(
    "breaks",
    [None, _break_amount_as_number, _break_amount_decimals, _break_missing_initiative,
     _break_missing_hash, _break_type],
    ids=["recorded", "amount-as-number", "amount-without-cents", "missing-initiative",
         "missing-hash", "wrong-type"],
)  # fmt: skip
def test_schema_validates_a_recorded_envelope(seeded: CliLedger, breaks: Any) -> None:
    schema = json.loads(seeded.ok("schema", "FundsAllocated").stdout)
    [envelope] = seeded.json("events", "list", "--type", "FundsAllocated")
    validator = Draft202012Validator(schema)
    if breaks is None:
        validator.validate(envelope)
        return
    breaks(envelope)
    with pytest.raises(SchemaValidationError):
        validator.validate(envelope)


# Bad input and refusals: documented exit code, one line, nothing recorded.

GW_ALLOCATE = ("allocate", "--initiative", "gw-bissau-village", "--year", "2021")
BAD_AMOUNTS = {"negative": "-100.00", "zero": "0.00", "three-decimals": "1.005",
               "non-numeric": "12abc", "nan": "NaN", "infinity": "Infinity",
               "exponent": "1e3"}  # fmt: skip
AMOUNT_COMMANDS = {
    "allocate": lambda a: (*GW_ALLOCATE, "--amount", a),
    "receive": lambda a: ("receive", "--year", "2021", "--amount", a, "--on", "2021-05-01"),
    "release": lambda a: ("release", "alloc-gw", "--amount", a, "--reason", "correction"),
    "disburse": lambda a: ("disburse", "--initiative", "gw-bissau-village", "--amount", a,
                           "--on", "2021-05-01"),
    "init-rate": lambda a: init_args(start="2021-01-01", rate=a),
}  # fmt: skip
AMOUNT_CASES = [
    pytest.param(make(amount), 2, "--rate" if name == "init-rate" else "--amount",
                 id=f"{name}-{label}")
    for name, make in AMOUNT_COMMANDS.items()
    for label, amount in BAD_AMOUNTS.items()
]  # fmt: skip
ACQUIRE_SE = ("units", "acquire", "--country", "SE")
BAD_INPUT_CASES = [
    # Dates the ledger cannot hold are bad input (exit 2), whatever the command.
    pytest.param(("pledge", "--year", "2020"), 2, "not-before-start", id="pledge-before-start"),
    pytest.param((*ACQUIRE_SE, "--units", "5", "--on", "2020-12-31"), 2, "not-before-start",
                 id="acquire-before-start"),
    pytest.param((*ACQUIRE_SE[:3], "XX", "--units", "5", "--on", "2021-05-01"), 2, "'XX'",
                 id="unknown-country-units"),
    pytest.param(("initiative", "register", "zz-village", "--name", "Z", "--country", "ZZ",
                  "--programme", "p"), 2, "'ZZ'", id="unknown-country-initiative"),
    pytest.param((*ACQUIRE_SE, "--units", "5", "--on", "2021-02-30"), 2, "--on",
                 id="date-february-30"),
    pytest.param((*ACQUIRE_SE, "--units", "5", "--on", "21-01-01"), 2, "21-01-01",
                 id="date-two-digit-year"),
    pytest.param(("receive", "--year", "2021", "--amount", "5.00", "--on", "2021-13-01"), 2,
                 "--on", id="date-month-13"),
    pytest.param((*ACQUIRE_SE, "--units", "many", "--on", "2021-05-01"), 2, "--units",
                 id="units-non-numeric"),
    pytest.param((*ACQUIRE_SE, "--units", "0", "--on", "2021-05-01"), 2, "--units",
                 id="units-zero"),
    pytest.param((*ACQUIRE_SE, "--units", "-5", "--on", "2021-05-01"), 2, "--units",
                 id="units-negative"),
    pytest.param(("pledge", "--year", "twenty"), 2, "--year", id="year-non-numeric"),
    pytest.param(("initiative", "register", "GW-Bissau", "--name", "G", "--country", "GW",
                  "--programme", "p"), 2, "GW-Bissau", id="slug-uppercase"),
    pytest.param(("initiative", "register", "a" * 65, "--name", "G", "--country", "GW",
                  "--programme", "p"), 2, "not an initiative id", id="slug-65-chars"),
    pytest.param(("initiative", "register", "gw bissau village", "--name", "G",
                  "--country", "GW", "--programme", "p"), 2, "gw bissau village",
                 id="slug-spaces"),
    pytest.param(("allocate", "--initiative", "GW-Bissau", "--year", "2021", "--amount",
                  "5.00"), 2, "GW-Bissau", id="slug-uppercase-on-allocate"),
    pytest.param(("pledge", "--year", "2021", "--command-id", "has space"), 2, "--command-id",
                 id="command-id-with-space"),
    pytest.param(("allocate", "--initiative", "gw-bissau-village"), 2, "Missing",
                 id="missing-option"),
    pytest.param(("frobnicate",), 2, "frobnicate", id="unknown-command"),
    pytest.param(("events", "list", "--type", "Nope"), 2, "Nope", id="unknown-event-type"),
    pytest.param(("schema", "Nope"), 2, "Nope", id="unknown-schema-type"),
    pytest.param(("events", "show", "999"), 2, "999", id="show-unknown-position"),
    pytest.param(("events", "list", "--since", "yesterday"), 2, "--since", id="bad-since"),
]  # fmt: skip
REFUSED_CASES = [
    pytest.param((*GW_ALLOCATE[:2], "nope", *GW_ALLOCATE[3:], "--amount", "5.00"), 3,
                 "initiative-exists", id="unknown-initiative-allocate"),
    pytest.param(("milestone", "--initiative", "nope", "--name", "m", "--on", "2021-05-01"), 3,
                 "initiative-exists", id="unknown-initiative-milestone"),
    pytest.param(("units", "dispose", "--country", "SE", "--units", "1001",
                  "--on", "2021-06-01"), 3, "by 1", id="dispose-more-than-held"),
    pytest.param((*GW_ALLOCATE, "--amount", "40000.01"), 3, "by 0.01",
                 id="allocate-more-than-unallocated"),
    pytest.param(("receive", "--year", "2021", "--amount", "60000.01", "--on", "2021-05-01"),
                 3, "by 0.01", id="receive-more-than-pledged"),
    pytest.param(("release", "alloc-gw", "--amount", "60000.01", "--reason", "x"), 3,
                 "by 0.01", id="release-more-than-allocated"),
    pytest.param(("release", "alloc-none", "--amount", "1.00", "--reason", "x"), 3,
                 "allocation-exists", id="release-unknown-allocation"),
    pytest.param(("disburse", "--initiative", "gw-bissau-village", "--amount", "50000.01",
                  "--on", "2021-05-01"), 3, "by 0.01", id="disburse-more-than-allocated"),
    pytest.param(("milestone", "--initiative", "gw-bissau-village", "--name", "solar-panels",
                  "--on", "2021-11-01"), 3, "milestone-once", id="milestone-twice"),
    pytest.param(("allocate", "--initiative", "nl-siblings-together", "--year", "2021",
                  "--amount", "1.00"), 3, "initiative-open", id="allocate-to-closed"),
    pytest.param(INIT, 3, "partnership-once", id="init-twice"),
    pytest.param(("initiative", "register", "gw-bissau-village", "--name", "G",
                  "--country", "GW", "--programme", "p"), 3, "initiative-unique",
                 id="register-twice"),
    pytest.param(("pledge", "--year", "2021"), 3, "pledge-adjusts", id="pledge-unchanged"),
    pytest.param((*GW_ALLOCATE[:4], "2022", "--amount", "1.00"), 3, "year-pledged",
                 id="allocate-unpledged-year"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "code", "says"), AMOUNT_CASES + BAD_INPUT_CASES + REFUSED_CASES)
def test_bad_command_changes_nothing(
    seeded: CliLedger, args: tuple[str, ...], code: int, says: str
) -> None:
    before = seeded.state()
    line = assert_fails(seeded.run(*args), code)
    assert says in line
    assert seeded.state() == before


@pytest.mark.postgres
def test_refusals_change_nothing_on_postgres(runner: CliRunner, pg_url: str) -> None:
    cli_ledger = CliLedger(runner, pg_url)
    for args in SEED:
        cli_ledger.ok(*args)
    before = cli_ledger.state()
    for case in REFUSED_CASES:
        args, code, says = case.values
        line = assert_fails(cli_ledger.run(*args), code)
        assert says in line, (case.id, line)
    assert cli_ledger.state() == before


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        pytest.param(("pledge", "--year", "2021"), 3, "partnership-established", id="pledge"),
        pytest.param((*ACQUIRE_SE, "--units", "5", "--on", "2021-05-01"), 3,
                     "partnership-established", id="units-acquire"),
        pytest.param(("initiative", "register", "gw-bissau-village", "--name", "G",
                      "--country", "GW", "--programme", "p"), 3, "partnership-established",
                     id="initiative-register"),
        pytest.param((*GW_ALLOCATE, "--amount", "5.00"), 3, "partnership-established",
                     id="allocate"),
        pytest.param(("receive", "--year", "2021", "--amount", "5.00", "--on", "2021-05-01"),
                     3, "partnership-established", id="receive"),
        pytest.param(init_args(currency="XXX"), 2, "XXX", id="init-unknown-currency"),
        pytest.param(init_args(currency="euro"), 2, "--currency", id="init-currency-word"),
        pytest.param(init_args(basis="monthly"), 2, "monthly", id="init-unknown-basis"),
        pytest.param(init_args(start="2021-02-30"), 2, "--start", id="init-bad-start"),
    ],
)  # fmt: skip
def test_before_init(
    empty_cli_ledger: CliLedger, args: tuple[str, ...], code: int, says: str
) -> None:
    line = assert_fails(empty_cli_ledger.run(*args), code)
    assert says in line
    assert empty_cli_ledger.state() == (0, None)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("initiative", "register", "GW-Bissau", "--name", "G", "--country", "GW",
                      "--programme", "p"), id="register"),
        pytest.param(("initiative", "close", "GW-Bissau", "--on", "2021-05-01"), id="close"),
        pytest.param(("release", "has space", "--amount", "1.00", "--reason", "x"),
                     id="release"),
    ],
)  # fmt: skip
def test_positional_id_errors_do_not_name_a_missing_flag(
    seeded: CliLedger, args: tuple[str, ...]
) -> None:
    # ID and ALLOCATION-ID are arguments; there is no --id option to point the operator at.
    line = assert_fails(seeded.run(*args), 2)
    assert "--id" not in line


def test_unreachable_store_exits_4_without_leaking_the_password(runner: CliRunner) -> None:
    result = invoke(runner, UNREACHABLE_PG, "pledge", "--year", "2021")
    assert_fails(result, 4)
    assert "s3cret" not in result.output + result.stdout + result.stderr


@pytest.mark.parametrize("args", [INIT, ("events", "stats")], ids=["record", "read"])
def test_sqlite_store_in_a_missing_folder(
    runner: CliRunner, tmp_path: Path, args: tuple[str, ...]
) -> None:
    folder = tmp_path / "no" / "such" / "folder"
    result = invoke(runner, f"sqlite:///{folder / 'ledger.db'}", *args)
    assert result.exit_code in (2, 4)
    assert_fails(result, result.exit_code)
    assert not folder.exists()


@pytest.mark.parametrize(
    "url", ["mysql://user@host/db", "sqlite://", "postgresql://user@/nodb"],
    ids=["other-scheme", "sqlite-without-path", "postgres-without-host"],
)  # fmt: skip
def test_unusable_store_url(runner: CliRunner, url: str) -> None:
    assert_fails(invoke(runner, url, "events", "stats"), 2)


def test_reading_a_store_that_does_not_exist(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "never-created.db"
    assert_fails(invoke(runner, f"sqlite:///{path}", "events", "stats"), 4)
    assert not path.exists()


@pytest.mark.parametrize("args", [(), ("units",), ("initiative",), ("events",)],
                         ids=["no-command", "units", "initiative", "events"])  # fmt: skip
def test_group_without_a_sub_command(cli_ledger: CliLedger, args: tuple[str, ...]) -> None:
    # Either help on stdout (exit 0) or one line on stderr (exit 2); never help as an error.
    result = cli_ledger.run(*args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code in (0, 2)
    if result.exit_code == 2:
        assert len(lines) == 1, f"help printed as a {len(lines)}-line error: {result.stderr!r}"
    else:
        assert lines == [] and "Commands:" in result.stdout


# Import: JSON Lines, all or nothing, the bad line named.


def jsonl(*lines: dict[str, Any] | bytes) -> bytes:
    encoded = (line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines)
    return b"".join(line + b"\n" for line in encoded)


def refused_import(cli_ledger: CliLedger, folder: Path, content: bytes, code: int) -> str:
    """Import a file of `content`: refused with `code`, in one line (returned), and
    nothing recorded."""
    path = folder / "commands.jsonl"
    path.write_bytes(content)
    before = cli_ledger.state()
    line = assert_fails(cli_ledger.run("import", str(path)), code)
    assert cli_ledger.state() == before
    return line


IMPORT_1 = {"command": "units.acquire", "country": "NO", "units": 500, "on": "2021-01-01",
            "ref": "oslo-portfolio", "command_id": "imp-units-no"}  # fmt: skip
IMPORT_2 = {"command": "initiative.register", "id": "se-youth-jobs",
            "name": "Youth employability Stockholm", "country": "SE",
            "programme": "youth employability"}  # fmt: skip
IMPORT_3 = {"command": "allocate", "initiative": "se-youth-jobs", "year": 2021,
            "amount": "10000.00", "allocation_id": "alloc-se"}  # fmt: skip


@pytest.mark.parametrize(
    ("third", "says"),
    [
        pytest.param(b'{"command": "allocate", "initiative": ', "JSON", id="bad-json"),
        pytest.param({"command": "initiative.delete", "id": "x"}, "initiative.delete",
                     id="unknown-command"),
        pytest.param({"id": "x"}, "command", id="no-command-field"),
        pytest.param({**IMPORT_3, "colour": "blue"}, "colour", id="unknown-field"),
        pytest.param({**IMPORT_3, "year": "2021"}, "year", id="wrong-type-year"),
        pytest.param({**IMPORT_1, "units": 1.5}, "units", id="wrong-type-units"),
        pytest.param(b'{"command": "initiative.register", "id": "x", "name": "\xff\xfe",'
                     b' "country": "SE", "programme": "p"}', "UTF-8", id="invalid-utf8"),
        pytest.param(b'{"command": "allocate", "initiative": "se-youth-jobs", "year": 2021,'
                     b' "amount": NaN}', "NaN", id="nan-constant"),
        pytest.param(b'{"command": "allocate", "initiative": "se-youth-jobs", "year": 2021,'
                     b' "amount": Infinity}', "Infinity", id="infinity-constant"),
        pytest.param(b'{"command": "allocate", "initiative": "se-youth-jobs", "year": 2021,'
                     b' "amount": 1e3}', "amount", id="exponent-amount"),
        pytest.param({**IMPORT_3, "amount": "1.005"}, "amount", id="three-decimal-amount"),
        pytest.param({**IMPORT_2, "id": "SE-Youth"}, "SE-Youth", id="bad-slug"),
        pytest.param(b'["allocate"]', "object", id="not-an-object"),
    ],
)  # fmt: skip
def test_import_names_the_malformed_line(
    seeded: CliLedger, tmp_path: Path, third: dict[str, Any] | bytes, says: str
) -> None:
    line = refused_import(seeded, tmp_path, jsonl(IMPORT_1, IMPORT_2, third, IMPORT_3), 2)
    assert "line 3" in line and says in line


@pytest.mark.parametrize(
    ("fourth", "says"),
    [
        pytest.param({**IMPORT_3, "allocation_id": "alloc-se-2", "amount": "30000.01"},
                     "by 0.01", id="allocation-exceeds-unallocated"),
        pytest.param({"command": "receive", "year": 2021, "amount": "5.00", "on": "2021-05-01",
                      "currency": "SEK"}, "one-currency", id="other-currency"),
        pytest.param({"command": "milestone", "initiative": "gw-bissau-village",
                      "name": "solar-panels", "on": "2021-11-01"}, "milestone-once",
                     id="milestone-twice"),
        pytest.param({**IMPORT_2, "command_id": "imp-units-no"}, "command-id-unique",
                     id="command-id-reused-in-file"),
    ],
)  # fmt: skip
def test_import_refused_on_line_4_records_nothing(
    seeded: CliLedger, tmp_path: Path, fourth: dict[str, Any], says: str
) -> None:
    line = refused_import(seeded, tmp_path, jsonl(IMPORT_1, IMPORT_2, IMPORT_3, fourth), 3)
    assert "line 4" in line and says in line
    assert seeded.json("events", "list", "--initiative", "se-youth-jobs") == []


def test_import_counts_blank_lines_in_line_numbers(seeded: CliLedger, tmp_path: Path) -> None:
    content = jsonl(IMPORT_1) + b"\n   \n" + jsonl({**IMPORT_3, "amount": "-1.00"})
    assert "line 4" in refused_import(seeded, tmp_path, content, 2)


@pytest.mark.parametrize(
    ("content", "name"),
    [(None, "missing.jsonl"), (b"", "empty.jsonl"), (b"\n \n", "blank.jsonl")],
    ids=["missing-file", "empty-file", "only-blank-lines"],
)
def test_import_without_commands(
    seeded: CliLedger, tmp_path: Path, content: bytes | None, name: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    before = seeded.state()
    assert_fails(seeded.run("import", str(path)), 2)
    assert seeded.state() == before


def fifty_commands() -> list[dict[str, Any]]:
    """The reference case's first weeks as 50 import lines (field names as the flags)."""
    lines: list[dict[str, Any]] = [init_line(start="2021-01-01", command_id="imp-init")]
    lines += [{"command": "units.acquire", "country": country, "units": homes,
               "on": "2021-01-01", "ref": f"portfolio-{country.lower()}",
               "command_id": f"imp-units-{country.lower()}"}
              for country, homes in HOMES.items()]  # fmt: skip
    lines.append({"command": "pledge", "year": 2021, "command_id": "imp-pledge-2021"})
    chosen = INITIATIVES[:19]
    lines += [{"command": "initiative.register", "id": slug, "name": name, "country": country,
               "programme": programme, "command_id": f"imp-register-{slug}"}
              for slug, name, country, programme in chosen]  # fmt: skip
    lines += [{"command": "allocate", "initiative": slug, "year": 2021,
               "amount": str(ALLOCATIONS[slug]), "allocation_id": f"alloc-{slug}",
               "command_id": f"imp-allocate-{slug}"}
              for slug, *_rest in chosen]  # fmt: skip
    assert len(lines) == 50
    return lines


def test_import_records_fifty_commands_once(cli_ledger: CliLedger, tmp_path: Path) -> None:
    lines = fifty_commands()
    path = tmp_path / "fifty.jsonl"
    path.write_bytes(jsonl(*lines))
    recorded = cli_ledger.json("import", str(path))
    assert [e["position"] for e in recorded] == list(range(1, 51))
    assert [e["command_id"] for e in recorded] == [line["command_id"] for line in lines]
    assert cli_ledger.state() == (50, recorded[-1]["hash"])
    [pledge] = [e for e in recorded if e["type"] == "DonationPledged"]
    assert pledge["data"]["amount"] == "11000000.00"
    allocated = cli_ledger.json("events", "list", "--type", "FundsAllocated")
    assert sum(Decimal(e["data"]["amount"]) for e in allocated) == sum(
        ALLOCATIONS[slug] for slug, *_rest in INITIATIVES[:19]
    )
    # Every line carries a command id: importing the file again records nothing new
    # and answers as the first import did.
    assert cli_ledger.json("import", str(path)) == recorded
    assert cli_ledger.state() == (50, recorded[-1]["hash"])


def test_a_repeated_import_answers_each_recorded_event_once_as_the_first_time(
    cli_ledger: CliLedger, tmp_path: Path
) -> None:
    init = init_line(command_id="i-1")
    acquire = {"command": "units.acquire", "country": "SE", "units": 3, "on": "2021-07-01",
               "command_id": "u-1"}  # fmt: skip
    path = tmp_path / "commands.jsonl"
    path.write_bytes(jsonl(init, acquire, acquire, init))
    answers = [cli_ledger.json("import", str(path)) for _ in range(2)]
    assert [e["type"] for e in answers[0]] == ["PartnershipEstablished", "UnitsAcquired"]
    assert answers[1] == answers[0]


def test_import_from_stdin(cli_ledger: CliLedger) -> None:
    recorded = cli_ledger.json("import", "-", input=jsonl(*fifty_commands()))
    assert len(recorded) == 50
    assert cli_ledger.state() == (50, recorded[-1]["hash"])


def test_import_is_all_or_nothing(cli_ledger: CliLedger, tmp_path: Path) -> None:
    lines = fifty_commands()
    lines[-1] = {**lines[-1], "amount": "99999999.00"}
    path = tmp_path / "fifty.jsonl"
    path.write_bytes(jsonl(*lines))
    line = assert_fails(cli_ledger.run("import", str(path)), 3)
    assert "line 50" in line and "allocation-within-pledge" in line
    assert cli_ledger.state() == (0, None)


# Idempotency: a command id is recorded once and answered as the first time.

REPEATABLE = [
    pytest.param(("receive", "--year", "2021", "--amount", "1000.00", "--on", "2021-05-01"),
                 id="receive"),
    pytest.param((*GW_ALLOCATE, "--amount", "1000.00"), id="allocate-generated-allocation-id"),
    pytest.param(("release", "alloc-gw", "--amount", "1000.00", "--reason", "rebudget"),
                 id="release"),
    pytest.param(("milestone", "--initiative", "gw-bissau-village", "--name", "shelter-open",
                  "--on", "2021-11-01"), id="milestone"),
    pytest.param(("initiative", "register", "fi-family-care", "--name", "Family care",
                  "--country", "FI", "--programme", "family strengthening"), id="register"),
    pytest.param(("units", "dispose", "--country", "SE", "--units", "10", "--on", "2021-06-01"),
                 id="units-dispose"),
]  # fmt: skip


@pytest.mark.parametrize("args", REPEATABLE)
def test_same_command_id_records_once(seeded: CliLedger, args: tuple[str, ...]) -> None:
    count, _ = seeded.state()
    first = seeded.json(*args, "--command-id", "op-2021-0042")
    second = seeded.json(*args, "--command-id", "op-2021-0042")
    assert len(first) == 1 and first[0]["command_id"] == "op-2021-0042"
    assert second == first
    assert seeded.state() == (count + 1, first[0]["hash"])


def test_init_repeated_with_its_command_id_is_answered_not_refused(cli_ledger: CliLedger) -> None:
    first = cli_ledger.json(*INIT, "--command-id", "init-1")
    assert cli_ledger.json(*INIT, "--command-id", "init-1") == first
    assert cli_ledger.state() == (1, first[0]["hash"])


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(("receive", "--year", "2021", "--amount", "1001.00", "--on", "2021-05-01"),
                     id="different-amount"),
        pytest.param(("receive", "--year", "2021", "--amount", "1000.00", "--on", "2021-05-02"),
                     id="different-date"),
        pytest.param(("milestone", "--initiative", "gw-bissau-village", "--name", "x",
                      "--on", "2021-05-01"), id="different-command"),
    ],
)  # fmt: skip
def test_same_command_id_for_another_command_is_refused(
    seeded: CliLedger, other: tuple[str, ...]
) -> None:
    seeded.ok("receive", "--year", "2021", "--amount", "1000.00", "--on", "2021-05-01",
              "--command-id", "op-7")  # fmt: skip
    before = seeded.state()
    line = assert_fails(seeded.run(*other, "--command-id", "op-7"), 3)
    assert "command-id-unique" in line
    assert seeded.state() == before


# Output formats.


def test_json_is_an_array_of_spec_envelopes(seeded: CliLedger) -> None:
    envelopes = seeded.json("events", "list")
    assert isinstance(envelopes, list) and len(envelopes) == len(SEED)
    assert [e["position"] for e in envelopes] == list(range(1, len(SEED) + 1))
    for previous, envelope in zip([None, *envelopes], envelopes, strict=False):
        assert list(envelope) == ENVELOPE_FIELDS
        assert RECORDED_AT.match(envelope["recorded_at"])
        assert date.fromisoformat(envelope["effective_date"])
        assert envelope["actor"] == ACTOR
        for name in MONEY_FIELDS:
            if name in envelope["data"]:
                assert MONEY.match(envelope["data"][name]), envelope["data"]
        if previous is not None:
            assert envelope["prev_hash"] == previous["hash"]
    recorded = seeded.json("receive", "--year", "2021", "--amount", "5.00", "--on",
                           "2021-05-01")  # fmt: skip
    assert isinstance(recorded, list) and list(recorded[0]) == ENVELOPE_FIELDS
    assert recorded[0]["data"]["amount"] == "5.00"


def test_json_of_an_empty_selection(seeded: CliLedger) -> None:
    assert seeded.json("events", "list", "--type", "LedgerSealed") == []


def test_jsonl_is_one_envelope_per_line(seeded: CliLedger) -> None:
    lines = seeded.ok("--format", "jsonl", "events", "list").stdout.splitlines()
    assert [json.loads(line) for line in lines] == seeded.json("events", "list")


def test_csv_has_a_header_and_stable_columns(seeded: CliLedger) -> None:
    expected = seeded.json("events", "list")
    for types in ((), ("--type", "FundsAllocated"), ("--type", "LedgerSealed")):
        text = seeded.ok("--format", "csv", "events", "list", *types).stdout
        reader = csv.DictReader(io.StringIO(text))
        assert reader.fieldnames == ENVELOPE_FIELDS
        rows = list(reader)
        wanted = [e for e in expected if not types or e["type"] == types[1]]
        assert [int(r["position"]) for r in rows] == [e["position"] for e in wanted]
        assert [json.loads(r["data"]) for r in rows] == [e["data"] for e in wanted]
        assert [r["hash"] for r in rows] == [e["hash"] for e in wanted]


def test_table_is_aligned_with_money_right_aligned(seeded: CliLedger) -> None:
    """Fixed columns: the header starts the line, every value sits under its header."""
    envelopes = seeded.json("events", "list")
    header, *rows = seeded.ok("events", "list").stdout.splitlines()
    assert len(rows) == len(envelopes)
    amount_end = header.index("AMOUNT") + len("AMOUNT")
    position_end = header.index("POSITION") + len("POSITION")
    type_start, scope_start = header.index("TYPE"), header.index("SCOPE")
    amounts = {e["data"].get("amount") for e in envelopes} - {None}
    assert len({len(a) for a in amounts}) > 1, "needs amounts of different widths"
    for row, envelope in zip(rows, envelopes, strict=True):
        position = str(envelope["position"])
        assert row[position_end - len(position) : position_end] == position, row
        assert row[type_start:].startswith(envelope["type"] + " "), row
        assert row[scope_start:].startswith(envelope["scope"] + " "), row
        amount = envelope["data"].get("amount")
        if amount:  # in a table, with thousands separators (json keeps the plain decimal)
            amount = f"{Decimal(amount):,.2f}"
            assert row[amount_end - len(amount) - 1 : amount_end] == " " + amount, row
            assert row[amount_end : amount_end + 2] == "  ", row
        else:
            assert row[amount_end - len("AMOUNT") : amount_end].strip() == "", row


def test_stats_in_every_format(seeded: CliLedger) -> None:
    stats = seeded.json("events", "stats")
    assert stats["events"] == len(SEED) and stats["first_position"] == 1
    assert sum(stats["by_type"].values()) == len(SEED)
    table = seeded.ok("events", "stats").stdout
    assert stats["head_hash"] in table and "FundsAllocated" in table
    assert json.loads(seeded.ok("--format", "jsonl", "events", "stats").stdout) == stats
    [row] = list(csv.DictReader(io.StringIO(seeded.ok("--format", "csv", "events",
                                                      "stats").stdout)))  # fmt: skip
    assert row["head_hash"] == stats["head_hash"] and row["events"] == str(len(SEED))
