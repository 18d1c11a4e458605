"""Shared fixtures: settings profiles, real stores (SQLite files, PostgreSQL databases).

Each PostgreSQL test gets its own freshly created database, dropped afterwards. With
CI set, a PostgreSQL that cannot be reached fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from tests.nats_helpers import running_server

settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)  # fmt: skip
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

PG_HOST = os.environ.get("HOMELEDGER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HOMELEDGER_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("HOMELEDGER_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("HOMELEDGER_TEST_PG_ADMIN_DB", "postgres")


def _admin_connect():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, autocommit=True,
        connect_timeout=5,
    )  # fmt: skip


def postgres_available() -> str | None:
    """None when the server answers, else why not."""
    try:
        with _admin_connect():
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means unavailable
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def require_postgres() -> None:
    reason = postgres_available()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} is required in CI: {reason}")
    pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} unavailable: {reason}")


def create_pg_database() -> tuple[str, Callable[[], None]]:
    """A fresh database and the function that drops it."""
    name = f"hl_test_{uuid.uuid4().hex[:16]}"
    with _admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with _admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}", drop


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_postgres()
    url, drop = create_pg_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on an SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    require_postgres()
    url, drop = create_pg_database()
    try:
        yield url
    finally:
        drop()


class StepClock:
    """A deterministic clock: each reading is one second after the last."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2021, 7, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def make_app() -> Iterator[Callable[..., LedgerApplication]]:
    """Build applications on a store URL; all are closed after the test."""
    apps: list[LedgerApplication] = []

    def make(url: str, actor: str = "tester", clock: StepClock | None = None) -> LedgerApplication:
        app = build_application(Settings(store=url, actor=actor), clock=clock or StepClock())
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.store.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server with JetStream from the bundled binary, on a free loopback port."""
    with running_server(tmp_path / "nats") as started:
        yield started
