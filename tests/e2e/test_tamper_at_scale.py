"""Tampering at scale: hundreds of random single-row tamperings of a 10,000-event store.

One SQLite store is built once per session: a synthetic, rule-abiding history (the
rebuild bench's generator, recorded with LedgerApplication.execute_batch), sealed
four times along the way, projections built, `verify` clean. Each tampering works on
a fresh copy of that file, changes one thing behind the ledger's back and must be
found at the expected first bad position:

    edit-payload      a field of `data` changed (amount, year, initiative, ...)
    edit-metadata     one of: the stored topic, the stored version, recorded_at,
                      effective_date, actor, command_id, event_id, hash, prev_hash, an
                      extra field slipped into the stored body
    delete            one event removed (the one after it no longer follows)
    swap              two events' contents exchanged, or their positions exchanged
    insert-forged     a well-formed, correctly hashed fact slipped in between two
    truncate          the newest events removed, from a cut at or before a seal

The first five are located by `verify`'s own hash-chain check (projections.verify.
Verifier, the code `homeledger verify` runs), walked over every one of the 10,000
events; the first case of each kind also runs the whole `homeledger verify`
(exit 1, the same first bad position in its JSON report and its stderr line).
Truncation leaves a consistent chain: the stored projections, ahead of the store,
reveal it to `verify`; once the forger has rebuilt them too, only the published stream
witnesses it (`verify --against-nats`).

HOMELEDGER_TAMPER_CASES (default 200) sets how many tamperings; HOMELEDGER_TAMPER_SEED
the seed. The counts per kind are printed (pytest -s shows them).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bench.rebuild import synthetic_commands
from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.hash_chain import chain_hash
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import open_store
from homeledger.cli.main import cli
from homeledger.projections.db import ProjectionDB
from homeledger.projections.runner import ProjectionRunner
from homeledger.projections.verify import Verifier
from homeledger.projections.verify import _body as body_of
from tests.forger import RawEvents, raw_events
from tests.helpers import StepClock
from tests.nats_helpers import cli_env, running_server, stream_count

pytestmark = pytest.mark.slow

EVENTS = 10_000
SEAL_EVERY = 2_500
CASES = int(os.environ.get("HOMELEDGER_TAMPER_CASES", "200"))
SEED = int(os.environ.get("HOMELEDGER_TAMPER_SEED", "11"))
TRUNCATIONS = int(os.environ.get("HOMELEDGER_TAMPER_TRUNCATIONS", "8"))
FULL_VERIFY_PER_KIND = 1
KINDS = ("edit-payload", "edit-metadata", "delete", "swap", "insert-forged")


@dataclass(frozen=True)
class Scale:
    path: Path
    head: int
    seals: tuple[int, ...]  # positions of the LedgerSealed facts


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def verify_cli(path: Path, *extra: str, against_nats: bool = False) -> Result:
    args = [*extra, "--store", url_of(path), "--format", "json", "verify"]
    return CliRunner().invoke(cli, args + (["--against-nats"] if against_nats else []))


@pytest.fixture(scope="session")
def scale(tmp_path_factory: pytest.TempPathFactory) -> Scale:
    """10,000 events and more, four seals among them, projections built; verified clean."""
    path = tmp_path_factory.mktemp("scale") / "ledger.db"
    store = open_store(Settings(store=url_of(path)))
    # 7 s apart, after every effective date recorded (a fact is never dated after the day
    # it is recorded).
    clock = StepClock(datetime(2026, 1, 1, 8, 0, tzinfo=UTC), steps=[7])
    app = LedgerApplication(store, actor="ops", clock=clock, snapshot_every=0)
    seals: list[int] = []
    try:
        pending = []
        for command in synthetic_commands(EVENTS - EVENTS // SEAL_EVERY, seed=SEED):
            pending.append(command)
            if len(pending) == 1000:
                app.execute_batch(pending)
                pending = []
                if store.max_position() >= SEAL_EVERY * (len(seals) + 1):
                    seals.append(app.seal()[0].position)
        if pending:
            app.execute_batch(pending)
        seals.append(app.seal()[0].position)
        head = store.max_position()
    finally:
        store.close()
    assert head >= EVENTS and len(seals) == 4
    with sqlite3.connect(path) as db:
        rowids = [row[0] for row in db.execute("SELECT rowid FROM stored_events ORDER BY rowid")]
    assert rowids == list(range(1, head + 1)), "positions are expected without holes"
    built = CliRunner().invoke(cli, ["--store", url_of(path), "balances"])
    assert built.exit_code == 0, built.stderr
    clean = verify_cli(path)
    assert clean.exit_code == 0, clean.stdout + clean.stderr
    return Scale(path, head, tuple(seals))


# The tamperings: each changes one row of a copy and returns the expected first bad position.


Tamper = Callable[[RawEvents, random.Random, Scale], tuple[int, str]]


def edit_payload(raw: RawEvents, rnd: random.Random, scale: Scale) -> tuple[int, str]:
    p = rnd.randint(1, scale.head)
    body = raw.body(p)
    key = rnd.choice(sorted(body["data"]))
    value = body["data"][key]
    if isinstance(value, bool) or value is None:
        body["data"][key] = not value
    elif isinstance(value, int):
        body["data"][key] = value + rnd.choice((-1, 1))
    elif key in ("amount", "delta", "rate") and isinstance(value, str):
        body["data"][key] = str(Decimal(value) + Decimal("0.01"))  # a cent more
    else:
        body["data"][key] = str(value) + "x"
    raw.set_body(p, body)
    return p, f"data.{key}"


def edit_metadata(raw: RawEvents, rnd: random.Random, scale: Scale) -> tuple[int, str]:
    p = rnd.randint(1, scale.head)
    field = rnd.choice(("topic", "version", "recorded_at", "effective_date", "actor",
                        "command_id", "event_id", "hash", "prev_hash", "extra-field"))  # fmt: skip
    if field == "topic":
        topic = raw.row(p)[2]
        other = "homeledger:FundsDisbursed" if topic != "homeledger:FundsDisbursed" else (
            "homeledger:FundsAllocated")  # fmt: skip
        raw.set_topic(p, other)
        return p, field
    if field == "version":
        free = scale.head + 1000 + rnd.randint(1, 1000)
        raw.set_version(p, free)
        return p, field
    body = raw.body(p)
    if field == "recorded_at":
        last = body["recorded_at"][-2]  # a microsecond later or earlier
        body["recorded_at"] = body["recorded_at"][:-2] + ("1" if last != "1" else "2") + "Z"
    elif field == "effective_date":
        year = int(body["effective_date"][:4])
        body["effective_date"] = f"{year - 1}{body['effective_date'][4:]}"
    elif field in ("hash", "prev_hash"):
        body[field] = uuid.UUID(int=rnd.getrandbits(128)).hex * 2
    elif field == "extra-field":
        body["note"] = "approved by the treasurer"
    else:
        body[field] = "mallory" if field == "actor" else str(uuid.UUID(int=rnd.getrandbits(128)))
    raw.set_body(p, body)
    return p, field


def delete(raw: RawEvents, rnd: random.Random, scale: Scale) -> tuple[int, str]:
    p = rnd.randint(1, scale.head - 1)  # the newest one's removal is a truncation
    raw.delete(p)
    return p + 1, "row"


def swap(raw: RawEvents, rnd: random.Random, scale: Scale) -> tuple[int, str]:
    i, j = sorted(rnd.sample(range(1, scale.head + 1), 2))
    if rnd.random() < 0.5:
        raw.swap_contents(i, j)
        return i, "contents"
    raw.swap_positions(i, j)
    return i, "positions"


def insert_forged(raw: RawEvents, rnd: random.Random, scale: Scale) -> tuple[int, str]:
    """A careful forger: a copy of fact k, new id, chained after k, hashed, at k + 1."""
    k = rnd.randint(1, scale.head - 1)
    originator, _, topic, _ = raw.row(k)
    body = raw.body(k)
    body["event_id"] = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
    body["aggregate_version"] = scale.head + 1  # the only version free to take
    body["prev_hash"] = raw.body(k)["hash"]
    body["hash"] = chain_hash(body)
    raw.insert(k + 1, originator, scale.head + 1, topic, body)
    return k + 1, body["type"]


TAMPERINGS: dict[str, Tamper] = {
    "edit-payload": edit_payload,
    "edit-metadata": edit_metadata,
    "delete": delete,
    "swap": swap,
    "insert-forged": insert_forged,
}


def truncate(path: Path, cut: int) -> None:
    with raw_events(url_of(path)) as raw:
        raw.truncate(cut)


def chain_first_bad(path: Path) -> int | None:
    """The first bad position `verify`'s hash-chain check finds, walking every event."""
    store = open_store(Settings(store=url_of(path)), create=False)
    db = ProjectionDB(store.location)
    try:
        verifier = Verifier(store, db, ProjectionRunner(store, db))
        for notification in store.notifications(1, store.max_position()):
            verifier._chain(notification, body_of(store, notification))
        return verifier.checks["hash-chain"].position
    finally:
        db.close()
        store.close()


