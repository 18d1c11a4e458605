"""Racing writers: separate processes allocate the last 1000.00 of a year at once.

Each worker is a process of its own ('spawn': nothing inherited but arguments) that
builds its own application from the store URL, loads the ledger, waits on a barrier
with the others and then allocates as fast as it can. Whatever interleaving results,
the year's allocations never exceed its pledge, every accepted allocation is in the
store and nothing else is, every refusal names the allocation rule (or concurrency),
and a command id raced by every worker is recorded exactly once.

Concurrent opens of one store, and writers racing with one command id, have tests
of their own.
"""

from __future__ import annotations

import multiprocessing
import threading
from decimal import Decimal
from typing import Any

import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import StoreUnavailableError
from homeledger.cli.bootstrap import build_application, open_store
from homeledger.domain import commands as c
from homeledger.domain import reference_case
from homeledger.domain.errors import DomainError
from tests.helpers import assert_chain_intact
from tests.workers import gather

pytestmark = pytest.mark.slow

YEAR = 2021
LEFT = Decimal("1000.00")  # what the year's pledge exceeds its allocations by
INITIATIVES = ("gw-bissau-village", "nl-siblings-together", "pl-youth-employability")
SHARED_ID = "raced-by-everyone"
ACCEPTABLE_REFUSALS = {"AllocationExceedsUnallocatedError", "ConcurrencyError"}
Outcome = tuple[str, str, str, str]  # command id, amount, outcome, event id or message


def shared_command() -> c.AllocateFunds:
    """The same command with the same id, sent by every worker (in another year)."""
    return c.AllocateFunds(
        initiative="gw-bissau-village", year=YEAR + 1, amount="10.00", command_id=SHARED_ID
    )


def worker_plan(worker: int) -> list[tuple[str, str]]:
    """Even workers open with a bid for all that is left; every worker bids 250.00 often."""
    plan = [(f"w{worker}-all", "1000.00")] if worker % 2 == 0 else []
    plan += [(f"w{worker}-q{i}", "250.00") for i in range(4)]
    return plan


