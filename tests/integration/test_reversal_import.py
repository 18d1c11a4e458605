"""Reversals in an import, on SQLite and PostgreSQL: the import holds the store's write
lock for its whole transaction, so the fact a reversal names (by position, or by event
id, found newest first) is read in that very transaction; a dry run records nothing.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from homeledger.cli.main import cli
from homeledger.domain import commands as c
from homeledger.domain import reference_case


def run(url: str, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--store", url, "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_import_reverses_by_position_and_event_id(store_url: str, tmp_path: Path) -> None:
    app = build_application(Settings(store=store_url, actor="ops"))
    try:
        app.execute_batch([
            reference_case.partnership(),
            c.AcquireUnits(country="SE", units=1000, on=date(2021, 7, 1)),
            c.PledgeDonation(year=2021, on=date(2021, 7, 1)),
            c.ReceiveDonation(year=2021, amount="500.00", on=date(2021, 12, 15)),
            c.ReceiveDonation(year=2021, amount="700.00", on=date(2021, 12, 16)),
        ])  # fmt: skip
        receipts = list(app.store.envelopes(types=["DonationReceived"]))
    finally:
        app.store.close()
    lines = [
        {"command": "reverse", "id": str(receipts[0].position), "reason": "typed twice",
         "on": "2022-01-05"},
        {"command": "receive", "year": 2021, "amount": "50.00", "on": "2021-12-15"},
        {"command": "reverse", "id": receipts[1].event_id, "reason": "returned"},
    ]  # fmt: skip
    path = tmp_path / "corrections.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    head = run(store_url, "events", "stats")["head_hash"]
    dry = CliRunner().invoke(cli, ["--store", store_url, "import", str(path), "--dry-run"])
    assert dry.exit_code == 0 and "would record 3 events" in dry.stdout, dry.output
    assert run(store_url, "events", "stats")["head_hash"] == head
    recorded = run(store_url, "import", str(path))
    assert [e["type"] for e in recorded] == ["FactReversed", "DonationReceived", "FactReversed"]
    assert [e["data"]["reverses"] for e in recorded[::2]] == [r.event_id for r in receipts]
    (year,) = run(store_url, "balances")
    assert year["received"] == "50.00"
    again = CliRunner().invoke(cli, ["--store", store_url, "import", str(path)])
    assert again.exit_code == 3 and "line 1" in again.stderr and "reverse-once" in again.stderr
    assert run(store_url, "verify")["ok"]
