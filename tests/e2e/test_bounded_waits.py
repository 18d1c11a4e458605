"""No command waits forever: a server that stops answering mid-command ends it with exit
4 and one line saying what it waited for, and nothing half-written.

A PostgreSQL backend serving an import is paused (SIGSTOP) inside its transaction; a
NATS server is paused under a running relay, `verify --against-nats` and a projector.
The bounds are the configurable ones (HOMELEDGER_STORE_TIMEOUT, HOMELEDGER_NATS_TIMEOUT,
--max-outage), set small here; the tests wait on conditions, never on the clock.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import pytest

from bench.shapes import allocation_heavy, write_jsonl
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.postgres import APPLICATION_NAME
from homeledger.adapters.settings import Settings, store_location
from homeledger.cli.bootstrap import build_application
from tests.helpers import one_line, wait_until
from tests.nats_helpers import cli_env, record_bulk, record_story, run_cli, spawn_cli, stream_count
from tests.workers import reaped

pytestmark = pytest.mark.slow


def _backends(url: str, *, inserting: bool = False) -> list[int]:
    """The PostgreSQL backends homeledger processes hold on the test's database (with
    `inserting`: those inside a transaction that has inserted facts)."""
    dbname = store_location(url).dbname
    sql = ("SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s"
           + (" AND xact_start IS NOT NULL AND query LIKE 'INSERT%%'" if inserting else ""))
    with psycopg.connect(url, autocommit=True) as conn:
        return [row[0] for row in conn.execute(sql, (dbname, APPLICATION_NAME)).fetchall()]


@contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    """Processes stopped (SIGSTOP) for the block, resumed whatever happens."""
    if os.geteuid() != 0:
        pytest.fail("pausing PostgreSQL backends needs root (the CI machines run as root)")
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.mark.postgres
def test_a_paused_postgres_backend_ends_an_import_with_exit_4(pg_url: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "commands.jsonl", allocation_heavy(100_000))
    env = cli_env(pg_url, "nats://127.0.0.1:1", HOMELEDGER_STORE_TIMEOUT="2")
    with reaped(spawn_cli(["import", str(path)], env)) as importing:
        wait_until(lambda: bool(_backends(pg_url, inserting=True)) or
                   importing.poll() is not None, 300, "the import's transaction")  # fmt: skip
        assert importing.poll() is None, "the import ended before it could be paused"
        with paused(_backends(pg_url)):
            _, err = importing.communicate(timeout=300)
    line = one_line(err)
    assert importing.returncode == 4, line
    assert "did not answer within 2s" in line, line
    # The resumed backend finds its client gone and rolls the transaction back.
    wait_until(lambda: not _backends(pg_url), 300, "the abandoned backend to end")
    stats = run_cli(["--format", "json", "events", "stats"], env)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["events"] == 0


@pytest.mark.postgres
def test_a_lock_held_past_the_lock_timeout_refuses_with_nothing_written(pg_url: str) -> None:
    app = build_application(Settings(store=pg_url, actor="ops"))
    try:
        record_story(app)
        head = app.store.max_position()
    finally:
        app.store.close()
    env = cli_env(pg_url, "nats://127.0.0.1:1", HOMELEDGER_LOCK_TIMEOUT="1")
    with psycopg.connect(pg_url) as holder:  # another writer, inside its transaction
        holder.execute("LOCK TABLE homeledger_events IN EXCLUSIVE MODE")
        done = run_cli(["milestone", "--initiative", "gw-bissau-village", "--name",
                        "crisis shelter", "--on", "2022-09-01"], env)  # fmt: skip
    line = one_line(done.stderr)
    assert done.returncode == 3 and "store-busy" in line, line
    stats = run_cli(["--format", "jsonl", "events", "list", "--from-position", str(head + 1)],
                    env)  # fmt: skip
    assert stats.returncode == 0 and stats.stdout == "", stats.stderr


@pytest.mark.nats
def test_a_paused_nats_server_ends_relay_verify_and_project_with_exit_4(
    server: NatsServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = build_application(Settings(store=url, actor="ops"))
    try:
        record_story(app)
        record_bulk(app, 20_000)
    finally:
        app.store.close()
    env = cli_env(url, server.url, HOMELEDGER_NATS_TIMEOUT="1")
    consumer = cli_env(f"sqlite:///{tmp_path / 'consumer.db'}", server.url,
                       HOMELEDGER_NATS_TIMEOUT="1")  # fmt: skip
    assert server.process is not None
    with reaped(spawn_cli(["relay", "--once", "--max-outage", "3"], env)) as relaying:
        wait_until(lambda: stream_count(server.url) > 0 or relaying.poll() is not None, 300,
                   "the relay's first messages")  # fmt: skip
        assert relaying.poll() is None, "the relay ended before the server could be paused"
        with paused([server.process.pid]):
            _, err = relaying.communicate(timeout=300)
            assert relaying.returncode == 4, err
            assert "NATS" in one_line(err)
            for args, where in ((["verify", "--against-nats"], env),
                                (["project", "--from-nats", "--durable", "p", "--once",
                                  "--max-outage", "3"], consumer)):  # fmt: skip
                done = run_cli(args, where, timeout=300)
                line = one_line(done.stderr)
                assert done.returncode == 4 and "NATS" in line, (args, line)
