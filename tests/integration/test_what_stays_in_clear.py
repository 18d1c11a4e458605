"""Encryption at rest, exactly: what a reader of the database sees without the key.

With HOMELEDGER_CIPHER_KEY the stored facts and the ledger's snapshots are encrypted;
the command receipts' fingerprints are keyed (an HMAC under a key derived from the
cipher key), so a guessed command cannot be confirmed against them, and receipts
written before they were keyed are still recognised. What stays in clear is what
docs/guarantees.md lists: positions, versions, topics, command ids, the relay's
position, and the read models (`hl_proj_*`: names, programmes, milestones, evidence,
actors and figures). This test holds the list to the truth.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from click.testing import CliRunner
from eventsourcing.cryptography import AESCipher

from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from homeledger.cli.main import cli
from homeledger.domain import commands as c
from homeledger.domain.reference_case import commands

KEY = AESCipher.create_key(32)
ALLOCATE = c.AllocateFunds(initiative="gw-bissau-village", year=2021, amount="1000.00",
                           command_id="a-guessable")  # fmt: skip


def record(url: str) -> None:
    app = build_application(Settings(store=url, actor="ops@example.org", cipher_key=KEY,
                                     seal_key=None, ledger_snapshot_every=5))  # fmt: skip
    try:
        for command in [*commands(), ALLOCATE]:
            app.execute(command)
    finally:
        app.store.close()


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return list(db.execute(sql).fetchall())


def test_a_guessed_command_cannot_be_confirmed_from_its_receipt(tmp_path: Path) -> None:
    path = tmp_path / "enc.db"
    record(f"sqlite:///{path}")
    stored = rows(path, "SELECT fingerprint FROM homeledger_commands WHERE command_id = "
                  "'a-guessable'")[0][0]  # fmt: skip
    assert stored != ALLOCATE.fingerprint()  # the plain SHA-256 of the command


def test_a_repeat_is_answered_with_keyed_and_with_older_plain_receipts(tmp_path: Path) -> None:
    path = tmp_path / "enc.db"
    url = f"sqlite:///{path}"
    record(url)
    env = {"HOMELEDGER_CIPHER_KEY": KEY}
    repeat = ["--store", url, "allocate", "--initiative", "gw-bissau-village", "--year",
              "2021", "--amount", "1000.00", "--command-id", "a-guessable"]  # fmt: skip
    assert CliRunner().invoke(cli, repeat, env=env).exit_code == 0
    with closing(sqlite3.connect(path)) as db, db:  # as written before receipts were keyed
        db.execute("UPDATE homeledger_commands SET fingerprint = ? WHERE command_id = ?",
                   (ALLOCATE.fingerprint(), "a-guessable"))  # fmt: skip
    assert CliRunner().invoke(cli, repeat, env=env).exit_code == 0
    other = [*repeat[:-3], "2000.00", *repeat[-2:]]
    assert CliRunner().invoke(cli, other, env=env).exit_code == 3  # another command: refused
    assert rows(path, "SELECT COUNT(*) FROM stored_events")[0][0] == len(commands()) + 1


def test_what_stays_in_clear_is_what_the_guarantees_say(tmp_path: Path) -> None:
    path = tmp_path / "enc.db"
    url = f"sqlite:///{path}"
    record(url)
    assert CliRunner().invoke(cli, ["--store", url, "balances"],
                              env={"HOMELEDGER_CIPHER_KEY": KEY}).exit_code == 0  # fmt: skip
    secret_text = (b"Heimstaden", b"sustainable hub", b"ops@example.org")
    for table in ("stored_events", "stored_snapshots"):  # encrypted
        states = [bytes(r[0]) for r in rows(path, f"SELECT state FROM {table}")]
        assert states and not any(t in s for s in states for t in secret_text), table
    # In clear: topics, versions, command ids, and the read models.
    topics = {r[0] for r in rows(path, "SELECT topic FROM stored_events")}
    assert "homeledger:FundsAllocated" in topics
    assert ("a-guessable",) in rows(path, "SELECT command_id FROM homeledger_commands")
    audit = rows(path, "SELECT actor, detail FROM hl_proj_audit")
    assert ("ops@example.org",) in {(a,) for a, _ in audit}
    assert any("sustainable hub" in str(detail) for _, detail in audit)
