"""Racing reversals never both pass, on SQLite and PostgreSQL.

Two reversals of one fact, or a reversal of an acquisition racing a disposal that needs
the homes it brought: the rules are in `Ledger.admit` and every fact is appended with
the ledger's optimistic-concurrency check, so the writer that comes second conflicts,
decides again on fresh state and is refused.

First with two applications whose decision states are made stale on purpose (every
interleaving the race can take, deterministically), then with processes racing at a
barrier.
"""

from __future__ import annotations

import multiprocessing
from datetime import date
from typing import Any

import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from homeledger.domain import commands as c
from homeledger.domain import errors as err
from homeledger.domain import reference_case
from homeledger.domain.errors import DomainError
from homeledger.projections.db import ProjectionDB
from homeledger.projections.runner import ProjectionRunner
from homeledger.projections.verify import verify
from tests.helpers import assert_chain_intact
from tests.workers import gather

# SE: 1,000 homes from the start; DE: 300 acquired on 1 October 2021 (the fact raced for),
# of which a disposal of 250 on 1 December 2021 would need all but 50.
SETUP = [
    reference_case.partnership(),
    c.AcquireUnits(country="SE", units=1000, on=date(2021, 7, 1)),
    c.AcquireUnits(country="DE", units=300, on=date(2021, 10, 1)),
    c.PledgeDonation(year=2021, on=date(2021, 7, 1)),
    c.ReceiveDonation(year=2021, amount="5000.00", on=date(2021, 12, 15)),
]
ACQUISITION, RECEIPT = 3, 5
DISPOSAL = c.DisposeUnits(country="DE", units=250, on=date(2021, 12, 1))


def reverse(position: int, worker: int = 0) -> c.ReverseFact:
    return c.ReverseFact(id=str(position), reason=f"worker {worker}", on=date(2022, 1, 10))


def set_up(url: str) -> None:
    app = build_application(Settings(store=url, actor="setup"))
    try:
        app.execute_batch(SETUP)
        assert app.store.max_position() == len(SETUP)
    finally:
        app.store.close()


def stale_pair(url: str) -> tuple[LedgerApplication, LedgerApplication]:
    """Two writers that both loaded the ledger before either records."""
    first, second = (build_application(Settings(store=url, actor=f"writer-{i}"))
                     for i in (1, 2))  # fmt: skip
    first.refreshed_state(), second.refreshed_state()
    return first, second


def check_store(url: str, recorded: int) -> None:
    app = build_application(Settings(store=url, actor="checker"))
    db = ProjectionDB(app.store.location)
    try:
        assert assert_chain_intact(app.store) == len(SETUP) + recorded
        assert verify(app.store, db, ProjectionRunner(app.store, db)).ok
        ledger = app.refreshed_state().ledger
        assert ledger.portfolio.lowest_from("DE", date(2021, 7, 1)) >= 0
        assert ledger.year(2021).received >= 0
    finally:
        db.close()
        app.store.close()


RACES = {
    "reversal-reversal": (reverse(RECEIPT, 1), reverse(RECEIPT, 2), err.AlreadyReversedError),
    "reversal-then-disposal": (reverse(ACQUISITION), DISPOSAL, err.InsufficientUnitsError),
    "disposal-then-reversal": (DISPOSAL, reverse(ACQUISITION), err.InsufficientUnitsError),
}


@pytest.mark.parametrize("race", sorted(RACES))
def test_the_second_of_two_stale_writers_is_refused(store_url: str, race: str) -> None:
    set_up(store_url)
    winner, loser = stale_pair(store_url)
    first, second, refusal = RACES[race]
    try:
        (recorded,) = winner.execute(first)
        assert loser.state().version == len(SETUP)  # it decides on what it loaded: stale
        with pytest.raises(refusal):
            loser.execute(second)
        assert loser.store.max_position() == recorded.position
    finally:
        winner.store.close()
        loser.store.close()
    check_store(store_url, recorded=1)


# Processes at a barrier.


def race_worker(url: str, worker: int, command: c.Command, opening: Any, barrier: Any,
                results: Any) -> None:  # fmt: skip
    """One racing writer; reports its outcome instead of raising."""
    outcome: tuple[str, str]
    try:
        with opening:  # opened one at a time: the race is of the writes
            app = build_application(Settings(store=url, actor=f"worker-{worker}"))
            app.refreshed_state()
        barrier.wait(timeout=60)
        try:
            app.execute(command)
            outcome = ("accepted", "")
        except DomainError as refused:
            outcome = (type(refused).__name__, refused.message)
        app.store.close()
    except Exception as crash:  # noqa: BLE001 - reported to the test, which fails on it
        outcome = ("crashed", f"{type(crash).__name__}: {crash}")
    results.put((worker, [outcome]))


def race(url: str, commands: list[c.Command]) -> list[tuple[str, str]]:
    context = multiprocessing.get_context("spawn")
    opening, barrier, results = context.Lock(), context.Barrier(len(commands)), context.Queue()
    processes = [
        context.Process(target=race_worker,
                        args=(url, worker, command, opening, barrier, results))
        for worker, command in enumerate(commands)
    ]  # fmt: skip
    reported = gather(processes, results, timeout=120)
    return [reported[worker][0] for worker in sorted(reported)]


@pytest.mark.slow
def test_processes_reversing_one_fact_record_one_reversal(store_url: str) -> None:
    set_up(store_url)
    outcomes = race(store_url, [reverse(RECEIPT, worker) for worker in range(4)])
    assert [o[0] for o in outcomes].count("accepted") == 1, outcomes
    assert {o[0] for o in outcomes} <= {"accepted", "AlreadyReversedError", "ConcurrencyError"}
    check_store(store_url, recorded=1)


@pytest.mark.slow
def test_a_reversal_racing_a_disposal_that_needs_its_homes(store_url: str) -> None:
    set_up(store_url)
    outcomes = race(store_url, [reverse(ACQUISITION), DISPOSAL])
    assert [o[0] for o in outcomes].count("accepted") == 1, outcomes
    assert {o[0] for o in outcomes} <= {"accepted", "InsufficientUnitsError", "ConcurrencyError"}
    check_store(store_url, recorded=1)
