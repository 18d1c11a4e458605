"""The event store behind the ledger application: the same tests on SQLite and PostgreSQL.

Every test takes `store_url`, so it runs once on an SQLite file and once on a fresh
PostgreSQL database. The reference case is "A Home for a Home": Heimstaden gives
EUR 100 per home per year (year-end basis) to SOS Children's Villages from 1 July 2021.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import traceback
from collections.abc import Callable
from contextlib import closing
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from homeledger.adapters.application import BatchError, LedgerApplication
from homeledger.adapters.envelope import Envelope
from homeledger.adapters.hash_chain import LEDGER_ID, canonical_json
from homeledger.adapters.ledger_snapshot import ledger_to_dict
from homeledger.adapters.settings import ConfigError, Settings, store_location
from homeledger.adapters.store import LedgerStore, StoreUnavailableError
from homeledger.cli.bootstrap import build_application
from homeledger.domain import commands as c
from homeledger.domain import reference_case
from homeledger.domain.errors import (
    AllocationExceedsUnallocatedError,
    CommandIdReusedError,
    InitiativeNotFoundError,
)
from homeledger.domain.ledger import replay
from tests.helpers import MakeApp, assert_chain_intact, one_line, sqlite_backup
from tests.nats_helpers import cli_env, invoke

# 110,000 homes across Europe on the start date.
REFERENCE_HOMES = {
    "SE": 40_000,
    "DE": 25_000,
    "NL": 15_000,
    "DK": 12_000,
    "PL": 8_000,
    "NO": 5_000,
    "CZ": 3_000,
    "FI": 2_000,
}
INITIATIVES = [
    (
        "gw-bissau-village",
        "Bissau children's village sustainable hub",
        "GW",
        "family-like alternative care",
    ),
    (
        "nl-siblings-together",
        "Housing that keeps siblings in care together",
        "NL",
        "family-like alternative care",
    ),
    ("pl-youth-employability", "Youth employability programme", "PL", "youth employability"),
    ("de-family-strengthening", "Family strengthening", "DE", "family strengthening"),
]
ALLOCATIONS = [
    ("alloc-gw-1", "gw-bissau-village", "250000.00"),
    ("alloc-nl-1", "nl-siblings-together", "120000.00"),
    ("alloc-pl-1", "pl-youth-employability", "80000.00"),
    ("alloc-de-1", "de-family-strengthening", "95000.50"),
]
PASSWORD = "s3cr3t-Pa55word"


def reference_commands() -> list[c.Command]:
    """The partnership's first year, every command with its own command id."""
    commands: list[c.Command] = [
        reference_case.partnership(command_id="init")
    ]
    commands += [
        c.AcquireUnits(
            country=cc, units=n, on="2021-07-01", ref=f"portfolio {cc}", command_id=f"acquire-{cc}"
        )
        for cc, n in REFERENCE_HOMES.items()
    ]
    commands.append(c.PledgeDonation(year=2021, command_id="pledge-2021"))
    commands += [
        c.RegisterInitiative(
            id=key, name=name, country=cc, programme=programme, command_id=f"register-{key}"
        )
        for key, name, cc, programme in INITIATIVES
    ]
    # With an allocation id (a repeat fails on re-decision) and without (a repeat
    # decides again and is caught by the receipt): both must answer as the first time.
    commands += [
        c.AllocateFunds(
            initiative=initiative,
            year=2021,
            amount=amount,
            allocation_id=allocation_id,
            command_id=f"cmd-{allocation_id}",
        )
        for allocation_id, initiative, amount in ALLOCATIONS
    ]
    commands += [
        c.AllocateFunds(
            initiative="gw-bissau-village", year=2021, amount="5000.00", command_id="alloc-no-id"
        ),
        c.ReceiveDonation(
            year=2021, amount="5500000.00", on="2021-12-15", command_id="receive-2021-1"
        ),
        c.DisburseFunds(
            initiative="gw-bissau-village",
            amount="100000.00",
            on="2022-01-10",
            command_id="disburse-gw-1",
        ),
        c.RecordMilestone(
            initiative="gw-bissau-village",
            name="solar panels installed",
            on="2022-03-01",
            evidence="report-17",
            command_id="milestone-gw-1",
        ),
    ]
    return commands