@pytest.fixture
def copies(tmp_path: Path, scale: Scale) -> Iterator[Callable[[], Path]]:
    """Fresh copies of the scale store, one at a time (each removed when the next is made)."""
    made: list[Path] = []

    def copy() -> Path:
        for old in made:
            old.unlink(missing_ok=True)
        target = tmp_path / f"copy-{len(made)}.db"
        shutil.copyfile(scale.path, target)
        made.append(target)
        return target

    yield copy


def test_random_single_row_tamperings_are_found_and_located(
    scale: Scale, copies: Callable[[], Path]
) -> None:
    rnd = random.Random(SEED)
    tried: Counter[str] = Counter()
    found: Counter[str] = Counter()
    full_runs: Counter[str] = Counter()
    variants: Counter[str] = Counter()
    missed: list[str] = []
    for case in range(CASES):
        kind = KINDS[case % len(KINDS)]
        path = copies()
        with raw_events(url_of(path)) as raw:
            expected, what = TAMPERINGS[kind](raw, rnd, scale)
        tried[kind] += 1
        variants[f"{kind}:{what}" if kind in ("edit-metadata", "swap") else kind] += 1
        located = chain_first_bad(path)
        if located == expected:
            found[kind] += 1
        else:
            missed.append(f"{kind} ({what}): expected {expected}, verify found {located}")
        if full_runs[kind] < FULL_VERIFY_PER_KIND:  # the whole command agrees
            full_runs[kind] += 1
            result = verify_cli(path)
            assert result.exit_code == 1, (kind, what, expected, result.stderr)
            assert json.loads(result.stdout)["first_bad_position"] == expected, (kind, what)
            assert result.stderr.count("\n") == 1
            assert f"first bad position {expected}" in result.stderr
    print(f"\ntamper at scale ({scale.head} events, seals at {list(scale.seals)}): "
          + ", ".join(f"{k} {found[k]}/{tried[k]}" for k in KINDS)
          + f"; detected and located {sum(found.values())}/{sum(tried.values())}")  # fmt: skip
    print("variants tried: " + ", ".join(f"{k} {v}" for k, v in sorted(variants.items())))
    assert not missed, f"{len(missed)} tampering(s) not located: {missed[:5]}"
    assert sum(tried.values()) == CASES >= len(KINDS)


