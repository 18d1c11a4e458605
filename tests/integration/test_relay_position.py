"""The relay's position: the relay never skips a fact, nor publishes one, where the
stream disagrees with the store (an older copy of the store, another ledger's stream)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.relay_position import RelayPosition
from homeledger.domain.commands import AcquireUnits
from tests.helpers import MakeApp, one_line, sqlite_backup
from tests.nats_helpers import cli_env, invoke, read_stream, record_story

pytestmark = pytest.mark.nats


def acquire(app: LedgerApplication, units: int = 1) -> None:
    app.execute(AcquireUnits(country="SE", units=units, on=date(2022, 5, 1)))


def test_a_relay_on_an_older_copy_of_the_store_refuses_instead_of_skipping(
    make_app: MakeApp, ledger: LedgerApplication, server: NatsServer, sqlite_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    old_url = sqlite_backup(sqlite_url, tmp_path / "backup.db")
    acquire(ledger)
    head = ledger.store.max_position()
    assert invoke(["relay", "--once"], cli_env(sqlite_url, server.url)).exit_code == 0
    published = read_stream(server.url)
    assert len(published) == head

    stale = invoke(["relay", "--once"], cli_env(old_url, server.url))
    assert stale.exit_code == 1, stale.output
    line = one_line(stale.stderr)
    assert f"disagree at position {head}" in line and f"ends at {head - 1}" in line

    restored = make_app(old_url)
    acquire(restored, units=2)  # a new fact at the position the stream already holds
    assert restored.store.max_position() == head
    refused = invoke(["relay", "--once"], cli_env(old_url, server.url))
    assert refused.exit_code == 1, refused.output
    assert f"disagree at position {head}" in one_line(refused.stderr)
    assert read_stream(server.url) == published  # nothing published
    position = RelayPosition(restored.store, "HOMELEDGER").read()
    assert position < head  # never advanced past what the stream agrees with


def test_a_relay_to_a_stream_of_another_ledger_refuses(
    make_app: MakeApp, ledger: LedgerApplication, server: NatsServer, sqlite_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    other = make_app(other_url)
    record_story(other)
    acquire(other)
    acquire(other)
    assert invoke(["relay", "--once"], cli_env(other_url, server.url)).exit_code == 0
    published = read_stream(server.url)

    result = invoke(["relay", "--once"], cli_env(sqlite_url, server.url))
    assert result.exit_code == 1, result.output
    assert "disagree at position" in one_line(result.stderr)
    assert read_stream(server.url) == published