def record_reference(app: LedgerApplication) -> list[Envelope]:
    envelopes: list[Envelope] = []
    for command in reference_commands():
        envelopes += app.execute(command)
    return envelopes


def replayed(store: LedgerStore) -> dict[str, object]:
    """The ledger as a plain replay of every stored fact gives it, snapshots unused (each
    fact with its identity: the ledger keeps the reversible ones by event id)."""
    ledger = replay([])
    for envelope in store.envelopes():
        ledger.apply(envelope.fact, envelope.stamp())
    return ledger_to_dict(ledger)


def allocated_2021(app: LedgerApplication) -> Decimal:
    return app.refreshed_state().ledger.years[2021].committed


# Recording and reading back.


def test_reference_case_is_recorded_in_order(store_url: str, make_app: MakeApp) -> None:
    app = make_app(store_url)
    envelopes = record_reference(app)

    assert len(envelopes) == len(reference_commands())
    positions = [e.position for e in envelopes]
    assert all(a < b for a, b in pairwise(positions))
    assert [e.aggregate_version for e in envelopes] == list(range(1, len(envelopes) + 1))
    assert app.store.max_position() == positions[-1]
    assert assert_chain_intact(app.store) == len(envelopes)
    for before, after in pairwise(envelopes):
        assert after.prev_hash == before.hash

    pledge = next(e for e in envelopes if e.type == "DonationPledged")
    assert pledge.data == {
        "year": 2021,
        "basis": "year-end",
        "unit_basis": 110_000,
        "rate": "100.00",
        "amount": "11000000.00",
        "delta": "11000000.00",
        "currency": "EUR",
    }
    assert pledge.scope == "2021"
    assert envelopes[0].effective_date.isoformat() == "2021-07-01"


def test_envelopes_read_back_equal_what_execute_returned(store_url: str, make_app: MakeApp) -> None:
    envelopes = record_reference(make_app(store_url))
    reader = make_app(store_url)  # a separate application, nothing cached

    read = list(reader.store.envelopes())
    assert read == envelopes
    assert [e.to_dict() for e in read] == [e.to_dict() for e in envelopes]
    assert list(reader.store.envelopes(page=3)) == envelopes
    middle = envelopes[5].position, envelopes[9].position
    assert list(reader.store.envelopes(*middle)) == envelopes[5:10]
    allocated = list(reader.store.envelopes(types=["FundsAllocated"]))
    assert allocated == [e for e in envelopes if e.type == "FundsAllocated"]


# Idempotency by command id.


def test_repeated_commands_answer_as_the_first_time(
    store_url: str, make_app: MakeApp, request: pytest.FixtureRequest
) -> None:
    first = make_app(store_url)
    envelopes = record_reference(first)
    top = first.store.max_position()

    # The same application (state cached) and a fresh one (nothing cached).
    for app in (first, make_app(store_url)):
        repeated: list[Envelope] = []
        for command in reference_commands():
            repeated += app.execute(command)
        assert repeated == envelopes
        assert app.execute_batch(reference_commands()) == envelopes
    assert first.store.max_position() == top
    assert assert_chain_intact(first.store) == len(envelopes)


