"""`replay` with a second process (cli/beside.py): the models shared between two runners,
each in a process of its own, on SQLite and PostgreSQL.

The rebuild must be the single-process rebuild, row for row; a failure in either process
stops both and is reported; whatever was committed is repaired by the next replay; and
the second process never outlives the first.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path

import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.errors import StoreUnavailableError
from homeledger.adapters.settings import Settings
from homeledger.cli.beside import BESIDE_FROM, ProcessBeside, Worker
from homeledger.projections.db import ProjectionDB
from homeledger.projections.read_models import PROJECTIONS
from homeledger.projections.runner import ProjectionRunner, split_work
from tests.helpers import clean_env, dump_projections, url_of, wait_until


@pytest.fixture
def recorded(reference_case_ledger: LedgerApplication) -> LedgerApplication:
    return reference_case_ledger


@pytest.fixture
def runner(recorded: LedgerApplication) -> Iterator[ProjectionRunner]:
    db = ProjectionDB(recorded.store.location)
    yield ProjectionRunner(recorded.store, db, page=7, snapshot_every=5)
    db.close()


def beside(app: LedgerApplication) -> ProcessBeside:
    return ProcessBeside(Settings(store=url_of(app.store)))


def test_the_models_are_shared_in_two_and_each_once() -> None:
    mine, theirs = split_work(PROJECTIONS)
    assert mine and theirs and sorted(mine + theirs) == sorted(PROJECTIONS)
    assert split_work(["audit"]) == (["audit"], [])


def test_a_rebuild_with_a_second_process_equals_one_in_a_single_process(
    recorded: LedgerApplication, runner: ProjectionRunner
) -> None:
    runner.rebuild()
    alone = dump_projections(runner.db)
    assert runner.rebuild(beside=beside(recorded)) == recorded.store.max_position()
    assert dump_projections(runner.db) == alone
    runner.rebuild(["balances", "postings"], beside=beside(recorded))
    assert dump_projections(runner.db) == alone


def test_a_failure_in_the_second_process_is_raised_and_the_next_replay_repairs(
    recorded: LedgerApplication, runner: ProjectionRunner, tmp_path: Path
) -> None:
    runner.rebuild()
    alone = dump_projections(runner.db)
    elsewhere = ProcessBeside(Settings(store=f"sqlite:///{tmp_path / 'missing.db'}"))
    with pytest.raises(StoreUnavailableError):
        runner.rebuild(beside=elsewhere)  # its share was left cleared
    assert dump_projections(runner.db) != alone
    runner.rebuild(beside=beside(recorded))
    assert dump_projections(runner.db) == alone


def test_a_failure_here_stops_the_second_process(
    recorded: LedgerApplication, runner: ProjectionRunner
) -> None:
    runner.rebuild()
    alone = dump_projections(runner.db)
    started: list[Worker] = []

    class Watched(ProcessBeside):
        def start(self, names: Sequence[str], page: int, snapshot_every: int) -> Worker:
            worker = super().start(names, page, snapshot_every)
            started.append(worker)
            return worker

    def interrupted(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.rebuild(progress=interrupted, beside=Watched(Settings(store=url_of(recorded.store))))
    worker = started[0]
    assert not worker.process.is_alive()
    runner.rebuild()
    assert dump_projections(runner.db) == alone


# Through the CLI, on a ledger large enough for `replay` to use the second process.


def workers(pid: int) -> list[int]:
    """The replay workers `pid` started (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == pid and b"spawn_main" in command:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_the_second_process_stops_when_replay_is_killed(tmp_path: Path) -> None:
    from bench.shapes import allocation_heavy, write_jsonl

    url = f"sqlite:///{tmp_path / 'big.db'}"
    lines = write_jsonl(tmp_path / "commands.jsonl", allocation_heavy(BESIDE_FROM + 500))
    env = clean_env(HOMELEDGER_STORE=url, HOMELEDGER_ACTOR="ops")
    cli = [sys.executable, "-m", "homeledger.cli"]
    subprocess.run([*cli, "import", str(lines)], env=env, check=True, capture_output=True)
    subprocess.run([*cli, "replay"], env=env, check=True, capture_output=True)
    whole = subprocess.run([*cli, "--format", "json", "trial-balance"], env=env, check=True,
                           capture_output=True, text=True).stdout  # fmt: skip

    head = BESIDE_FROM + 500
    theirs = split_work(PROJECTIONS)[1]
    for _ in range(5):  # until a run in which the worker is caught before it is done
        if worker_stopped_early(cli, env, tmp_path / "big.db", theirs, head):
            break
    else:
        pytest.fail("the worker finished its share before it could be caught, five times")
    again = subprocess.run([*cli, "replay"], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert subprocess.run([*cli, "verify"], env=env, capture_output=True).returncode == 0
    after = subprocess.run([*cli, "--format", "json", "trial-balance"], env=env, check=True,
                           capture_output=True, text=True).stdout  # fmt: skip
    assert after == whole


def tracked(path: Path, names: list[str]) -> list[int]:
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT projection, position FROM hl_proj_tracking").fetchall()
    return [position for name, position in rows if name in names]


def worker_stopped_early(cli: list[str], env: dict[str, str], path: Path, theirs: list[str],
                         head: int) -> bool:  # fmt: skip
    """Start `replay`, freeze its worker as soon as it shows, kill `replay`, let the worker
    go on: it must stop by itself, its models short of the head. False if the worker had
    already caught up when it was frozen (nothing to learn: try again)."""
    replay = subprocess.Popen([*cli, "replay", "--page-size", "100"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    worker = None
    try:
        wait_until(lambda: workers(replay.pid), timeout=120, what="the second process")
        (worker,) = workers(replay.pid)
        os.kill(worker, signal.SIGSTOP)
        if min(tracked(path, theirs)) >= head:
            return False
        os.kill(replay.pid, signal.SIGKILL)
        replay.wait()
        os.kill(worker, signal.SIGCONT)
        wait_until(lambda: not alive(worker), timeout=120, what="the worker to stop")
        assert max(tracked(path, theirs)) < head  # it stopped: it did not go on alone
        return True
    finally:
        if worker is not None and alive(worker):
            os.kill(worker, signal.SIGKILL)
        if replay.poll() is None:
            replay.kill()
            replay.wait()
