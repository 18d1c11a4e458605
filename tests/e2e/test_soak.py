"""Soak: OS processes drive the real CLI against one ledger for a while, all at once.

After a shared setup (partnership, homes, pledges, receipts, initiatives, allocations
that leave little of each year unallocated), each worker is a process of its own
('spawn') that runs `homeledger` in-process (click's runner: the same entry point,
exit codes and stderr as the installed command) with random allocations, releases,
disbursements and repeats of its own earlier commands, against the same years and
initiatives, until HOMELEDGER_SOAK_SECONDS have passed and each has sent at least
MIN_COMMANDS (so that what the soak must have seen does not depend on the machine's
speed). Then:

- every refused command exited 3 with one stderr line naming a rule that fits the
  command (`store-busy` and `concurrent-change` are the documented retryable ones),
  every other command exited 0, and none printed a traceback;
- every exit-0 command's events are in the store, and nothing else is; a repeat of a
  command id answered with the very events the first recording stored;
- replaying every stored event through an independent check of the rules (written
  here, not the domain's code) finds no rule broken at any position;
- the projections agree with that check, equal a rebuild (`replay`), the trial
  balance is zero, and `verify` exits 0.

On PostgreSQL with 8 processes, on SQLite with 4. A third test holds SQLite's write
lock past the lock timeout: the command is refused with one `store-busy` line (exit 3),
records nothing, and succeeds when retried.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import sqlite3
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner, Result

from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from homeledger.cli.main import cli
from homeledger.domain import commands as c
from tests.helpers import CLI, partnership
from tests.workers import gather

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("HOMELEDGER_SOAK_SECONDS", "40"))
MIN_COMMANDS = 60  # per worker, however fast: enough for money to run short
YEARS = (2021, 2022)
INITIATIVES = ("gw-bissau-village", "nl-siblings", "pl-youth", "se-families")
LEFT = Decimal("1500000.00")  # what each year's setup leaves unallocated
REFUSAL = re.compile(r"^homeledger: refused \[([a-z-]+)\]: \S.*\n$")
RETRYABLE = {"store-busy", "concurrent-change"}
RULES = {
    "allocate": {"allocation-within-pledge"},
    "release": {"allocation-exists", "release-within-allocation"},
    "disburse": {"disbursement-within-allocation"},
    "repeat": set(),
}
Outcome = dict[str, Any]  # kind, args, exit code, stderr, event ids, first event ids


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


# Setup, in the test process.


def set_up(url: str) -> None:
    """Pledges of 11,000,000.00 a year, allocated to LEFT short, some of it received."""
    app = build_application(Settings(store=url, actor="setup"))
    commands: list[c.Command] = [
        partnership(start="2021-01-01"),
        c.AcquireUnits(country="SE", units=60_000, on="2021-01-01"),
        c.AcquireUnits(country="DE", units=50_000, on="2021-01-01"),
        *(c.PledgeDonation(year=year) for year in YEARS),
        c.ReceiveDonation(year=2021, amount="5000000.00", on="2021-12-15"),
        c.ReceiveDonation(year=2022, amount="1000000.00", on="2022-06-15"),
        *(c.RegisterInitiative(id=key, name=key, country="GW", programme="family strengthening")
          for key in INITIATIVES),
    ]  # fmt: skip
    # The last initiative gets little, so that disbursements to it run short too.
    small = Decimal("50000.00")
    share = (Decimal("11000000.00") - LEFT - small) / (len(INITIATIVES) - 1)
    commands += [
        c.AllocateFunds(initiative=key, year=year, allocation_id=f"base-{year}-{key}",
                        amount=small if key == INITIATIVES[-1] else share)
        for year in YEARS
        for key in INITIATIVES
    ]  # fmt: skip
    try:
        app.execute_batch(commands)
        for year in YEARS:
            assert app.refreshed_state().ledger.years[year].unallocated == LEFT
    finally:
        app.store.close()


# The workers, each in a process of its own.


def next_command(rnd: random.Random, worker: int, n: int, accepted: list[Outcome],
                 mine: list[str]) -> tuple[str, list[str]]:  # fmt: skip
    """The kind of command and its CLI arguments (a command id of its own)."""
    roll = rnd.random()
    cid = f"w{worker}-c{n}"
    if roll < 0.05 and accepted:
        return "repeat", list(rnd.choice(accepted)["args"])
    if roll < 0.45:
        return "allocate", [
            "allocate", "--initiative", rnd.choice(INITIATIVES), "--year", str(rnd.choice(YEARS)),
            "--amount", money(rnd.randint(100_000, 20_000_000)),
            "--allocation-id", f"w{worker}-a{n}", "--command-id", cid,
        ]  # fmt: skip
    if roll < 0.75:
        pick = rnd.random()
        if pick < 0.6 and mine:
            target = rnd.choice(mine)
        elif pick < 0.9:
            target = f"base-{rnd.choice(YEARS)}-{rnd.choice(INITIATIVES)}"
        else:
            target = f"w{rnd.randrange(8)}-a{rnd.randrange(n + 1)}"  # may not exist
        return "release", [
            "release", target, "--amount", money(rnd.randint(10_000, 10_000_000)),
            "--reason", "re-planned", "--command-id", cid,
        ]  # fmt: skip
    return "disburse", [
        "disburse", "--initiative", rnd.choice(INITIATIVES),
        "--amount", money(rnd.randint(100_000, 15_000_000)), "--on", "2022-06-30",
        "--command-id", cid,
    ]  # fmt: skip


def outcome(kind: str, args: list[str], result: Result) -> Outcome:
    ids: list[str] = []
    if result.exit_code == 0:
        try:
            ids = [envelope["event_id"] for envelope in json.loads(result.stdout)]
        except (ValueError, KeyError, TypeError):
            ids = ["<unparsable output>"]
    return {"kind": kind, "args": args, "code": result.exit_code, "stderr": result.stderr,
            "ids": ids, "exception": repr(result.exception) if result.exception and
            not isinstance(result.exception, SystemExit) else None}  # fmt: skip


def soak_worker(url: str, worker: int, seconds: float, seed: int, barrier: Any,
                results: Any) -> None:  # fmt: skip
    """Runs commands until the time is up; reports every outcome instead of raising."""
    rnd = random.Random(seed * 1000 + worker)
    runner = CliRunner()
    base = ["--store", url, "--actor", f"worker-{worker}", "--format", "json"]
    outcomes: list[Outcome] = []
    try:
        barrier.wait(timeout=120)
        deadline = time.monotonic() + seconds
        accepted: list[Outcome] = []
        mine: list[str] = []
        n = 0
        while time.monotonic() < deadline or n < MIN_COMMANDS:
            kind, args = next_command(rnd, worker, n, accepted, mine)
            result = runner.invoke(cli, [*base, *args])
            done = outcome(kind, args, result)
            if kind == "repeat":
                done["first_ids"] = next(o["ids"] for o in accepted if o["args"] == args)
            elif result.exit_code == 0:
                accepted.append(done)
                if kind == "allocate":
                    mine.append(args[args.index("--allocation-id") + 1])
            outcomes.append(done)
            n += 1
    except Exception as crash:  # noqa: BLE001 - reported to the test, which fails on it
        outcomes.append({"kind": "crashed", "args": [], "code": -1, "stderr": repr(crash),
                         "ids": [], "exception": repr(crash)})  # fmt: skip
    results.put((worker, outcomes))


def soak(url: str, workers: int, seconds: float) -> list[Outcome]:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    seed = int(os.environ.get("HOMELEDGER_SOAK_SEED", "7"))
    processes = [
        context.Process(target=soak_worker, args=(url, w, seconds, seed, barrier, results))
        for w in range(workers)
    ]
    reported = gather(processes, results, timeout=seconds + 240)
    return [o for w in sorted(reported) for o in reported[w]]


# The independent check of the rules, over the stored events in position order.


@dataclass
class Books:
    """The figures the rules constrain, as the events say, checked after every event."""

    pledged: defaultdict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    received: defaultdict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    allocated: defaultdict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    released: defaultdict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    # allocation id -> [initiative, year, amount, released so far]
    per_allocation: dict[str, list[Any]] = field(default_factory=dict)
    available: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    disbursed: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    initiatives: set[str] = field(default_factory=set)


def check_rules(envelopes: list[dict[str, Any]]) -> Books:
    """Every rule the soak exercises, at every position; the totals."""
    b = Books()
    broken: list[str] = []
    positions = [e["position"] for e in envelopes]
    assert positions == sorted(set(positions)), "positions are not one increasing order"
    assert [e["aggregate_version"] for e in envelopes] == list(range(1, len(envelopes) + 1))
    for env in envelopes:
        kind, d, at = env["type"], env["data"], env["position"]
        amount = Decimal(d["amount"]) if "amount" in d else Decimal(0)
        if "amount" in d:
            assert re.fullmatch(r"\d+\.\d\d", d["amount"]), (at, d["amount"])
            assert d["currency"] == "EUR", (at, "one-currency")
        if kind == "DonationPledged":
            b.pledged[d["year"]] = Decimal(d["amount"])
        elif kind == "DonationReceived":
            b.received[d["year"]] += amount
            if b.received[d["year"]] > b.pledged[d["year"]]:
                broken.append(f"{at}: receipt-within-pledge")
        elif kind == "InitiativeRegistered":
            b.initiatives.add(d["initiative"])
        elif kind == "FundsAllocated":
            year = d["year"]
            if d["initiative"] not in b.initiatives:
                broken.append(f"{at}: initiative-exists")
            if d["allocation_id"] in b.per_allocation:
                broken.append(f"{at}: allocation-unique")
            if b.pledged[year] == 0:
                broken.append(f"{at}: year-pledged")
            b.per_allocation[d["allocation_id"]] = [d["initiative"], year, amount, Decimal(0)]
            b.allocated[year] += amount
            b.available[d["initiative"]] += amount
            if b.allocated[year] - b.released[year] > b.pledged[year]:
                broken.append(f"{at}: allocation-within-pledge")
        elif kind == "AllocationReleased":
            entry = b.per_allocation.get(d["allocation_id"])
            if entry is None:
                broken.append(f"{at}: allocation-exists")
                continue
            if (entry[0], entry[1]) != (d["initiative"], d["year"]):
                broken.append(f"{at}: release names another initiative or year")
            entry[3] += amount
            b.released[d["year"]] += amount
            b.available[d["initiative"]] -= amount
            if entry[3] > entry[2] or b.available[d["initiative"]] < 0:
                broken.append(f"{at}: release-within-allocation")
        elif kind == "FundsDisbursed":
            b.disbursed[d["initiative"]] += amount
            b.available[d["initiative"]] -= amount
            if b.available[d["initiative"]] < 0:
                broken.append(f"{at}: disbursement-within-allocation")
    assert not broken, f"{len(broken)} rule(s) broken, the first: {broken[:5]}"
    return b


# Checks through the CLI, in the test process.


def run(url: str, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--store", url, *args], catch_exceptions=False)
    assert result.exit_code == 0, (args, result.stderr)
    return result


def figures(url: str) -> dict[str, Any]:
    """Everything the projections answer: balances three ways, trial balance, audit trails."""
    found: dict[str, Any] = {
        f"balances-{by}": json.loads(run(url, "--format", "json", "balances", "--by", by).stdout)
        for by in ("year", "initiative", "country")
    }
    found["trial-balance"] = json.loads(run(url, "--format", "json", "trial-balance").stdout)
    for key in INITIATIVES:
        found[f"audit-{key}"] = json.loads(run(url, "--format", "json", "audit", key).stdout)
    return found


def check_outcomes(outcomes: list[Outcome]) -> Counter[str]:
    """Exit codes and stderr lines as documented; the counts for the report."""
    counts: Counter[str] = Counter()
    problems: list[str] = []
    for o in outcomes:
        counts["tried"] += 1
        counts[f"tried-{o['kind']}"] += 1
        if o["exception"] or "Traceback" in o["stderr"]:
            problems.append(f"{o['args']}: {o['exception'] or o['stderr']}")
        elif o["code"] == 0:
            counts["accepted"] += 1
            if o["stderr"] or not o["ids"] or "<unparsable output>" in o["ids"]:
                problems.append(f"{o['args']}: exit 0 with {o['stderr']!r} / {o['ids']}")
            if o["kind"] == "repeat":
                counts["repeats-answered"] += 1
                if o["ids"] != o["first_ids"]:
                    problems.append(f"{o['args']}: a repeat answered {o['ids']} not "
                                    f"{o['first_ids']}")  # fmt: skip
        elif o["code"] == 3:
            match = REFUSAL.match(o["stderr"])
            rule = match.group(1) if match else None
            if rule is None or rule not in RULES[o["kind"]] | RETRYABLE:
                problems.append(f"{o['kind']} refused with {o['stderr']!r}")
            counts["refused"] += 1
            counts[f"refused-{rule}"] += 1
        else:
            problems.append(f"{o['args']}: exit {o['code']}: {o['stderr']!r}")
    assert not problems, f"{len(problems)} bad outcome(s), the first: {problems[:3]}"
    return counts


def soak_and_check(url: str, workers: int, label: str) -> None:
    set_up(url)
    before = [json.loads(line) for line in run(url, "--format", "jsonl", "events", "list")
              .stdout.splitlines()]  # fmt: skip
    outcomes = soak(url, workers, SECONDS)
    counts = check_outcomes(outcomes)

    envelopes = [json.loads(line) for line in run(url, "--format", "jsonl", "events", "list")
                 .stdout.splitlines()]  # fmt: skip
    assert envelopes[: len(before)] == before
    # Every exit-0 command's events are stored, and nothing else was recorded.
    answered = [i for o in outcomes if o["code"] == 0 and o["kind"] != "repeat" for i in o["ids"]]
    assert len(answered) == len(set(answered))
    recorded = [e["event_id"] for e in envelopes[len(before) :]]
    assert sorted(recorded) == sorted(answered)
    books = check_rules(envelopes)

    # The projections agree with the independent totals, and equal a rebuild.
    shown = figures(url)
    for row in shown["balances-year"]:
        year = row["year"]
        assert Decimal(row["pledged"]) == books.pledged[year]
        assert Decimal(row["received"]) == books.received[year]
        assert Decimal(row["allocated"]) == books.allocated[year]
        assert Decimal(row["released"]) == books.released[year]
        assert (
            Decimal(row["unallocated"])
            == (books.pledged[year] - books.allocated[year] + books.released[year])
            >= 0
        )
    for row in shown["balances-initiative"]:
        assert Decimal(row["disbursed"]) == books.disbursed[row["initiative"]]
    trial = shown["trial-balance"]
    assert Decimal(trial["difference"]) == 0 and trial["debit"] == trial["credit"]
    replay = json.loads(run(url, "--format", "json", "replay").stdout)
    assert replay["events"] == len(envelopes)
    assert figures(url) == shown
    verified = CliRunner().invoke(cli, ["--store", url, "--format", "json", "verify"])
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True

    refusals = {k.removeprefix("refused-"): v for k, v in counts.items()
                if k.startswith("refused-")}  # fmt: skip
    print(f"\nsoak {label}: {workers} processes, {SECONDS:g} s, {counts['tried']} commands "
          f"tried ({counts['tried-allocate']} allocate, {counts['tried-release']} release, "
          f"{counts['tried-disburse']} disburse, {counts['tried-repeat']} repeat), "
          f"{counts['accepted']} accepted ({counts['repeats-answered']} repeats answered), "
          f"{counts['refused']} refused {dict(sorted(refusals.items()))}; "
          f"{len(envelopes) - len(before)} events recorded, {len(envelopes)} in all")  # fmt: skip
    # The soak must have raced for real: money ran short, and some of everything was recorded.
    assert counts["refused-allocation-within-pledge"] > 0
    assert {"FundsAllocated", "AllocationReleased", "FundsDisbursed"} <= {
        e["type"] for e in envelopes[len(before) :]
    }


@pytest.mark.postgres
def test_soak_eight_processes_on_postgres(pg_url: str) -> None:
    soak_and_check(pg_url, workers=8, label="postgres")


def test_soak_four_processes_on_sqlite(sqlite_url: str) -> None:
    soak_and_check(sqlite_url, workers=4, label="sqlite")


def test_a_store_locked_past_the_timeout_is_a_retryable_refusal_on_sqlite(
    sqlite_url: str,
) -> None:
    """A writer that holds SQLite's write lock past the 10 s lock timeout: the command
    exits 3 with one `store-busy` line, records nothing, and succeeds when retried."""
    set_up(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    args = ["--store", sqlite_url, "--format", "json", "allocate", "--initiative", INITIATIVES[0],
            "--year", "2021", "--amount", "10.00", "--command-id", "busy-1"]  # fmt: skip
    command = [*CLI, *args]
    before = len(run(sqlite_url, "--format", "jsonl", "events", "list").stdout.splitlines())
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held by "another writer"
        busy = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert busy.returncode == 3, busy.stderr
    assert REFUSAL.match(busy.stderr) and "[store-busy]" in busy.stderr, busy.stderr
    print(f"\nlocked store: {busy.stderr.strip()}")
    after = run(sqlite_url, "--format", "jsonl", "events", "list").stdout.splitlines()
    assert len(after) == before  # nothing was written
    retried = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert retried.returncode == 0, retried.stderr
    assert len(run(sqlite_url, "--format", "jsonl", "events", "list").stdout.splitlines()) == (
        before + 1
    )
