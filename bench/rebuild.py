"""Projection rebuild benchmark.

    python -m bench.rebuild --events 100000 [--store sqlite|postgres]


1. Fills a fresh store with a synthetic but rule-abiding history (LedgerApplication.
   execute_batch, 1,000 commands per batch): homes acquired and disposed of across 20
   countries, initiatives registered and closed, a pledge per year, allocations,
   releases, receipts, disbursements and milestones.
2. In a child process (so that its peak RSS is the rebuild's own): the raw baseline
   (the recorder's select_notifications in pages plus the JSON decode of every event),
   a full rebuild of every projection from position 0, and `balances --as-of-position N`
   at random N, through the reader and through the CLI as a user would run it.
3. Prints a table and merges the numbers into bench/results/rebuild.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import open_store
from homeledger.domain import commands as c
from homeledger.domain.pledge import compute_pledge
from homeledger.domain.portfolio import Portfolio

RESULTS = Path(__file__).parent / "results" / "rebuild.json"
BATCH = 1000
COUNTRIES = ("SE", "DE", "NL", "DK", "NO", "FI", "PL", "CZ", "AT", "BE", "FR", "ES", "IT",
             "PT", "IE", "GB", "EE", "LV", "LT", "GW")  # fmt: skip
RATE_CENTS = 10_000
START = date(2021, 7, 1)
EVENTS_PER_YEAR = 100_000
# Share of each kind of fact after a year's homes, initiatives and pledge.
MIX = (("disburse", 30), ("receive", 25), ("allocate", 6), ("release", 3), ("milestone", 14),
       ("acquire", 14), ("dispose", 8))  # fmt: skip


def cents(amount: int) -> str:
    return f"{amount // 100}.{amount % 100:02d}"


@dataclass
class _Book:
    """What the generator needs to stay within the rules."""

    portfolio: Portfolio = field(default_factory=Portfolio)
    held: dict[str, int] = field(default_factory=dict)  # on 31 December of the year
    incoming: dict[str, int] = field(default_factory=dict)  # acquired for next year
    unallocated: int = 0
    outstanding: dict[int, int] = field(default_factory=dict)
    available: dict[str, int] = field(default_factory=dict)
    open: list[str] = field(default_factory=list)
    allocations: list[tuple[str, str, int]] = field(default_factory=list)  # id, initiative, cents
    milestones: int = 0


def synthetic_commands(total: int, seed: int = 7) -> Iterator[c.Command]:
    """About `total` valid commands (one fact each), deterministic for a seed."""
    rnd = random.Random(seed)
    book = _Book()
    yield c.EstablishPartnership(donor="Heimstaden", beneficiary="SOS Children's Villages",
                                 rate=cents(RATE_CENTS), currency="EUR", basis="pro-rata",
                                 start=START)  # fmt: skip
    produced, year = 1, START.year
    per_year = min(EVENTS_PER_YEAR, max(50, total // 3))
    while produced < total:
        for command in _year(rnd, book, year, min(per_year, total - produced)):
            produced += 1
            yield command
        year += 1


def _year(rnd: random.Random, book: _Book, year: int, budget: int) -> Iterator[c.Command]:
    for country, units in book.incoming.items():
        book.held[country] = book.held.get(country, 0) + units
    book.incoming.clear()
    first = max(date(year, 1, 1), START)
    days = (date(year, 12, 31) - first).days
    for _ in range(max(1, budget // 200)):
        country = rnd.choice(COUNTRIES)
        units, on = rnd.randint(50, 2000), first + timedelta(days=rnd.randint(0, days // 2))
        book.portfolio.apply(country, on, units)
        book.held[country] = book.held.get(country, 0) + units
        yield c.AcquireUnits(country=country, units=units, on=on, ref=f"deal-{year}-{units}")
    for n in range(max(1, budget // 500)):
        slug = f"i-{year}-{n}"
        book.open.append(slug)
        book.available[slug] = 0
        yield c.RegisterInitiative(id=slug, name=f"Initiative {n} of {year}",
                                   country=rnd.choice(COUNTRIES),
                                   programme="family strengthening")  # fmt: skip
    pledge = compute_pledge(book.portfolio, "pro-rata", RATE_CENTS, year, START).amount_cents
    book.unallocated, book.outstanding[year] = pledge, pledge
    yield c.PledgeDonation(year=year)
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    rest = budget - max(1, budget // 200) - max(1, budget // 500) - 1
    for index in range(rest):
        yield _fact(rnd, book, year, rnd.choice(kinds), index, first, days)


def _fact(rnd: random.Random, book: _Book, year: int, kind: str, index: int, first: date,
          days: int) -> c.Command:  # fmt: skip
    on = first + timedelta(days=rnd.randint(0, days))
    if kind == "allocate" and book.unallocated >= 1000:
        slug, amount = rnd.choice(book.open), rnd.randint(1000, min(book.unallocated, 500_000))
        book.unallocated -= amount
        book.available[slug] += amount
        book.allocations.append((f"a-{year}-{index}", slug, amount))
        return c.AllocateFunds(initiative=slug, year=year, amount=cents(amount),
                               allocation_id=book.allocations[-1][0])  # fmt: skip
    if kind == "release" and book.allocations:
        allocation, slug, allocated = book.allocations[-1]
        limit = min(allocated, book.available[slug]) // 2
        if limit >= 100 and allocation.startswith(f"a-{year}-"):
            amount = rnd.randint(100, limit)
            book.available[slug] -= amount
            book.unallocated += amount
            book.allocations.pop()  # released once: never more than it still holds
            return c.ReleaseAllocation(id=allocation, amount=cents(amount), reason="re-planned")
    if kind == "disburse":
        funded = [s for s in book.open[-20:] if book.available[s] >= 100]
        if funded:
            slug = rnd.choice(funded)
            amount = rnd.randint(100, min(book.available[slug], 200_000))
            book.available[slug] -= amount
            return c.DisburseFunds(initiative=slug, amount=cents(amount), on=on)
    if kind == "receive" and book.outstanding[year] >= 100:
        amount = rnd.randint(100, min(book.outstanding[year], 300_000))
        book.outstanding[year] -= amount
        return c.ReceiveDonation(year=year, amount=cents(amount), on=on)
    if kind == "dispose":
        country = rnd.choice(COUNTRIES)
        if book.held.get(country, 0) > 10:
            units = rnd.randint(1, book.held[country] // 10)
            book.held[country] -= units
            book.portfolio.apply(country, date(year, 12, 31), -units)
            return c.DisposeUnits(country=country, units=units, on=date(year, 12, 31))
    if kind == "acquire" and year > START.year:  # next year's homes: no effect on this pledge
        country, units = rnd.choice(COUNTRIES), rnd.randint(1, 50)
        on = date(year + 1, 1, 1) + timedelta(days=rnd.randint(0, 180))
        book.portfolio.apply(country, on, units)
        book.incoming[country] = book.incoming.get(country, 0) + units
        return c.AcquireUnits(country=country, units=units, on=on)
    book.milestones += 1
    return c.RecordMilestone(initiative=rnd.choice(book.open), name=f"milestone {book.milestones}",
                             on=on)  # fmt: skip


class _Clock:
    """Recorded times a minute apart per batch, after every effective date the synthetic
    history holds (ten years of 100,000 events from 2021 on): a fact is never effective
    after the day it is recorded."""

    def __init__(self) -> None:
        self.now = datetime(2033, 1, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def fill(url: str, events: int, seed: int = 7, batch: int = BATCH) -> float:
    """Record about `events` facts; the seconds it took."""
    store = open_store(Settings(store=url))
    # Snapshots of the ledger state are a cache the bench does not need: none.
    app = LedgerApplication(store, actor="bench", clock=_Clock(), snapshot_every=0)
    started = time.perf_counter()
    pending: list[c.Command] = []
    for command in synthetic_commands(events, seed):
        pending.append(command)
        if len(pending) == batch:
            app.execute_batch(pending)
            pending = []
    if pending:
        app.execute_batch(pending)
    seconds = time.perf_counter() - started
    store.close()
    return seconds


# The measurements, in a child process.


def measure(url: str, samples: int, seed: int) -> dict[str, Any]:
    from homeledger.projections.as_of import PointInTime
    from homeledger.projections.db import ProjectionDB
    from homeledger.projections.runner import ProjectionRunner

    store = open_store(Settings(store=url), create=False)
    head = store.max_position()
    started = time.perf_counter()
    count = 0
    for notification in store.notifications(1, head):
        store.decode_body(notification)
        count += 1
    raw = time.perf_counter() - started
    db = ProjectionDB(store.location)
    runner = ProjectionRunner(store, db)
    started = time.perf_counter()
    rebuilt = runner.rebuild()
    rebuild = time.perf_counter() - started
    rss_mb = peak_rss_mb()
    reader = PointInTime(store, db)
    rnd = random.Random(seed)
    positions = sorted(rnd.randint(1, head) for _ in range(samples))
    timings = []
    for position in positions:
        started = time.perf_counter()
        reader.balances(position).rows("year")
        timings.append(time.perf_counter() - started)
    cli = [_cli_as_of(url, position) for position in positions[:3]]
    db.close()
    store.close()
    return {
        "events": count, "head": head, "raw_seconds": raw, "raw_rate": count / raw,
        "rebuild_events": rebuilt, "rebuild_seconds": rebuild, "rebuild_rate": rebuilt / rebuild,
        "rebuild_vs_raw": (rebuilt / rebuild) / (count / raw), "peak_rss_mb": rss_mb,
        "as_of_positions": positions, "as_of_seconds_median": sorted(timings)[len(timings) // 2],
        "as_of_seconds_max": max(timings), "as_of_cli_seconds_max": max(cli),
    }  # fmt: skip


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM). Linux's ru_maxrss survives exec, so
    a child started by a large parent would report the parent's peak instead."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cli_as_of(url: str, position: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "homeledger.cli", "--store", url,
         "--format", "json", "balances", "--as-of-position", str(position)],
        check=True, capture_output=True, env={**os.environ, "PYTHONPATH": _root()},
    )  # fmt: skip
    return time.perf_counter() - started


def _root() -> str:
    return str(Path(__file__).resolve().parent.parent)


# Stores.


def _pg_admin() -> Any:
    import psycopg

    return psycopg.connect(
        host=os.environ.get("HOMELEDGER_TEST_PG_HOST", "127.0.0.1"),
        port=int(os.environ.get("HOMELEDGER_TEST_PG_PORT", "5432")),
        user=os.environ.get("HOMELEDGER_TEST_PG_USER", "postgres"), dbname="postgres",
        autocommit=True,
    )  # fmt: skip


def new_store(kind: str, folder: Path) -> tuple[str, Any]:
    """A fresh store URL and the function that removes it."""
    if kind == "sqlite":
        path = folder / f"bench-{uuid.uuid4().hex[:8]}.db"

        def remove() -> None:
            for file in folder.glob(path.name + "*"):
                file.unlink()

        return f"sqlite:///{path}", remove
    name = f"hl_bench_{uuid.uuid4().hex[:8]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    user = os.environ.get("HOMELEDGER_TEST_PG_USER", "postgres")
    host = os.environ.get("HOMELEDGER_TEST_PG_HOST", "127.0.0.1")
    port = os.environ.get("HOMELEDGER_TEST_PG_PORT", "5432")
    return f"postgresql://{user}@{host}:{port}/{name}", drop


def run(kind: str, events: int, samples: int, seed: int, keep: bool) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="hl-bench-"))
    url, remove = new_store(kind, folder)
    try:
        filled = fill(url, events, seed)
        child = subprocess.run(
            [sys.executable, "-m", "bench.rebuild", "--measure", url, "--samples", str(samples),
             "--seed", str(seed)],
            check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": _root()},
        )  # fmt: skip
        result: dict[str, Any] = json.loads(child.stdout)
    finally:
        if not keep:
            remove()
    result.update(store=kind, fill_seconds=filled, fill_rate=result["events"] / filled)
    return result


def report(result: dict[str, Any]) -> str:
    rows = [
        ("store", result["store"]),
        ("events", f"{result['events']:,}"),
        ("fill (execute_batch)", f"{result['fill_rate']:,.0f} events/s"),
        ("raw baseline (select + JSON)", f"{result['raw_rate']:,.0f} events/s"),
        ("full rebuild", f"{result['rebuild_rate']:,.0f} events/s "
                         f"({result['rebuild_seconds']:.1f} s, "
                         f"{result['rebuild_vs_raw']:.0%} of raw)"),
        ("peak RSS (rebuild process)", f"{result['peak_rss_mb']:,.0f} MB"),
        ("balances as-of N (reader)", f"median {result['as_of_seconds_median'] * 1000:,.0f} ms, "
                                      f"max {result['as_of_seconds_max'] * 1000:,.0f} ms"),
        ("balances --as-of-position (CLI)", f"max {result['as_of_cli_seconds_max']:.2f} s"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def save(result: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    saved[f"{result['store']}-{result['events']}"] = result
    RESULTS.write_text(json.dumps(saved, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rebuild", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--samples", type=int, default=20, help="as-of positions to time")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the filled store")
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.samples, args.seed)))
        return
    result = run(args.store, args.events, args.samples, args.seed, args.keep)
    print(report(result))
    save(result)
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