def test_a_repeat_is_answered_in_one_write_attempt(
    store_url: str,
    make_app: MakeApp,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A repeat that decides again (no rule catches it) meets the receipt in one attempt."""
    app = make_app(store_url)
    record_reference(app)
    acquire = reference_commands()[1]
    first = app.execute(acquire)
    recorder = app.store.recorder
    insert = recorder.insert_in
    attempts: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        attempts[-1] += 1
        return insert(*args, **kwargs)

    monkeypatch.setattr(recorder, "insert_in", counted)
    for _ in range(20):
        attempts.append(0)
        assert app.execute(acquire) == first
    assert attempts == [1] * 20


@pytest.mark.parametrize(
    "changed",
    [
        c.AllocateFunds(
            initiative="gw-bissau-village", year=2021, amount="5000.01", command_id="alloc-no-id"
        ),
        c.AllocateFunds(
            initiative="nl-siblings-together", year=2021, amount="5000.00", command_id="alloc-no-id"
        ),
        c.PledgeDonation(year=2022, command_id="pledge-2021"),
        c.RegisterInitiative(
            id="gw-bissau-village",
            name="Another name",
            country="GW",
            programme="family-like alternative care",
            command_id="register-gw-bissau-village",
        ),
    ],
    ids=["other-amount", "other-initiative", "other-year", "other-name"],
)
def test_command_id_reused_for_other_content_is_refused(
    store_url: str, make_app: MakeApp, changed: c.Command
) -> None:
    app = make_app(store_url)
    record_reference(app)
    top = app.store.max_position()

    with pytest.raises(CommandIdReusedError, match=str(changed.command_id)):
        app.execute(changed)
    with pytest.raises(CommandIdReusedError):
        make_app(store_url).execute(changed)
    assert app.store.max_position() == top


# Batches: all or nothing.

NEW_INITIATIVE = c.RegisterInitiative(
    id="dk-family-strengthening",
    name="Family strengthening",
    country="DK",
    programme="family strengthening",
    command_id="batch-register",
)
GOOD_BATCH: list[c.Command] = [
    NEW_INITIATIVE,
    c.AllocateFunds(
        initiative="dk-family-strengthening",
        year=2021,
        amount="1000.00",
        command_id="batch-alloc-1",
    ),
    c.AllocateFunds(
        initiative="gw-bissau-village", year=2021, amount="2000.00", command_id="batch-alloc-2"
    ),
    c.ReceiveDonation(year=2021, amount="1000.00", on="2022-01-31", command_id="batch-receive"),
]
BAD_COMMANDS: list[tuple[int, c.Command, type[Exception]]] = [
    (
        0,
        c.AllocateFunds(
            initiative="no-such-initiative", year=2021, amount="1.00", command_id="bad-1"
        ),
        InitiativeNotFoundError,
    ),
    (
        2,
        c.AllocateFunds(
            initiative="dk-family-strengthening",
            year=2021,
            amount="99999999.00",
            command_id="bad-2",
        ),
        AllocationExceedsUnallocatedError,
    ),
    (
        4,
        c.AllocateFunds(
            initiative="gw-bissau-village", year=2021, amount="7.00", command_id="batch-alloc-1"
        ),
        CommandIdReusedError,
    ),
]


@pytest.mark.parametrize(
    ("index", "bad", "error"), BAD_COMMANDS, ids=["first", "middle", "id-reused-in-batch"]
)
def test_batch_with_a_failing_command_records_nothing(
    store_url: str, make_app: MakeApp, index: int, bad: c.Command, error: type[Exception]
) -> None:
    app = make_app(store_url)
    record_reference(app)
    before = app.store.max_position()
    allocated = allocated_2021(app)
    batch = [*GOOD_BATCH[:index], bad, *GOOD_BATCH[index:]]

    with pytest.raises(BatchError) as failure:
        app.execute_batch(batch)
    assert failure.value.index == index
    assert isinstance(failure.value.error, error)
    assert app.store.max_position() == before
    assert all(app.store.receipt(str(cmd.command_id)) is None for cmd in batch)
    assert allocated_2021(make_app(store_url)) == allocated

    # The failed batch left nothing behind, not even in the application's cached state.
    recorded = app.execute_batch(GOOD_BATCH)
    assert [e.type for e in recorded] == [
        "InitiativeRegistered",
        "FundsAllocated",
        "FundsAllocated",
        "DonationReceived",
    ]
    assert len({e.correlation_id for e in recorded}) == len(recorded)
    assert [e.aggregate_version for e in recorded] == [
        recorded[0].aggregate_version + i for i in range(4)
    ]
    assert assert_chain_intact(app.store) == recorded[-1].aggregate_version
    assert ledger_to_dict(app.refreshed_state().ledger) == replayed(app.store)


def test_batch_shares_one_correlation_id_and_is_idempotent(
    store_url: str, make_app: MakeApp
) -> None:
    app = make_app(store_url)
    record_reference(app)
    recorded = app.execute_batch(GOOD_BATCH, correlation_id="import-2022-01")
    top = app.store.max_position()

    assert {e.correlation_id for e in recorded} == {"import-2022-01"}
    assert make_app(store_url).execute_batch(GOOD_BATCH) == recorded
    assert app.store.max_position() == top


def test_batch_answers_in_the_order_of_its_commands(store_url: str, make_app: MakeApp) -> None:
    app = make_app(store_url)
    record_reference(app)
    new = c.AllocateFunds(
        initiative="gw-bissau-village", year=2021, amount="1.00", command_id="new-in-batch"
    )
    answered = app.execute_batch([new, reference_commands()[-1]])
    assert [e.command_id for e in answered] == ["new-in-batch", "milestone-gw-1"]


# Two applications on one store.


def test_second_application_sees_the_first_ones_facts(store_url: str, make_app: MakeApp) -> None:
    first = make_app(store_url, actor="first")
    record_reference(first)
    second = make_app(store_url, actor="second")
    second_ledger = second.refreshed_state().ledger
    assert ledger_to_dict(second_ledger) == ledger_to_dict(first.refreshed_state().ledger)

    # The second's cached state goes stale; its command is still valid: conflict, retry.
    mine = first.execute(
        c.AllocateFunds(initiative="gw-bissau-village", year=2021, amount="1000.00")
    )
    theirs = second.execute(
        c.AllocateFunds(initiative="nl-siblings-together", year=2021, amount="2000.00")
    )
    assert theirs[0].aggregate_version == mine[0].aggregate_version + 1
    assert theirs[0].prev_hash == mine[0].hash
    assert theirs[0].actor == "second"

    # The first now leaves 100.00 unallocated; the stale second must be refused.
    ledger = first.refreshed_state().ledger
    rest = ledger.years[2021].unallocated - Decimal("100.00")
    first.execute(c.AllocateFunds(initiative="gw-bissau-village", year=2021, amount=str(rest)))
    top = first.store.max_position()
    refusal = r"exceeds the 2021 unallocated balance of 100\.00 by 400\.00"
    with pytest.raises(AllocationExceedsUnallocatedError, match=refusal):
        second.execute(
            c.AllocateFunds(initiative="nl-siblings-together", year=2021, amount="500.00")
        )
    assert second.store.max_position() == top
    second.execute(c.AllocateFunds(initiative="nl-siblings-together", year=2021, amount="100.00"))
    assert first.refreshed_state().ledger.years[2021].unallocated == Decimal("0.00")
    assert assert_chain_intact(first.store) == first.refreshed_state().version
    assert ledger_to_dict(second.refreshed_state().ledger) == replayed(first.store)


def test_stale_application_accepts_what_the_store_allows(store_url: str, make_app: MakeApp) -> None:
    first = make_app(store_url, actor="first")
    record_reference(first)
    second = make_app(store_url, actor="second")
    second.refreshed_state()  # cached as of now
    first.execute(
        c.RegisterInitiative(
            id="dk-family-strengthening",
            name="Families",
            country="DK",
            programme="family strengthening",
        )
    )
    recorded = second.execute(
        c.AllocateFunds(initiative="dk-family-strengthening", year=2021, amount="1.00")
    )
    assert recorded[0].data["initiative"] == "dk-family-strengthening"


# Snapshots: a cache, never a source of truth.


# Ledger snapshots are written and trusted only under a key the database does not hold.
SNAPSHOT_KEY = base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()


def snapshot_app(make_app: MakeApp, url: str) -> LedgerApplication:
    """An application that snapshots its decision state every 3 facts (under a key)."""
    return make_app(url, actor="snapshots", ledger_snapshot_every=3, seal_key=SNAPSHOT_KEY)


def latest_snapshot(store: LedgerStore) -> tuple[int, dict[str, object]]:
    rows = store.snapshots.select_events(LEDGER_ID, desc=True, limit=1)
    assert rows, "no snapshot was taken"
    return rows[0].originator_version, json.loads(rows[0].state)


def overwrite_snapshot(store: LedgerStore, version: int, state: bytes) -> None:
    """Corrupt a stored snapshot row in place, as a faulty disk or a stray hand would."""
    recorder: Any = store.snapshots  # an SQLite or a PostgreSQL aggregate recorder
    table = recorder.events_table_name
    if store.location.kind == "sqlite":
        sql = f"UPDATE {table} SET state=? WHERE originator_version=?"
    else:
        sql = f"UPDATE {recorder.datastore.schema}.{table} SET state=%s WHERE originator_version=%s"
    with recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(sql, (state, version))


def test_snapshots_load_the_same_head_as_a_full_replay(
    store_url: str, make_app: MakeApp
) -> None:
    writer = snapshot_app(make_app, store_url)
    envelopes = record_reference(writer)
    writer.execute_batch(GOOD_BATCH)  # a batch crossing a snapshot boundary
    version, state = latest_snapshot(writer.store)
    assert version > 3 and state["version"] == version

    fresh = snapshot_app(make_app, store_url)
    head = fresh.refreshed_state()
    assert ledger_to_dict(head.ledger) == replayed(fresh.store)
    assert head.version == len(envelopes) + len(GOOD_BATCH)
    assert head.last_hash == list(fresh.store.envelopes())[-1].hash

    # It records on from there, the chain unbroken.
    fresh.execute(c.AllocateFunds(initiative="gw-bissau-village", year=2021, amount="1.00"))
    assert assert_chain_intact(fresh.store) == head.version + 1


def _garbage(state: dict[str, object]) -> bytes:
    return b"\x00\xff not a snapshot"


def _truncated(state: dict[str, object]) -> bytes:
    return canonical_json(state)[:40]


def _unknown_format(state: dict[str, object]) -> bytes:
    ledger = dict(state["ledger"])  # type: ignore[call-overload]
    return canonical_json({**state, "ledger": {**ledger, "format": 999}})


def _ledger_not_a_dict(state: dict[str, object]) -> bytes:
    return canonical_json({**state, "ledger": []})


def _without_version(state: dict[str, object]) -> bytes:
    return canonical_json({k: v for k, v in state.items() if k != "version"})


def _wrong_hash(state: dict[str, object]) -> bytes:
    return canonical_json({**state, "hash": "f" * 64})


def _lower_version(state: dict[str, object]) -> bytes:
    return canonical_json({**state, "version": int(state["version"]) - 2})  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "corrupt",
    [
        _garbage,
        _truncated,
        _unknown_format,
        _ledger_not_a_dict,
        _without_version,
        _wrong_hash,
        _lower_version,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_corrupted_snapshot_is_ignored(
    store_url: str,
    make_app: MakeApp,
    corrupt: Callable[[dict[str, object]], bytes],
) -> None:
    writer = snapshot_app(make_app, store_url)
    record_reference(writer)
    while writer.refreshed_state().version % 3:  # the newest snapshot is at the head version
        writer.execute(
            c.AllocateFunds(initiative="pl-youth-employability", year=2021, amount="1.00")
        )
    version, state = latest_snapshot(writer.store)
    assert version == writer.refreshed_state().version
    overwrite_snapshot(writer.store, version, corrupt(state))

    fresh = snapshot_app(make_app, store_url)
    head = fresh.refreshed_state()
    assert ledger_to_dict(head.ledger) == replayed(fresh.store)
    assert head.version == version
    fresh.execute(c.AllocateFunds(initiative="gw-bissau-village", year=2021, amount="1.00"))
    assert assert_chain_intact(fresh.store) == version + 1


# Unreachable stores: a clear error, never a password.


@pytest.mark.parametrize(
    ("url", "create"),
    [
        (f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x?connect_timeout=1", True),
        (f"postgres://ops:{PASSWORD}@127.0.0.1:1/ledger?connect_timeout=1", True),
        (f"postgresql://postgres:{PASSWORD}@127.0.0.1:port/x", True),
        (f"postgresql://postgres:{PASSWORD}@/x", True),
        (f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/", True),
        (f"mysql://root:{PASSWORD}@127.0.0.1/ledger", True),
        ("sqlite:///{tmp}/no-such-folder/ledger.db", True),
        ("sqlite:///{tmp}/not-created-yet.db", False),
    ],
    ids=[
        "pg-closed-port",
        "pg-scheme-alias",
        "pg-bad-port",
        "pg-no-host",
        "pg-no-db",
        "unknown-scheme",
        "sqlite-missing-folder",
        "sqlite-missing-file",
    ],
)
def test_unreachable_store_raises_a_clear_error_without_the_password(
    tmp_path: Path, url: str, create: bool
) -> None:
    url = url.replace("{tmp}", str(tmp_path))
    with pytest.raises((StoreUnavailableError, ConfigError)) as failure:
        app = build_application(Settings(store=url, actor="ops"), create=create)
        app.store.close()
    error = failure.value
    printed = "".join(traceback.format_exception(error))
    chained: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None:
        chained.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert PASSWORD not in str(error)
    assert PASSWORD not in printed
    assert all(PASSWORD not in repr(exc) for exc in chained)
    assert len(str(error).splitlines()) == 1
    if "://" in str(error) and "@" in str(error):
        assert ":***@" in str(error)
    assert not list(tmp_path.iterdir())  # nothing was created by a failed open


def test_settings_and_location_reprs_hide_the_store_password() -> None:
    settings = Settings(store=f"postgresql://ops:{PASSWORD}@db.example.org:5432/ledger")
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in repr(store_location(settings.store))


# Files that hold no ledger: exit 4 in one line, and never written to.


def test_a_file_that_is_not_a_store_is_exit_4_in_one_line(
    ledger: LedgerApplication, sqlite_url: str, tmp_path: Path
) -> None:
    text = tmp_path / "notes.db"
    text.write_text("these are someone's notes, not a database\n" * 100)
    truncated = tmp_path / "truncated.db"
    sqlite_backup(sqlite_url, truncated)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for path in (text, truncated):
        for args in (["events", "stats"], ["pledge", "--year", "2022"], ["verify"]):
            result = invoke(args, cli_env(f"sqlite:///{path}", "nats://127.0.0.1:1"))
            assert result.exit_code == 4, (path, args, result.output)
            assert one_line(result.stderr).startswith("homeledger: store unavailable:")


def test_read_commands_leave_another_applications_sqlite_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other-app.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
    before = path.read_bytes()
    env = cli_env(f"sqlite:///{path}", "nats://127.0.0.1:1")
    for args in (["events", "stats"], ["events", "list"], ["balances"], ["verify"]):
        result = invoke(args, env)
        assert result.exit_code == 4, (args, result.output)
        assert one_line(result.stderr) == (
            f"homeledger: store unavailable: no homeledger store at sqlite:///{path}"
        )
    assert path.read_bytes() == before
    with closing(sqlite3.connect(path)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("notes",)]
