"""A forger with write access to the database, and what stops them.

The ledger is the reference case with a seal in the middle (25 facts, the seal at 13
covering 1..12), its projections built. Each attack is made with the forger's tools
(tests/forger.py), as carefully as a forger would: hashes recomputed, the chain kept
consistent, seals recomputed. Each must be found by `verify` (exit 1) at the position
of the fact that was changed or forged, and none may let the ledger record a command
on a state that a replay of the facts through the rules would not give.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.hash_chain import canonical_json
from homeledger.adapters.ledger_snapshot import ledger_to_dict
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from homeledger.cli.main import cli
from tests.forger import RawEvents
from tests.helpers import StepClock, record
from tests.helpers import pro_rata_commands as reference_commands

SEAL_AT, LAST = 13, 25
PLEDGE_2021, RELEASE, DISBURSEMENT = 9, 14, 22  # 80602.74; 5000.00 of a-se-2021; 60000.00
DISBURSE = ["disburse", "--initiative", "gw-bissau-village", "--amount", "1.00",
            "--on", "2022-03-01"]  # fmt: skip


def raw_key(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.private_bytes_raw()).decode()


def public_pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


SEAL_KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()  # a key the verifier does not trust


class Ledger:
    """The reference case on one store, with the keys its operator holds."""

    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.url, self.env = url, env
        self.raw = RawEvents(url)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, ["--store", self.url, *args],
                                  env={**self.env, **(env or {})})  # fmt: skip

    def verify(self, **env: str) -> tuple[Result, dict[str, Any]]:
        result = self.run("--format", "json", "verify", env=env)
        report = json.loads(result.stdout)
        report["by_name"] = {c["check"]: c for c in report["checks"]}
        return result, report

    def count(self) -> int:
        return len(self.raw.positions())


def build(url: str, settings: dict[str, Any]) -> LedgerApplication:
    return build_application(Settings(store=url, actor="ops", **settings), clock=StepClock())


@pytest.fixture
def ledger(store_url: str) -> Iterator[Ledger]:
    """Sealed with SEAL_KEY; the verifier trusts its public key."""
    app = build(store_url, {"seal_key": raw_key(SEAL_KEY)})
    commands = reference_commands()
    record(app, commands[:12])
    app.seal()
    record(app, commands[12:])
    app.store.close()
    env = {"HOMELEDGER_SEAL_KEY": raw_key(SEAL_KEY),
           "HOMELEDGER_SEAL_PUBLIC_KEY": public_pem(SEAL_KEY)}  # fmt: skip
    made = Ledger(store_url, env)
    assert made.run("balances").exit_code == 0  # projections exist, as in real life
    result, report = made.verify()
    assert result.exit_code == 0, report
    yield made
    made.raw.close()


def assert_found(ledger: Ledger, check: str, position: int, words: str = "",
                 **env: str) -> dict[str, Any]:  # fmt: skip
    result, report = ledger.verify(**env)
    assert result.exit_code == 1, result.output
    found = report["by_name"][check]
    assert found["ok"] is False and found["first_bad_position"] == position, found
    assert words in found["detail"], found
    return report


# Facts that no valid command could have recorded, correctly chained at the tail.


@pytest.mark.parametrize(
    ("fact", "data", "rule"),
    [
        ("FundsDisbursed", {"initiative": "gw-bissau-village", "amount": "999999999.00",
                            "currency": "EUR", "disbursed_on": "2022-03-01"},
         "disbursement-within-allocation"),
        ("FundsAllocated", {"allocation_id": "a-huge", "initiative": "gw-bissau-village",
                            "year": 2021, "amount": "50000000.00", "currency": "EUR"},
         "allocation-within-pledge"),
        ("FundsDisbursed", {"initiative": "nowhere", "amount": "10.00", "currency": "EUR",
                            "disbursed_on": "2022-03-01"}, "initiative-exists"),
        ("DonationPledged", {"year": 2021, "basis": "pro-rata", "unit_basis": 294200,
                             "rate": "100.00", "amount": "999000000.00",
                             "delta": "998919397.26", "currency": "EUR"}, "pledge-computed"),
    ],
    ids=["over-disbursement", "allocation-beyond-pledge", "unregistered-initiative",
         "pledge-not-computed"],
)  # fmt: skip
def test_a_forged_fact_at_the_tail_is_found_and_stops_the_ledger(
    ledger: Ledger, fact: str, data: dict[str, Any], rule: str
) -> None:
    position = ledger.raw.append(fact, data)
    report = assert_found(ledger, "rules", position, f"[{rule}]")
    assert report["by_name"]["hash-chain"]["ok"]  # the chain itself is consistent
    before = ledger.count()
    refused = ledger.run(*DISBURSE)
    assert refused.exit_code == 1, refused.output  # nothing decided on a broken ledger
    assert f"version {position}" in refused.stderr and f"[{rule}]" in refused.stderr
    assert ledger.count() == before


def test_a_fact_hidden_under_another_aggregate_id_is_found_and_stops_the_ledger(
    ledger: Ledger,
) -> None:
    ledger.raw.set_originator(DISBURSEMENT, ledger.raw.other_aggregate())
    assert_found(ledger, "hash-chain", DISBURSEMENT, "another aggregate")
    refused = ledger.run("disburse", "--initiative", "gw-bissau-village", "--amount",
                         "90000.00", "--on", "2022-03-01")  # fmt: skip
    assert refused.exit_code == 1, refused.output  # not decided with 60000.00 hidden
    assert "does not continue the chain" in refused.stderr


def test_a_deleted_receipt_is_found(ledger: Ledger) -> None:
    command_id = ledger.raw.body(DISBURSEMENT)["command_id"]
    ledger.raw.delete_receipt(command_id)
    assert_found(ledger, "receipts", DISBURSEMENT, repr(command_id))


def test_the_newest_facts_removed_are_found_by_their_receipts(ledger: Ledger) -> None:
    """Removing the newest facts keeps the chain consistent; their receipts remain."""
    ledger.raw.run("DELETE FROM stored_events WHERE ID > ?", (LAST - 2,))
    assert ledger.run("replay").exit_code == 0  # the projections rebuilt to match
    report = assert_found(ledger, "receipts", LAST - 1, "not stored (removed?)")
    assert report["by_name"]["hash-chain"]["ok"]


def test_an_edited_allocation_row_is_found(ledger: Ledger) -> None:
    """The table the ledger looks allocations up in, edited: 5000.00 of a-se-2021 released
    becomes none."""
    ledger.raw.set_allocation("a-se-2021", released=0)
    assert_found_anywhere(ledger, "ledger-snapshots", "allocation table differs")


def test_a_deleted_or_forged_allocation_row_is_found_and_counted(ledger: Ledger) -> None:
    """A row removed (the ledger would find no such allocation) and a row no fact made
    (the ledger would accept releases from it): two differences, the smallest id named."""
    ledger.raw.delete_allocation("a-se-2021")
    ledger.raw.add_allocation("a-forged", "gw-b", 2021, 99_900)
    result, report = ledger.verify()
    assert result.exit_code == 1, result.output
    found = report["by_name"]["ledger-snapshots"]
    assert found["ok"] is False, found
    assert "differs from the replay for 2 allocation(s), the first 'a-forged'" in found["detail"]


def assert_found_anywhere(ledger: Ledger, check: str, words: str) -> None:
    result, report = ledger.verify()
    assert result.exit_code == 1, result.output
    found = report["by_name"][check]
    assert found["ok"] is False and words in found["detail"], found


def test_a_receipt_pointing_elsewhere_is_found(ledger: Ledger) -> None:
    body = ledger.raw.body(RELEASE)
    ledger.raw.run("UPDATE homeledger_commands SET first_version = ?, last_version = ? "
                   "WHERE command_id = ?", (LAST, LAST, body["command_id"]))  # fmt: skip
    assert_found(ledger, "receipts", RELEASE, "no receipt covers")


# The decision state's snapshots.


@pytest.fixture
def snapshotted(store_url: str) -> Iterator[Ledger]:
    """The reference case, a ledger snapshot every 5 facts (under the seal key)."""
    app = build(store_url, {"seal_key": raw_key(SEAL_KEY), "ledger_snapshot_every": 5})
    record(app, reference_commands())
    app.store.close()
    made = Ledger(store_url, {"HOMELEDGER_SEAL_KEY": raw_key(SEAL_KEY)})
    assert made.raw.snapshot_versions()[-1] == 20
    yield made
    made.raw.close()


def forge_snapshot(ledger: Ledger, version: int, mac: str | None) -> None:
    """The snapshot at `version` rewritten with the 2021 pledge at 999,000,000.00 (the
    chain hash right, the ledger otherwise as stored), with `mac` (or none at all)."""
    stored = json.loads(ledger.raw.snapshot(version))
    stored["ledger"]["years"]["2021"][0] = "999000000.00"
    if mac is None:
        stored.pop("mac", None)
    else:
        stored["mac"] = mac
    ledger.raw.write_snapshot(version, canonical_json(stored))


@pytest.mark.parametrize("mac", [None, "0" * 64], ids=["plain", "forged-mac"])
def test_a_forged_snapshot_is_not_trusted_by_the_ledger_and_is_found(
    snapshotted: Ledger, mac: str | None
) -> None:
    version = snapshotted.raw.snapshot_versions()[-1]
    forge_snapshot(snapshotted, version, mac)
    for command in (["allocate", "--initiative", "gw-bissau-village", "--year", "2021",
                     "--amount", "500000000.00"],
                    ["receive", "--year", "2021", "--amount", "900000000.00",
                     "--on", "2022-01-20"]):  # fmt: skip
        refused = snapshotted.run(*command)
        assert refused.exit_code == 3, refused.output  # decided on the facts, not the forgery
    assert_found(snapshotted, "ledger-snapshots", version, "ledger.years")


def test_a_genuine_snapshot_is_used(snapshotted: Ledger, store_url: str) -> None:
    """Loading reads only the facts after the newest snapshot (20): the facts before it
    are not even read (made unreadable here, they would stop a full replay)."""
    for position in range(1, 20):
        snapshotted.raw.run("UPDATE stored_events SET state = ? WHERE ID = ?",
                            (b"unreadable", position))  # fmt: skip
    app = build(store_url, {"seal_key": raw_key(SEAL_KEY)})
    try:
        state = app.refreshed_state()
        assert state.version == 24
        assert ledger_to_dict(state.ledger)["years"]["2021"][0] == "80602.74"
    finally:
        app.store.close()


def test_without_a_key_no_snapshot_is_written_or_trusted(store_url: str) -> None:
    app = build(store_url, {"ledger_snapshot_every": 5})
    record(app, reference_commands())
    app.store.close()
    raw = RawEvents(store_url)
    try:
        assert raw.snapshot_versions() == []
    finally:
        raw.close()


# Seals: a rewrite under a signed seal.


def rewrite_under_the_seal(ledger: Ledger, signer: Ed25519PrivateKey | None) -> None:
    """Fact 7 (an initiative's name) edited, every hash after it recomputed, the seal's
    digest recomputed (and signed, if the forger holds a key)."""
    body = ledger.raw.body(7)
    body["data"]["name"] = "Forged name"
    ledger.raw.rechain_from(7, body)
    ledger.raw.reseal(SEAL_AT, signer)
    ledger.raw.rechain_from(SEAL_AT)


def test_a_rewrite_under_a_signed_seal_is_found_with_the_public_key_alone(
    ledger: Ledger,
) -> None:
    rewrite_under_the_seal(ledger, signer=None)
    no_private = {"HOMELEDGER_SEAL_KEY": ""}
    result, report = ledger.verify(**no_private)
    assert result.exit_code == 1
    assert report["by_name"]["hash-chain"]["ok"]  # consistent: only the signature tells
    assert report["by_name"]["seals"]["first_bad_position"] == SEAL_AT
    assert "not signed" in report["by_name"]["seals"]["detail"]


def test_a_rewrite_resigned_with_another_key_is_found(ledger: Ledger) -> None:
    rewrite_under_the_seal(ledger, signer=OTHER_KEY)
    assert_found(ledger, "seals", SEAL_AT, "not among the trusted public keys")


def test_a_signature_copied_onto_a_rewritten_digest_is_found(ledger: Ledger) -> None:
    signature = ledger.raw.body(SEAL_AT)["data"]["signature"]
    rewrite_under_the_seal(ledger, signer=None)
    body = ledger.raw.body(SEAL_AT)
    body["data"].update(signature=signature, key_id=ledger.raw.body(SEAL_AT)["data"]["key_id"]
                        or _key_id(SEAL_KEY))  # fmt: skip
    ledger.raw.rechain_from(SEAL_AT, body)
    assert_found(ledger, "seals", SEAL_AT, "does not verify")


def _key_id(key: Ed25519PrivateKey) -> str:
    from homeledger.adapters.seals import key_id

    return key_id(key.public_key())


def test_without_the_public_key_a_consistent_rewrite_shows_only_in_the_digest(
    ledger: Ledger,
) -> None:
    """What an unsigned seal proves: against a forger who does not recompute it."""
    body = ledger.raw.body(7)
    body["data"]["name"] = "Forged name"
    ledger.raw.rechain_from(7, body)
    result, report = ledger.verify(HOMELEDGER_SEAL_PUBLIC_KEY="")
    assert result.exit_code == 1
    assert report["by_name"]["seals"]["first_bad_position"] == SEAL_AT
    ledger.raw.reseal(SEAL_AT)
    ledger.raw.rechain_from(SEAL_AT)
    assert ledger.run("replay").exit_code == 0  # the projections rebuilt, as a forger would
    assert ledger.verify(HOMELEDGER_SEAL_PUBLIC_KEY="")[0].exit_code == 0  # the limit


def test_keys_rotate(ledger: Ledger, tmp_path: Path) -> None:
    """A new key signs the next seal; verify trusts every listed key (a file of PEM
    blocks); a seal signed by a key no longer listed is a finding only if it is the
    newest (the newest proves everything before it)."""
    new_key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "seal.pem"
    key_file.write_bytes(new_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    assert ledger.run("seal", env={"HOMELEDGER_SEAL_KEY": str(key_file)}).exit_code == 0
    both = tmp_path / "trusted.pem"
    both.write_text(public_pem(SEAL_KEY) + public_pem(new_key))
    assert ledger.verify(HOMELEDGER_SEAL_PUBLIC_KEY=str(both))[0].exit_code == 0
    assert ledger.verify(HOMELEDGER_SEAL_PUBLIC_KEY=public_pem(new_key))[0].exit_code == 0
    assert_found(ledger, "seals", LAST + 1, "not among the trusted",
                 HOMELEDGER_SEAL_PUBLIC_KEY=public_pem(SEAL_KEY))


def test_an_unsigned_newest_seal_or_none_at_all_is_found_with_a_public_key(
    ledger: Ledger, store_url: str
) -> None:
    assert ledger.run("seal", env={"HOMELEDGER_SEAL_KEY": ""}).exit_code == 0
    assert_found(ledger, "seals", LAST + 1, "not signed")


def test_a_malformed_key_is_bad_input_and_never_shown(ledger: Ledger) -> None:
    for variable in ("HOMELEDGER_SEAL_KEY", "HOMELEDGER_SEAL_PUBLIC_KEY"):
        secret = "Zq" + "x" * 40
        command = ["seal"] if variable == "HOMELEDGER_SEAL_KEY" else ["verify"]
        result = ledger.run(*command, env={variable: secret})
        assert result.exit_code == 2, result.output
        assert secret not in result.output and variable in result.stderr


# Where a change is reported.


def test_an_edited_fact_whose_hash_was_recomputed_is_named_at_its_own_position(
    ledger: Ledger,
) -> None:
    ledger.raw.edit(RELEASE, {"amount": "4000.00"})
    assert_found(ledger, "hash-chain", RELEASE, "changed and its own hash recomputed")


def test_an_edited_seal_whose_hash_was_recomputed_is_named_at_its_own_position(
    ledger: Ledger,
) -> None:
    ledger.raw.edit(SEAL_AT, {"position": 11})
    report = assert_found(ledger, "hash-chain", SEAL_AT)
    assert report["first_bad_position"] == SEAL_AT
