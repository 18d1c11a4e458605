"""`verify` replays every fact through the rules without holding every allocation ever
made: after each page the allocations it changed move to a scratch file on disk, which
is removed when the verify ends (passed or not)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.shapes import allocation_heavy, write_jsonl
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import open_store
from homeledger.cli.main import cli
from homeledger.domain.ledger import Allocations
from homeledger.projections import verify as verify_module
from homeledger.projections.db import ProjectionDB
from homeledger.projections.runner import ProjectionRunner
from homeledger.projections.scratch_allocations import ScratchAllocations
from tests.forger import raw_events

FACTS = 3_000  # 521 set-up facts, then allocations: about 2,500, over three pages


def test_the_rule_replay_keeps_one_pages_allocations_in_memory(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = write_jsonl(tmp_path / "ledger.jsonl", allocation_heavy(FACTS))
    imported = CliRunner().invoke(cli, ["--store", store_url, "import", str(lines)])
    assert imported.exit_code == 0, imported.stderr
    in_memory: list[int] = []
    folders: list[str] = []
    keep = ScratchAllocations.keep

    def counted(scratch: ScratchAllocations, allocations: Allocations) -> Allocations:
        in_memory.append(len(allocations.changed))
        folders.append(scratch._folder.name)
        return keep(scratch, allocations)

    monkeypatch.setattr(ScratchAllocations, "keep", counted)
    store = open_store(Settings(store=store_url), create=False)
    db = ProjectionDB(store.location)
    try:
        report = verify_module.verify(store, db, ProjectionRunner(store, db))
        with raw_events(store_url) as raw:
            stored = raw.run("SELECT count(*) FROM homeledger_allocations")[0][0]
    finally:
        db.close()
        store.close()
    assert report.ok, [c.to_dict() for c in report.checks]
    assert stored > 2 * verify_module.PAGE  # more allocations than one page holds
    assert sum(in_memory) == stored and max(in_memory) <= verify_module.PAGE
    assert folders and not Path(folders[0]).exists()  # the scratch file is gone
