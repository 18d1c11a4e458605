"""Failure modes: the disk filling up under SQLite, PostgreSQL restarting mid-command.

Each ends in a clear error, nothing half-written (a command's facts and its receipt are
all stored or none are; the hash chain stays intact) and recovery without a restart of
the process once the fault is gone.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.settings import Settings
from homeledger.adapters.store import StoreUnavailableError
from homeledger.cli.bootstrap import build_application
from homeledger.cli.main import cli
from homeledger.domain import commands as c
from tests.helpers import assert_chain_intact, partnership, unavailable, wait_until

pytestmark = pytest.mark.slow


def chain_length(app: LedgerApplication) -> int:
    """The number of facts, asserting the chain is intact from the first to the last."""
    return assert_chain_intact(app.store)


def setup_ledger(app: LedgerApplication) -> None:
    app.execute(partnership(start="2021-01-01"))
    app.execute(c.AcquireUnits(country="SE", units=110_000, on="2021-01-01"))
    app.execute(c.PledgeDonation(year=2021))
    app.execute(c.RegisterInitiative(id="gw-bissau-village", name="Bissau hub", country="GW",
                                     programme="family-like care"))  # fmt: skip


def allocation(n: int, note: str = "") -> c.AllocateFunds:
    return c.AllocateFunds(initiative="gw-bissau-village", year=2021, amount=Decimal("1.00"),
                           allocation_id=f"a-{n}{note}", command_id=f"cmd-{n}{note}")  # fmt: skip


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 384 KiB tmpfs: SQLite runs out of room after a few hundred facts."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        unavailable("mounting a small tmpfs needs root and mount")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_sqlite_disk_full_is_a_clear_error_and_recovers(small_disk: Path) -> None:
    url = f"sqlite:///{small_disk / 'ledger.db'}"
    app = build_application(Settings(store=url, actor="ops", ledger_snapshot_every=0))
    try:
        setup_ledger(app)
        recorded, failure = 0, None
        for n in range(100_000):
            try:
                app.execute(allocation(n))
            except StoreUnavailableError as error:
                failure = str(error)
                break
            recorded += 1
        assert failure is not None and "full" in failure, failure
        # Nothing half-written: the chain is intact and holds exactly what was answered.
        assert chain_length(app) == 4 + recorded
        with sqlite3.connect(small_disk / "ledger.db") as db:
            receipts = db.execute("SELECT count(*) FROM homeledger_commands").fetchone()[0]
        assert receipts == 4 + recorded

        # Through the CLI: one line, exit 4, nothing written.
        result = CliRunner().invoke(cli, ["--store", url, "allocate", "--initiative",
                                          "gw-bissau-village", "--year", "2021", "--amount",
                                          "1.00"])  # fmt: skip
        assert result.exit_code == 4, result.output
        assert result.stderr.count("\n") == 1 and "full" in result.stderr

        # Room again: the same application records on, the failed command included.
        subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
        app.execute(allocation(recorded))
        assert chain_length(app) == 4 + recorded + 1
    finally:
        app.store.close()


def _pg_cluster(action: str, check: bool = True) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
                   check=check, capture_output=True, timeout=120)  # fmt: skip


def _answers(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def _postmaster_started(url: str) -> Any:
    """When the server last started (a restart moves it on)."""
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    assert row is not None
    return row[0]


def _bring_postgres_back(url: str) -> None:
    """Start the cluster until it answers, even if the stop half-failed or start fails once."""
    for attempt in range(3):
        _pg_cluster("start", check=False)
        try:
            wait_until(lambda: _answers(url), 30, "PostgreSQL to answer again")
            return
        except pytest.fail.Exception:  # not up within the wait: start it again
            if attempt == 2:
                raise


@pytest.mark.postgres
def test_postgres_restart_mid_commands(pg_url: str) -> None:
    if not os.path.isdir("/etc/postgresql") or shutil.which("pg_ctlcluster") is None:
        unavailable("the local PostgreSQL cluster and pg_ctlcluster, to restart it")
    app = build_application(Settings(store=pg_url, actor="ops", ledger_snapshot_every=0))
    answered: list[int] = []
    failed: list[str] = []
    sent = [0]  # commands the writer has begun
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            sent[0] = n + 1
            try:
                app.execute(allocation(n))
                answered.append(n)
            except StoreUnavailableError as error:
                failed.append(str(error))
                stop.wait(0.05)  # not a busy loop while the server is down
            n += 1

    try:
        setup_ledger(app)
        started = _postmaster_started(pg_url)
        thread = threading.Thread(target=writer)
        thread.start()
        wait_until(lambda: len(answered) >= 3, 60, "the writer's first answers")
        try:
            _pg_cluster("stop")  # returns once the server is down
            down_at = sent[0]
            wait_until(lambda: sent[0] > down_at, 60, "a command sent while the server is down")
        finally:
            _bring_postgres_back(pg_url)  # the server always comes back, whatever happened
        assert _postmaster_started(pg_url) > started  # it really restarted under the writer
        back = len(answered)
        wait_until(lambda: len(answered) > back, 120, "an answer after the restart")
        stop.set()
        thread.join(timeout=120)
        assert not thread.is_alive()
        # A command caught by the outage fails in one line, or (the connection pool waiting
        # for the server) is answered once it is back: either way, nothing half-written.
        assert all("\n" not in message for message in failed)
        # Recovery: the same application recorded again after the restart.
        app.execute(allocation(10_000_000))
        # Nothing half-written: every fact has its receipt and every answer is stored.
        import psycopg

        with psycopg.connect(pg_url) as conn:
            rows = conn.execute("SELECT command_id FROM homeledger_commands").fetchall()
        receipts = {row[0] for row in rows}
        stored = chain_length(app)
        assert len(receipts) == stored
        assert {f"cmd-{n}" for n in answered} <= receipts
    finally:
        stop.set()
        app.store.close()


@pytest.mark.nats
def test_nats_down_while_recording_and_the_relay_catches_up(tmp_path: Path) -> None:
    """Recording never needs NATS; the relay fails clearly while it is down, then catches up."""
    from homeledger.adapters.nats_server import NatsServer
    from tests.nats_helpers import assert_exactly_once_in_order, cli_env, invoke, read_stream

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = build_application(Settings(store=url, actor="ops", ledger_snapshot_every=0))
    server = NatsServer(tmp_path / "nats").start()
    try:
        setup_ledger(app)
        env = cli_env(url, server.url)
        first = invoke(["relay", "--once"], env)
        assert first.exit_code == 0, first.stderr
        assert len(read_stream(server.url)) == 4

        server.stop()
        for n in range(5):  # recording goes on while NATS is down
            recorded = invoke(["--format", "json", "allocate", "--initiative", "gw-bissau-village",
                               "--year", "2021", "--amount", "10.00",
                               "--command-id", f"down-{n}"], env)  # fmt: skip
            assert recorded.exit_code == 0, recorded.stderr
        down = invoke(["relay", "--once", "--max-outage", "2"], env)
        assert down.exit_code == 4, down.output
        assert down.stderr.count("\n") == 1 and down.stderr.startswith("homeledger: ")
        assert "NATS" in down.stderr or "nats" in down.stderr, down.stderr
        assert "Traceback" not in down.stderr
        print(f"\nNATS down: {down.stderr.strip()}")

        server.restart()  # the same port and JetStream folder
        caught_up = invoke(["relay", "--once"], env)
        assert caught_up.exit_code == 0, caught_up.stderr
        again = invoke(["relay", "--once"], env)  # nothing left: nothing published twice
        assert again.exit_code == 0, again.stderr
        envelopes = list(app.store.envelopes())
        assert len(envelopes) == 4 + 5
        assert_exactly_once_in_order(read_stream(server.url), envelopes)
        assert chain_length(app) == 9
    finally:
        server.stop()
        app.store.close()
