"""Ledgers the document tests (statement, IATI export) build on: the reference case,
recorded with real dates, plus an initiative whose name and evidence are hostile."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from homeledger.adapters.application import LedgerApplication
from homeledger.cli.main import cli
from homeledger.domain import commands as c
from homeledger.domain import reference_case
from tests.helpers import StepClock, open_app, record

HOSTILE_NAME = '<script>alert(1)</script> & "friends"'
HOSTILE_EVIDENCE = '"><img src=x onerror=alert(2)>'
HOSTILE_ID = "xx-hostile"
# Recorded after every effective date of the reference case.
RECORDED_FROM = datetime(2023, 1, 10, 9, 0, tzinfo=UTC)


def clock() -> StepClock:
    return StepClock(RECORDED_FROM)


def record_reference_case(app: LedgerApplication, *, hostile: bool = True) -> int:
    """The reference case (and the hostile initiative), sealed; the head position."""
    record(app, reference_case.commands())
    if hostile:
        record(app, hostile_commands())
    app.seal()
    return app.store.max_position()


@dataclass(frozen=True)
class RecordedLedger:
    """A store (closed again) holding the reference case and the hostile initiative,
    sealed, recorded by an auditor; a folder for what the tests write."""

    url: str
    folder: Path
    head: int


def recorded_ledger(url: str, folder: Path) -> RecordedLedger:
    app = open_app(url, actor="auditor", clock=clock())
    try:
        head = record_reference_case(app)
    finally:
        app.store.close()
    return RecordedLedger(url, folder, head)


def hostile_commands() -> list[c.Command]:
    return [
        c.RegisterInitiative(id=HOSTILE_ID, name=HOSTILE_NAME, country="SE",
                             programme="<b>bold</b> programme"),
        c.AllocateFunds(initiative=HOSTILE_ID, year=2022, amount=Decimal("12345.67"),
                        allocation_id="2022-hostile"),
        c.DisburseFunds(initiative=HOSTILE_ID, amount=Decimal("2345.67"), on="2022-12-01"),
        c.RecordMilestone(initiative=HOSTILE_ID, name="</td></tr><tr><td>injected",
                          on="2022-12-02", evidence=HOSTILE_EVIDENCE),
    ]  # fmt: skip


def run(url: str, *args: str) -> Any:
    """`homeledger --store URL --format json ARGS` in process; its parsed output."""
    result = CliRunner().invoke(cli, ["--store", url, "--format", "json", *args],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


UNWRITABLE = ["missing-folder", "file-as-folder", "folder", "suffix"]


def unwritable_output(folder: Path, where: str, suffix: str) -> Path:
    """A path a document of `suffix` cannot be written to (`where`, one of UNWRITABLE),
    in a folder that already holds a file `a-file` and a folder `a-folder{suffix}`."""
    (folder / "a-file").write_text("x")
    (folder / f"a-folder{suffix}").mkdir()
    return {"missing-folder": folder / "nowhere" / f"x{suffix}",
            "file-as-folder": folder / "a-file" / f"x{suffix}",
            "folder": folder / f"a-folder{suffix}", "suffix": folder / "x.txt"}[where]  # fmt: skip