def explain(error: BaseException) -> str:
    """The error and every error behind it, for the test's failure message."""
    chain: list[str] = []
    cause: BaseException | None = error
    while cause is not None:
        chain.append(f"{type(cause).__module__}.{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    return " <- ".join(chain)


def attempt(app: LedgerApplication, command: c.AllocateFunds) -> Outcome:
    key, amount = str(command.command_id), str(command.amount)
    try:
        (envelope,) = app.execute(command)
    except DomainError as refusal:
        return key, amount, type(refusal).__name__, refusal.message
    except Exception as failure:  # noqa: BLE001 - any other failure fails the test
        return key, amount, type(failure).__name__, explain(failure)
    return key, amount, "accepted", envelope.event_id


def allocate(url: str, worker: int, shared: bool, opening: Any, barrier: Any, results: Any) -> None:
    """One racing writer; reports every outcome instead of raising."""
    outcomes: list[Outcome] = []
    try:
        # Opened one at a time: concurrent opens of a PostgreSQL store fail (see
        # test_processes_open_a_postgres_store_at_once); the race here is of writes.
        with opening:
            app = build_application(Settings(store=url, actor=f"worker-{worker}"))
            app.refreshed_state()  # everyone starts from the same, soon stale, state
        barrier.wait(timeout=60)
        commands: list[c.AllocateFunds] = [shared_command()] if shared else []
        commands += [
            c.AllocateFunds(
                initiative=INITIATIVES[(worker + i) % len(INITIATIVES)],
                year=YEAR,
                amount=amount,
                command_id=command_id,
            )
            for i, (command_id, amount) in enumerate(worker_plan(worker))
        ]
        outcomes += [attempt(app, command) for command in commands]
        app.store.close()
    except Exception as crash:  # noqa: BLE001 - reported to the test, which fails on it
        outcomes.append(("", "", "crashed", explain(crash)))
    results.put((worker, outcomes))


def set_up(url: str) -> int:
    """110,000 homes, pledges of 11,000,000.00; 2021 allocated to 1000.00 short of it."""
    app = build_application(Settings(store=url, actor="setup"))
    commands: list[c.Command] = [
        reference_case.partnership(),
        c.AcquireUnits(country="SE", units=60_000, on="2021-07-01"),
        c.AcquireUnits(country="DE", units=50_000, on="2021-07-01"),
        c.PledgeDonation(year=YEAR),
        c.PledgeDonation(year=YEAR + 1),
    ]
    commands += [
        c.RegisterInitiative(id=key, name=key, country="GW", programme="family strengthening")
        for key in INITIATIVES
    ]
    app.execute_batch(commands)
    book = app.refreshed_state().ledger.years[YEAR]
    assert book.pledged == Decimal("11000000.00")
    app.execute(
        c.AllocateFunds(initiative=INITIATIVES[0], year=YEAR, amount=str(book.pledged - LEFT))
    )
    assert app.refreshed_state().ledger.years[YEAR].unallocated == LEFT
    position = app.store.max_position()
    app.store.close()
    return position


def race(url: str, workers: int, shared: bool) -> dict[int, list[Outcome]]:
    context = multiprocessing.get_context("spawn")
    opening, barrier, results = context.Lock(), context.Barrier(workers), context.Queue()
    processes = [
        context.Process(target=allocate, args=(url, worker, shared, opening, barrier, results))
        for worker in range(workers)
    ]
    outcomes: dict[int, list[Outcome]] = gather(processes, results, timeout=120)
    return outcomes


def check_race(
    url: str, setup_position: int, outcomes: dict[int, list[Outcome]], shared: bool
) -> None:
    flat = [outcome for reported in outcomes.values() for outcome in reported]
    crashes = [o for o in flat if o[2] == "crashed"]
    assert not crashes, "\n".join(o[3] for o in crashes)
    refused = [o for o in flat if o[2] != "accepted"]
    unexpected = [o for o in refused if o[2] not in ACCEPTABLE_REFUSALS]
    assert not unexpected, "\n".join(map(str, unexpected))
    assert all("2021 unallocated balance" in o[3] for o in refused if o[0] != SHARED_ID)

    # The command raced by everyone was recorded once, and everyone got that one answer.
    answers = [o for o in flat if o[0] == SHARED_ID]
    assert len(answers) == (len(outcomes) if shared else 0)
    assert {o[2] for o in answers} <= {"accepted"}
    assert len({o[3] for o in answers}) == int(shared)

    app = build_application(Settings(store=url, actor="checker"))
    try:
        recorded = list(app.store.envelopes(start=setup_position + 1))
        allocated = [e for e in recorded if e.type == "FundsAllocated"]
        assert len(recorded) == len(allocated)
        assert [e.command_id for e in allocated].count(SHARED_ID) == int(shared)
        in_store = {e.command_id: e for e in allocated if e.data["year"] == YEAR}
        accepted = {o[0]: o for o in flat if o[2] == "accepted" and o[0] != SHARED_ID}
        assert set(in_store) == set(accepted)
        assert all(in_store[key].event_id == accepted[key][3] for key in accepted)

        won = sum((Decimal(o[1]) for o in accepted.values()), Decimal("0.00"))
        held = sum((Decimal(e.data["amount"]) for e in in_store.values()), Decimal("0.00"))
        assert won == held <= LEFT
        if not any(o[2] == "ConcurrencyError" for o in refused):
            # A bid of 250.00 is only refused when nothing is left: all was taken.
            assert won == LEFT
        book = app.refreshed_state().ledger.years[YEAR]
        assert book.committed <= book.pledged
        assert book.unallocated == LEFT - won

        assert assert_chain_intact(app.store) == app.refreshed_state().version
    finally:
        app.store.close()


@pytest.mark.postgres
def test_eight_processes_race_for_the_last_thousand_on_postgres(pg_url: str) -> None:
    setup_position = set_up(pg_url)
    check_race(pg_url, setup_position, race(pg_url, workers=8, shared=False), shared=False)


def test_four_processes_race_for_the_last_thousand_on_sqlite(sqlite_url: str) -> None:
    setup_position = set_up(sqlite_url)
    check_race(sqlite_url, setup_position, race(sqlite_url, workers=4, shared=True), shared=True)


def open_repeatedly(url: str, barrier: Any, results: Any) -> None:
    failures: list[str] = []
    try:
        barrier.wait(timeout=60)
        for _ in range(5):
            try:
                open_store(Settings(store=url)).close()
            except StoreUnavailableError as error:
                failures.append(str(error))
    finally:
        results.put(failures)


@pytest.mark.postgres
def test_processes_open_a_postgres_store_at_once(pg_url: str) -> None:
    open_store(Settings(store=pg_url)).close()  # the tables exist before the race
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(8), context.Queue()
    processes = [
        context.Process(target=open_repeatedly, args=(pg_url, barrier, results)) for _ in range(8)
    ]
    for process in processes:
        process.start()
    failures = [failure for _ in processes for failure in results.get(timeout=120)]
    for process in processes:
        process.join(timeout=30)
    results.close()
    results.join_thread()
    assert not failures, f"{len(failures)} of 40 opens failed: {failures[0]}"


def test_writers_racing_with_one_command_id(store_url: str, request: pytest.FixtureRequest) -> None:
    """Round after round, writers record a command of their own, then one they all send.

    Threads, each with its own application and connections, so the rounds stay in step.
    """
    writers, rounds = 6, 10
    apps = [
        build_application(Settings(store=store_url, actor=f"writer-{i}")) for i in range(writers)
    ]
    apps[0].execute(
        reference_case.partnership()
    )
    answers: dict[str, set[str]] = {}
    failures: list[str] = []

    def write(app: LedgerApplication, writer: int, round_: int, barrier: threading.Barrier) -> None:
        barrier.wait(timeout=60)
        for key in (f"own-{writer}", "shared"):
            command = c.AcquireUnits(
                country="SE", units=1, on="2021-07-01", command_id=f"{key}-{round_}"
            )
            try:
                (envelope,) = app.execute(command)
            except Exception as failure:  # noqa: BLE001 - collected, the test fails on it
                failures.append(explain(failure))
            else:
                answers.setdefault(str(command.command_id), set()).add(envelope.event_id)

    try:
        for round_ in range(rounds):
            barrier = threading.Barrier(writers)
            threads = [
                threading.Thread(target=write, args=(app, i, round_, barrier))
                for i, app in enumerate(apps)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        recorded = list(apps[0].store.envelopes(types=["UnitsAcquired"]))
    finally:
        for app in apps:
            app.store.close()

    assert not failures, f"{len(failures)} writes failed, the first: {failures[0]}"
    assert len(recorded) == rounds * (writers + 1)
    assert len({e.command_id for e in recorded}) == len(recorded)
    assert all(len(event_ids) == 1 for event_ids in answers.values())
    assert {e.command_id: {e.event_id} for e in recorded} == answers
