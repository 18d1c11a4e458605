"""Recording and reading throughput: homeledger against the eventsourcing library alone.

    python -m bench.record --events 10000 [--store sqlite|postgres|both]

For each store kind, in the same run and on the same kind of store:

- baseline: an `eventsourcing.application.Application` with a trivial aggregate, one
  event saved per transaction, N events; read back with the recorder's
  `select_notifications` and the application's mapper;
- homeledger: N commands through `LedgerApplication.execute`, one per transaction (an
  allocation of 1.00 to one of a few initiatives, after an untimed setup of the
  partnership, its homes, the pledge and the initiatives); read back with
  `LedgerStore.envelopes`.

Each side gets its own store: an SQLite file in a temporary folder, or a PostgreSQL
database created for the run and dropped afterwards. Results are printed as a table
and written to bench/results/record.json. Timings are measurements, never checks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from homeledger.adapters.settings import Settings, redact_url, store_location
from homeledger.adapters.store import StoreUnavailableError, library_env
from homeledger.cli.bootstrap import build_application
from homeledger.domain import commands as c

RESULTS = Path(__file__).parent / "results" / "record.json"
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PAGE = 1000
INITIATIVES = (
    "gw-bissau-village",
    "nl-siblings-together",
    "pl-youth-employability",
    "de-family-strengthening",
    "dk-family-strengthening",
)
HOMES = {
    "SE": 40_000,
    "DE": 25_000,
    "NL": 15_000,
    "DK": 12_000,
    "PL": 8_000,
    "NO": 5_000,
    "CZ": 3_000,
    "FI": 2_000,
}


# The baseline: the library alone.


class Counter(Aggregate):
    """The most trivial aggregate: one kind of event, one integer of state."""

    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


class BaselineApplication(Application[Any]):
    # Its own name: on PostgreSQL its table is "homeledgerbenchbaseline_events".
    name = "HomeledgerBenchBaseline"


@dataclass
class Timing:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("inf")


def baseline_env(store_url: str) -> dict[str, str]:
    """The library's own settings for the store, with homeledger's connection settings
    (pool, timeouts) so that both sides connect alike, and the library's own recorder."""
    env = library_env(store_location(store_url))
    env.pop("APPLICATION_RECORDER_TOPIC")
    env["IS_SNAPSHOTTING_ENABLED"] = "no"
    env["CREATE_TABLE"] = "y"  # homeledger creates its own tables serially; the library its own
    return env


def run_baseline(store_url: str, events: int) -> tuple[Timing, Timing]:
    app = BaselineApplication(env=baseline_env(store_url))
    try:
        started = perf_counter()
        counter = Counter()
        app.save(counter)
        for _ in range(events - 1):
            counter.increment()
            app.save(counter)  # one event, one transaction
        recorded = Timing(events, perf_counter() - started)

        started, count, start = perf_counter(), 0, 1
        while True:
            rows = app.recorder.select_notifications(start, PAGE)
            for row in rows:
                app.mapper.to_domain_event(row)
                count += 1
            if len(rows) < PAGE:
                break
            start = rows[-1].id + 1
        read = Timing(count, perf_counter() - started)
    finally:
        app.close()
    check_count("baseline", count, events)
    return recorded, read


def check_count(side: str, read: int, expected: int) -> None:
    if read != expected:
        raise RuntimeError(f"{side} read back {read} events where {expected} were recorded")


# homeledger.


def setup_commands() -> list[c.Command]:
    commands: list[c.Command] = [
        c.EstablishPartnership(
            donor="Heimstaden",
            beneficiary="SOS Children's Villages",
            rate="100.00",
            currency="EUR",
            basis="year-end",
            start="2021-07-01",
        ),
        *[c.AcquireUnits(country=cc, units=n, on="2021-07-01") for cc, n in HOMES.items()],
        c.PledgeDonation(year=2021),
    ]
    commands += [
        c.RegisterInitiative(
            id=key, name=key, country=key[:2].upper(), programme="family strengthening"
        )
        for key in INITIATIVES
    ]
    return commands