def cuts(scale: Scale) -> list[int]:
    """Cut points at or before a seal: the seal itself and a random earlier position."""
    rnd = random.Random(SEED + 1)
    chosen = [scale.seals[-1], scale.seals[0]]
    while len(chosen) < TRUNCATIONS:
        chosen.append(rnd.randint(2, scale.seals[-1]))
    return chosen


def test_truncations_are_found_through_the_projections(
    scale: Scale, copies: Callable[[], Path]
) -> None:
    """Stored projections ahead of the store give a truncation away, at its first position."""
    found = 0
    for cut in cuts(scale):
        path = copies()
        truncate(path, cut)
        assert chain_first_bad(path) is None  # a consistent chain: the chain alone cannot tell
        result = verify_cli(path)
        assert result.exit_code == 1, result.stdout
        assert json.loads(result.stdout)["first_bad_position"] == cut
        assert f"first bad position {cut}" in result.stderr
        found += 1
    print(f"\ntruncation (projections ahead of the store): detected and located "
          f"{found}/{len(cuts(scale))}")  # fmt: skip


@pytest.mark.nats
def test_truncations_are_found_against_the_stream(
    scale: Scale, copies: Callable[[], Path], tmp_path: Path
) -> None:
    """A forger who also rebuilds the projections is caught by the published stream."""
    with running_server(tmp_path / "nats") as server:
        env = cli_env(url_of(scale.path), server.url)
        relayed = CliRunner().invoke(cli, ["relay", "--once"], env=env)
        assert relayed.exit_code == 0, relayed.stderr
        assert stream_count(server.url) == scale.head
        whole = verify_cli(scale.path, "--nats", server.url)
        assert whole.exit_code == 0, whole.stdout + whole.stderr
        found = 0
        for cut in cuts(scale)[:3]:
            path = copies()
            truncate(path, cut)
            replayed = CliRunner().invoke(cli, ["--store", url_of(path), "replay"])
            assert replayed.exit_code == 0, replayed.stderr
            alone = verify_cli(path)
            assert alone.exit_code == 0, alone.stdout  # the database alone cannot tell now
            result = verify_cli(path, "--nats", server.url, against_nats=True)
            assert result.exit_code == 1, result.stdout + result.stderr
            assert f"first bad position {cut}" in result.stderr
            assert result.stderr.count("\n") == 1
            found += 1
    print(f"\ntruncation after a rebuild of the projections, against the stream: detected "
          f"and located {found}/{found}")  # fmt: skip
