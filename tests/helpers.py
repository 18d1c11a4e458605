"""Helpers shared by tests: what a test imports (fixtures live in conftest.py).

Waiting on a condition, what a test needs from the machine, PostgreSQL databases for
tests, a deterministic clock, the partnership's terms as commands and CLI arguments,
the pro-rata case with its hand-computed figures, and raw access to a store's events
table for tampering. NATS helpers are in nats_helpers.py, Hypothesis strategies in
strategies.py, processes in workers.py.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import LedgerStore
from homeledger.cli.bootstrap import build_application
from homeledger.domain import commands as c
from homeledger.domain import events as e
from homeledger.domain import reference_case
from homeledger.domain.errors import DomainError
from homeledger.domain.ledger import Ledger
from homeledger.projections.db import ProjectionDB, all_tables
from homeledger.projections.runner import ProjectionRunner

MakeApp = Callable[..., LedgerApplication]
WIRE_AMOUNT = re.compile(r"-?[0-9]+\.[0-9]{2}")  # an amount outside the code: two decimals


# The CLI as a process of its own.

CLI = [sys.executable, "-m", "homeledger.cli"]


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any HOMELEDGER_* variable, plus `settings`;
    a Python process started with it prints its threads' stacks if it is aborted (see
    `workers.stopped`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELEDGER_")}
    return env | {"PYTHONFAULTHANDLER": "1"} | settings


# What a test needs from the machine, and waiting for a condition.


def unavailable(reason: str) -> NoReturn:
    """The machine lacks something the test needs: a failure under CI (CI set), where
    everything must run, and a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` once `timeout` seconds passed.

    The timeout bounds a hang, never how fast the machine must be: tests wait for a
    state, not for a time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


# PostgreSQL: one fresh database per test.

PG_HOST = os.environ.get("HOMELEDGER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HOMELEDGER_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("HOMELEDGER_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("HOMELEDGER_TEST_PG_ADMIN_DB", "postgres")


def pg_connect(dbname: str = PG_ADMIN_DB) -> Any:
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname,
                           autocommit=True, connect_timeout=5)  # fmt: skip


def postgres_available() -> str | None:
    """None when the server answers, else why not."""
    try:
        with pg_connect():
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means unavailable
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def require_postgres() -> None:
    reason = postgres_available()
    if reason is not None:
        unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT}: {reason}")


@contextmanager
def pg_database() -> Iterator[str]:
    """The URL of a freshly created database, dropped afterwards."""
    require_postgres()
    name = f"hl_test_{uuid.uuid4().hex[:16]}"
    with pg_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with pg_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_store_url(base: str, folder: Path) -> str:
    """A store of its own next to `base` (for one Hypothesis example): another SQLite
    file in `folder`, or another schema of `base`'s PostgreSQL database."""
    name = f"ex_{uuid.uuid4().hex[:12]}"
    if base.startswith("sqlite"):
        return f"sqlite:///{folder / (name + '.db')}"
    with pg_connect(base.rsplit("/", 1)[1]) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return f"{base}?schema={name}"


def sqlite_backup(url: str, target: Path) -> str:
    """A consistent copy of an SQLite store (its write-ahead log included), as a URL."""
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as source, \
            closing(sqlite3.connect(target)) as copy:  # fmt: skip
        source.backup(copy)
    return f"sqlite:///{target}"


def url_of(store: LedgerStore) -> str:
    """The URL an open store was opened with (without a password)."""
    at = store.location
    if at.kind == "sqlite":
        return f"sqlite:///{at.path}"
    return f"postgresql://{at.user}@{at.host}:{at.port}/{at.dbname}?schema={at.schema}"


# Recording.


class StepClock:
    """A deterministic clock: each reading moves on by the next of `steps` seconds, in
    turn (a negative step goes back, as a writer's clock that disagrees would). It starts
    after every date the tests record (2021-2024): a fact is never effective after the
    day it is recorded."""

    def __init__(self, start: datetime | None = None, steps: Sequence[int] = (1,)) -> None:
        self.now = start or datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
        self.steps = list(steps) or [1]
        self.index = 0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=self.steps[self.index % len(self.steps)])
        self.index += 1
        return self.now


def open_app(url: str, actor: str = "tester", clock: Any = None,
             **more: Any) -> LedgerApplication:  # fmt: skip
    """An application on a store URL (more settings by keyword), on a StepClock."""
    return build_application(Settings(store=url, actor=actor, **more),
                             clock=clock or StepClock())  # fmt: skip


def record(app: LedgerApplication, commands: list[c.Command]) -> None:
    for command in commands:
        app.execute(command)


def run_history(app: LedgerApplication, history: list[c.Command], seal_every: int,
                runner: ProjectionRunner | None = None) -> None:  # fmt: skip
    """Record a random history, the commands the ledger refuses left out; seal every
    `seal_every` commands (0: never); catch `runner` up every third command."""
    for index, command in enumerate(history):
        try:
            app.execute(command)
        except DomainError:
            continue
        if seal_every and index % seal_every == seal_every - 1:
            app.seal()
        if runner is not None and index % 3 == 0:
            runner.catch_up()


def build(*commands: c.Command) -> tuple[Ledger, list[e.DomainEvent]]:
    """The ledger the commands build (each must be accepted) and its facts: no store."""
    ledger, facts = Ledger(), []
    for command in commands:
        for fact in ledger.decide(command):
            ledger.apply(fact)
            facts.append(fact)
    return ledger, facts


def build_accepted(history: list[c.Command]) -> tuple[Ledger, list[e.DomainEvent]]:
    """The ledger of a random history, the commands it refuses left out, and its facts."""
    ledger, facts = Ledger(), []
    for command in history:
        try:
            new = ledger.decide(command)
        except DomainError:
            continue
        for fact in new:
            ledger.apply(fact)
            facts.append(fact)
    return ledger, facts


# The partnership's terms: one builder (the reference case's), in every form a test
# sends them.

partnership = reference_case.partnership


def init_fields(**changes: str) -> dict[str, str]:
    """The partnership's terms as the fields of an `init` command, some changed (as
    strings, unchecked: a test may send what the ledger must refuse)."""
    terms = partnership()
    fields = {"donor": terms.donor, "beneficiary": terms.beneficiary,
              "rate": f"{terms.rate:.2f}", "currency": terms.currency, "basis": terms.basis,
              "start": terms.start.isoformat()}  # fmt: skip
    return fields | changes


def init_args(**changes: str) -> tuple[str, ...]:
    """`homeledger init` with the partnership's terms (some changed) as options."""
    options = [(f"--{name}", value) for name, value in init_fields(**changes).items()]
    return ("init", *(part for option in options for part in option))


def init_line(**changes: str) -> dict[str, str]:
    """The `init` line of an import file, with the partnership's terms (some changed)."""
    return {"command": "init", **init_fields(**changes)}


# The pro-rata case: the partnership on a pro-rata basis, homes bought and sold mid-year.


def pro_rata_commands() -> list[c.Command]:
    """The pro-rata case. Hand-computed figures:

    2021, pro-rata from 2021-07-01 (184 days), 365 days in the year:
      SE 1000 homes 07-01..11-14 (137 days) = 137,000 unit-days; 800 homes 11-15..12-31
      (47 days) = 37,600; NL 500 x 184 = 92,000; DE 300 from 10-01 (92 days) = 27,600.
      Unit-days 294,200; pledge 100.00 x 294,200 / 365 = 80,602.739... -> 80602.74.
    2022: 1,600 homes all year = 584,000 unit-days, DK 365 from 07-02 (183 days) =
      66,795; 650,795 unit-days x 100.00 / 365 = 178300.00.
    """
    return [
        partnership(basis="pro-rata"),
        c.AcquireUnits(country="SE", units=1000, on=date(2021, 7, 1), ref="deed-se"),
        c.AcquireUnits(country="NL", units=500, on=date(2021, 7, 1)),
        c.AcquireUnits(country="DE", units=300, on=date(2021, 10, 1)),
        c.DisposeUnits(country="SE", units=200, on=date(2021, 11, 15)),
        c.RegisterInitiative(id="gw-bissau-village", name="Bissau sustainable hub",
                             country="GW", programme="family-like alternative care"),
        c.RegisterInitiative(id="nl-siblings-together", name="Siblings together",
                             country="NL", programme="family-like alternative care"),
        c.RegisterInitiative(id="se-youth-jobs", name="Youth employability", country="SE",
                             programme="youth employability"),
        c.PledgeDonation(year=2021),
        c.AllocateFunds(initiative="gw-bissau-village", year=2021, amount="50000.00",
                        allocation_id="a-gw-2021"),
        c.AllocateFunds(initiative="nl-siblings-together", year=2021, amount="20000.00",
                        allocation_id="a-nl-2021"),
        c.AllocateFunds(initiative="se-youth-jobs", year=2021, amount="10000.00",
                        allocation_id="a-se-2021"),
        c.ReleaseAllocation(id="a-se-2021", amount="5000.00", reason="scope reduced"),
        c.RecordMilestone(initiative="gw-bissau-village", name="solar panels installed",
                          on=date(2021, 12, 1), evidence="photo-17"),
        c.ReceiveDonation(year=2021, amount="80602.74", on=date(2022, 1, 15)),
        c.AcquireUnits(country="DK", units=365, on=date(2022, 7, 2)),
        c.PledgeDonation(year=2022),
        c.ReceiveDonation(year=2022, amount="100000.00", on=date(2022, 6, 30)),
        c.AllocateFunds(initiative="gw-bissau-village", year=2022, amount="100000.00",
                        allocation_id="a-gw-2022"),
        c.AllocateFunds(initiative="nl-siblings-together", year=2022, amount="30000.00",
                        allocation_id="a-nl-2022"),
        c.DisburseFunds(initiative="gw-bissau-village", amount="60000.00", on=date(2022, 2, 1)),
        c.DisburseFunds(initiative="nl-siblings-together", amount="15000.00",
                        on=date(2022, 3, 1)),
        c.DisburseFunds(initiative="se-youth-jobs", amount="5000.00", on=date(2022, 3, 1)),
        c.CloseInitiative(id="se-youth-jobs", on=date(2022, 6, 30), reason="completed"),
    ]  # fmt: skip


# Reading what was stored.


def assert_chain_intact(store: LedgerStore) -> int:
    """The stored chain is intact (versions 1, 2, 3... at increasing positions, each
    fact continuing the one before it); the number of facts."""
    problems = list(store.chain_problems())
    assert problems == [], problems
    return sum(1 for _ in store.notifications())


def dump_projections(db: ProjectionDB) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's content, sorted: what 'equal projections' means."""
    with db.read() as tx:
        return {
            table.name: sorted(tx.query(f"SELECT * FROM {table.name}"), key=repr)
            for table in all_tables() if table.name != "hl_proj_meta"
        }  # fmt: skip


def one_line(text: str) -> str:
    """The only line of `text` (a failure is one line on stderr)."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]
