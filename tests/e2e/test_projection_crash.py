"""Crash: a projection process killed with SIGKILL at random moments, then restarted.

A real `homeledger` subprocess catches the projections up (or replays them) on a real
store, a page of a few facts per transaction, and is killed at a random moment once
it has started writing, several times. After every kill the stored models stand
exactly at the end of a page they wrote; after a final restart they equal a clean
rebuild, checkpoints included, and `verify` passes.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.rebuild import synthetic_commands
from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import open_store
from homeledger.cli.main import cli
from homeledger.projections.db import ProjectionDB
from homeledger.projections.read_models import PROJECTIONS
from homeledger.projections.runner import ProjectionRunner
from tests.helpers import dump_projections
from tests.workers import kill_midway

pytestmark = pytest.mark.slow

EVENTS = 1500
KILLS = 6
ROOT = str(Path(__file__).resolve().parents[2])


def homeledger(url: str, *args: str, stderr: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": ROOT, "HOMELEDGER_PROJECTION_PAGE": "5",
           "HOMELEDGER_PROJECTION_SNAPSHOT_EVERY": "40"}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "homeledger.cli", "--store", url, *args],
        env=env, stdout=subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip


def tracking(db: ProjectionDB) -> dict[str, int]:
    db.ensure_schema()
    with db.read() as tx:
        return tx.tracking(PROJECTIONS)


def test_killed_projection_process_resumes_to_a_clean_rebuild(store_url: str) -> None:
    store = open_store(Settings(store=store_url))
    app = LedgerApplication(store, actor="crash-test", snapshot_every=0)
    commands = synthetic_commands(EVENTS * (2 * KILLS + 1), seed=11)
    app.execute_batch(list(islice(commands, EVENTS)))
    db = ProjectionDB(store.location)
    rnd = random.Random(int(os.environ.get("HOMELEDGER_CRASH_SEED", "0")) or None)
    kills = runs = 0
    try:
        while kills < KILLS:
            assert runs < 2 * KILLS, f"only {kills} of {runs} runs were killed midway"
            # First a replay (drop, then rebuild), then catch-ups that resume after a kill.
            args = ("replay",) if runs == 0 else ("balances",)
            before = 0 if runs == 0 else min(tracking(db).values())
            if runs:  # new facts recorded meanwhile: there is always work to catch up
                app.execute_batch(list(islice(commands, EVENTS // 3)))
            head = store.max_position()
            # Killed at a random moment after its first page, before the last.
            target = before + 1 + rnd.randrange((head - before) // 2)
            process = homeledger(store_url, *args)
            runs += 1
            kills += kill_midway(process, lambda: min(tracking(db).values()), target, head)
            positions = tracking(db)
            assert len(set(positions.values())) == 1, positions  # one transaction per page
            with db.read() as tx:
                last = tx.query("SELECT MAX(position) FROM hl_proj_timeline")[0][0] or 0
            assert last == positions["timeline"], "a page's rows and position go together"
        head = store.max_position()
        finished = homeledger(store_url, "balances", stderr=subprocess.PIPE)
        _, err = finished.communicate(timeout=120)
        assert finished.returncode == 0, err.decode()
        assert min(tracking(db).values()) == head
        verified = CliRunner().invoke(cli, ["--store", store_url, "verify"])
        assert verified.exit_code == 0, verified.output
        resumed = dump_projections(db)
        ProjectionRunner(store, db, snapshot_every=40).rebuild()
        assert dump_projections(db) == resumed
    finally:
        db.close()
        store.close()