def run_homeledger(store_url: str, events: int, snapshot_every: int) -> tuple[Timing, Timing]:
    settings = Settings(store=store_url, actor="bench", ledger_snapshot_every=snapshot_every)
    app = build_application(settings)
    try:
        for command in setup_commands():
            app.execute(command)
        commands = [
            c.AllocateFunds(
                initiative=INITIATIVES[i % len(INITIATIVES)],
                year=2021,
                amount="1.00",
                command_id=f"bench-{i}",
            )
            for i in range(events)
        ]
        started = perf_counter()
        for command in commands:
            app.execute(command)  # one command, one event, one transaction
        recorded = Timing(events, perf_counter() - started)

        started = perf_counter()
        count = sum(1 for _ in app.store.envelopes())
        read = Timing(count, perf_counter() - started)
    finally:
        app.store.close()
    check_count("homeledger", count, events + len(setup_commands()))
    return recorded, read


# Stores.


@contextmanager
def sqlite_stores() -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="homeledger-bench-") as folder:
        yield f"sqlite:///{folder}/baseline.db", f"sqlite:///{folder}/homeledger.db"


@contextmanager
def postgres_stores(admin_url: str) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:12]
    names = [f"hl_bench_baseline_{suffix}", f"hl_bench_ledger_{suffix}"]
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        parts = urlsplit(admin_url)
        yield tuple(urlunsplit(parts._replace(path=f"/{name}")) for name in names)  # type: ignore[misc]
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Result:
    store: str
    events: int
    baseline_events_per_s: float
    homeledger_events_per_s: float
    record_ratio: float  # homeledger / baseline: 0.5 means half the library's rate
    baseline_read_events_per_s: float
    homeledger_read_events_per_s: float
    read_ratio: float
    baseline_record_seconds: float
    homeledger_record_seconds: float
    baseline_read_seconds: float
    homeledger_read_seconds: float


def measure(kind: str, stores: Callable[[], Any], events: int, snapshot_every: int) -> Result:
    with stores() as (baseline_url, ledger_url):
        base_rec, base_read = run_baseline(baseline_url, events)
        hl_rec, hl_read = run_homeledger(ledger_url, events, snapshot_every)
    return Result(
        store=kind,
        events=events,
        baseline_events_per_s=round(base_rec.rate, 1),
        homeledger_events_per_s=round(hl_rec.rate, 1),
        record_ratio=round(hl_rec.rate / base_rec.rate, 3),
        baseline_read_events_per_s=round(base_read.rate, 1),
        homeledger_read_events_per_s=round(hl_read.rate, 1),
        read_ratio=round(hl_read.rate / base_read.rate, 3),
        baseline_record_seconds=round(base_rec.seconds, 3),
        homeledger_record_seconds=round(hl_rec.seconds, 3),
        baseline_read_seconds=round(base_read.seconds, 3),
        homeledger_read_seconds=round(hl_read.seconds, 3),
    )


def table(results: list[Result]) -> str:
    header = (
        "store",
        "baseline ev/s",
        "homeledger ev/s",
        "ratio",
        "baseline read ev/s",
        "homeledger read ev/s",
        "read ratio",
    )
    rows = [header] + [
        (
            r.store,
            f"{r.baseline_events_per_s:,.0f}",
            f"{r.homeledger_events_per_s:,.0f}",
            f"{r.record_ratio:.2f}",
            f"{r.baseline_read_events_per_s:,.0f}",
            f"{r.homeledger_read_events_per_s:,.0f}",
            f"{r.read_ratio:.2f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.record",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=10_000, help="N, events per side")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument(
        "--pg-admin",
        default=os.environ.get("HOMELEDGER_BENCH_PG_ADMIN", DEFAULT_PG_ADMIN),
        help="PostgreSQL URL of a database to connect to for CREATE/DROP DATABASE",
    )
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=Settings().snapshot_every,
        help="homeledger's snapshot interval (its default unless given)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results: list[Result] = []
    for kind in kinds:
        print(f"measuring {kind}: {args.events} events per side ...", file=sys.stderr)
        stores = sqlite_stores if kind == "sqlite" else partial(postgres_stores, args.pg_admin)
        try:
            results.append(measure(kind, stores, args.events, args.snapshot_every))
        except (psycopg.OperationalError, StoreUnavailableError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            print(
                f"{kind} store unavailable ({redact_url(args.pg_admin)}): {first}", file=sys.stderr
            )
            return 4
    print(table(results))
    report = {
        "benchmark": "record",
        "events": args.events,
        "snapshot_every": args.snapshot_every,
        "python": platform.python_version(),
        "eventsourcing": version("eventsourcing"),
        "platform": platform.platform(),
        "results": [asdict(r) for r in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
