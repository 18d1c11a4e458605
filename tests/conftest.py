"""Shared fixtures: settings profiles, real stores (SQLite files, PostgreSQL databases),
applications on them, ledgers with a history recorded, a NATS server.

Each PostgreSQL test gets its own freshly created database, dropped afterwards. With
CI set, a PostgreSQL that cannot be reached fails the test instead of skipping it.
Fixtures only: what a test imports is in helpers.py and the other helper modules.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.nats_server import NatsServer
from homeledger.domain import reference_case
from tests.helpers import (
    MakeApp,
    open_app,
    pg_database,
    pro_rata_commands,
    record,
)
from tests.nats_helpers import cli_env, record_story, running_server

settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)  # fmt: skip
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# Stores.


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test."""
    with pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on an SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    with pg_database() as url:
        yield url


# Applications and ledgers.


@pytest.fixture
def make_app() -> Iterator[MakeApp]:
    """Build applications on a store URL (more settings by keyword); all are closed after
    the test."""
    apps: list[LedgerApplication] = []

    def make(url: str, actor: str = "tester", clock: Any = None,
             **more: Any) -> LedgerApplication:  # fmt: skip
        app = open_app(url, actor, clock, **more)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.store.close()


@pytest.fixture
def ledger(make_app: MakeApp, sqlite_url: str) -> LedgerApplication:
    """The story (every kind of fact at least once, a seal included) on an SQLite file."""
    app = make_app(sqlite_url)
    record_story(app)
    return app


@pytest.fixture
def any_ledger(make_app: MakeApp, store_url: str) -> LedgerApplication:
    """The story on SQLite and on PostgreSQL (the same test runs on both)."""
    app = make_app(store_url)
    record_story(app)
    return app


@pytest.fixture
def reference_case_ledger(make_app: MakeApp, store_url: str) -> LedgerApplication:
    """The reference case (not sealed) on SQLite and on PostgreSQL."""
    app = make_app(store_url, actor="ops@example.org")
    record(app, reference_case.commands())
    return app


@pytest.fixture
def pro_rata_ledger(make_app: MakeApp, store_url: str) -> LedgerApplication:
    """The pro-rata case (helpers.pro_rata_commands) on SQLite and on PostgreSQL."""
    app = make_app(store_url)
    record(app, pro_rata_commands())
    return app


# NATS.


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server with JetStream from the bundled binary, on a free loopback port."""
    with running_server(tmp_path / "nats") as started:
        yield started


@pytest.fixture
def env(server: NatsServer, sqlite_url: str) -> dict[str, str]:
    """The CLI's environment for the SQLite store and the server."""
    return cli_env(sqlite_url, server.url)


@pytest.fixture
def any_env(server: NatsServer, store_url: str) -> dict[str, str]:
    """The CLI's environment for the store (SQLite and PostgreSQL) and the server."""
    return cli_env(store_url, server.url)
