"""Encryption at rest: HOMELEDGER_CIPHER_KEY encrypts and compresses stored events."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from eventsourcing.cryptography import AESCipher

from homeledger.adapters.settings import ConfigError, Settings
from homeledger.adapters.store import StoreUnavailableError
from homeledger.cli.bootstrap import build_application, open_store
from homeledger.cli.main import cli
from homeledger.domain.reference_case import commands

KEY = AESCipher.create_key(32)
OTHER_KEY = AESCipher.create_key(32)


def _record_reference(url: str, key: str | None) -> int:
    app = build_application(Settings(store=url, actor="ops", cipher_key=key))
    try:
        return sum(len(app.execute(command)) for command in commands()[:20])
    finally:
        app.store.close()


def test_stored_payloads_are_unreadable_without_the_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'enc.db'}"
    recorded = _record_reference(url, KEY)
    with sqlite3.connect(tmp_path / "enc.db") as db:
        states = [bytes(row[0]) for row in db.execute("SELECT state FROM stored_events")]
    assert len(states) == recorded
    assert not any(b"Heimstaden" in s or b"SOS" in s or b"EUR" in s for s in states)

    store = open_store(Settings(store=url, cipher_key=KEY), create=False)
    try:
        envelopes = list(store.envelopes())
    finally:
        store.close()
    assert [e.data.get("donor") for e in envelopes[:1]] == ["Heimstaden"]
    assert [e.aggregate_version for e in envelopes] == list(range(1, recorded + 1))


@pytest.mark.parametrize("key", [None, OTHER_KEY], ids=["no-key", "wrong-key"])
def test_reading_without_the_right_key_fails_cleanly(tmp_path: Path, key: str | None) -> None:
    url = f"sqlite:///{tmp_path / 'enc.db'}"
    _record_reference(url, KEY)
    store = open_store(Settings(store=url, cipher_key=key), create=False)
    try:
        with pytest.raises(StoreUnavailableError, match="cipher key"):
            list(store.envelopes())
    finally:
        store.close()


def test_cli_exit_codes_and_no_key_leak(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'enc.db'}"
    _record_reference(url, KEY)
    runner = CliRunner()
    ok = runner.invoke(cli, ["--store", url, "events", "stats"],
                       env={"HOMELEDGER_CIPHER_KEY": KEY})  # fmt: skip
    assert ok.exit_code == 0, ok.stderr
    missing = runner.invoke(cli, ["--store", url, "events", "list"])
    assert missing.exit_code == 4
    assert missing.stderr.count("\n") == 1 and "cipher key" in missing.stderr
    wrong = runner.invoke(cli, ["--store", url, "events", "list"],
                          env={"HOMELEDGER_CIPHER_KEY": OTHER_KEY})  # fmt: skip
    assert wrong.exit_code == 4
    assert OTHER_KEY not in wrong.stderr + wrong.stdout
    bad = runner.invoke(cli, ["--store", url, "--debug", "events", "list"],
                        env={"HOMELEDGER_CIPHER_KEY": "not-a-key!"})  # fmt: skip
    assert bad.exit_code == 2
    assert "not-a-key!" not in bad.stderr + bad.stdout


def test_malformed_key_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="16, 24 or 32 bytes"):
        open_store(Settings(store=f"sqlite:///{tmp_path / 'x.db'}", cipher_key="c2hvcnQ="))


def test_encrypted_postgres_store_round_trips(pg_url: str) -> None:
    recorded = _record_reference(pg_url, KEY)
    store = open_store(Settings(store=pg_url, cipher_key=KEY), create=False)
    try:
        assert len(list(store.envelopes())) == recorded
    finally:
        store.close()
