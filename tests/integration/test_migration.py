"""A store written before effective dates and reversals opens, replays and verifies
unchanged.

`tests/data/main-store.db` was recorded by the code of main at commit 1a18672 (see
`tests/data/make_main_store.py`): 20 facts of every kind, a seal, command receipts, ledger
snapshots of that version's format and projections of that version's format.
`main-store.json` holds what that code printed for it. The new code reads the very same
figures and envelopes from a copy of it, rebuilds what it must, answers the old command
ids as then, and records on it (a reversal included) with `verify` still clean.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application, open_store
from homeledger.cli.main import cli
from homeledger.domain.ledger import Ledger
from tests.helpers import assert_chain_intact

DATA = Path(__file__).resolve().parents[1] / "data"
READS = {
    "balances_year": ("balances", "--by", "year"),
    "balances_initiative": ("balances", "--by", "initiative"),
    "balances_country": ("balances", "--by", "country"),
    "trial_balance": ("trial-balance",),
    "audit_gw": ("audit", "gw-bissau-village"),
    "audit_nl": ("audit", "nl-siblings-together"),
    "portfolio": ("portfolio", "--on", "2022-12-31"),
    "events": ("events", "list"),
}


@pytest.fixture
def url(tmp_path: Path) -> str:
    copy = tmp_path / "main-store.db"
    shutil.copyfile(DATA / "main-store.db", copy)
    return f"sqlite:///{copy}"


@pytest.fixture
def printed_by_main() -> dict[str, Any]:
    return dict(json.loads((DATA / "main-store.json").read_text()))


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--store", url, *args],
                              env={"HOMELEDGER_ACTOR": "auditor@example.org"})  # fmt: skip


def read(url: str, *args: str) -> Any:
    result = run(url, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def as_main_printed(name: str, rows: Any) -> Any:
    """The new code's rows without the columns added since (the audit trail's link)."""
    if name.startswith("audit"):
        assert all(row.pop("reversed_position") is None for row in rows)
    return rows


def test_the_old_store_reads_the_same_figures_and_envelopes(
    url: str, printed_by_main: dict[str, Any]
) -> None:
    for name, args in READS.items():
        assert as_main_printed(name, read(url, *args)) == printed_by_main[name], name
    verified = read(url, "verify")
    assert verified["ok"], verified
    assert verified["head"] == 20
    read(url, "replay")  # dropped and rebuilt from the facts: the same again
    for name, args in READS.items():
        assert as_main_printed(name, read(url, *args)) == printed_by_main[name], name


def test_the_old_store_replays_to_the_ledger_of_its_facts(url: str) -> None:
    store = open_store(Settings(store=url))  # as the application opens it: new tables made
    try:
        assert assert_chain_intact(store) == 20
        state = store.load_state()  # its snapshots are of the old format: replayed instead
        assert state.version == 20
        replayed = Ledger()
        for envelope in store.envelopes():
            replayed.admit(envelope.fact, envelope.stamp())  # every rule, dates included
            replayed.apply(envelope.fact, envelope.stamp())
        # The facts a reversal may name: kept in memory by the replay, read from the store
        # by the loaded ledger, the same.
        assert replace(state.ledger, allocations=None, recorded=None) == replace(
            replayed, allocations=None, recorded=None)  # fmt: skip
        kinds = sorted(known.type for known in replayed.recorded.changed.values())
        assert kinds.count("DonationReceived") == 2 and kinds.count("UnitsAcquired") == 4
        for position in range(1, 21):
            assert state.ledger.recorded.get(position) == replayed.recorded.get(position)
    finally:
        store.close()


def test_old_command_ids_are_answered_as_then(url: str, printed_by_main: dict[str, Any]) -> None:
    """Their fingerprints did not change: a repeat records nothing and answers as then."""
    first = next(e for e in printed_by_main["events"] if e["command_id"] == "a1")
    (again,) = read(url, "allocate", "--initiative", "gw-bissau-village", "--year", "2021",
                    "--amount", "40000.00", "--allocation-id", "2021-gw", "--command-id", "a1")
    assert again == first
    (pledge,) = read(url, "pledge", "--year", "2021", "--command-id", "p2021")
    assert pledge["command_id"] == "p2021" and pledge["position"] == 8
    other = run(url, "pledge", "--year", "2022", "--command-id", "p2021")
    assert other.exit_code == 3 and "command-id-unique" in other.stderr
    assert read(url, "events", "stats")["events"] == 20


def test_the_old_store_takes_new_facts_and_reversals(url: str) -> None:
    receipt = next(e for e in read(url, "events", "list", "--type", "DonationReceived")
                   if e["command_id"] == "m2")  # fmt: skip
    (reversal,) = read(url, "reverse", str(receipt["position"]), "--reason", "recorded twice",
                       "--on", "2022-04-30")  # fmt: skip
    assert reversal["data"]["original"] == receipt["data"]
    assert reversal["prev_hash"] == read(url, "events", "show", "20")["hash"]
    read(url, "allocate", "--initiative", "gw-bissau-village", "--year", "2022",
         "--amount", "100.00", "--on", "2022-05-01")  # fmt: skip
    year_2021 = read(url, "balances", "--year", "2021")[0]
    assert year_2021["received"] == "50000.00"  # 50,000.00 + 20,000.00 - 20,000.00
    assert read(url, "verify")["ok"]
    app = build_application(Settings(store=url))
    try:
        assert app.refreshed_state().version == 22
    finally:
        app.store.close()
