"""Ctrl-C anywhere: exit 130 with one line, and nothing half-written.

SIGINT is sent at a random moment (seeded, several per command) to `import`, `replay`,
`relay` and `project --from-nats` working on a sizable ledger. Whatever the moment, the
command ends with exit 130 and one line (or, if it finished first, exit 0), and what it
wrote is whole: the import is all or nothing, the read models verify, the stream holds
a gap-free prefix of the store exactly once, and the consumer store finishes equal to
the store's figures. The tests wait on processes, never on the clock; the delays only
pick the moment.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest

from bench.shapes import allocation_heavy, write_jsonl
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import open_store
from tests.nats_helpers import (
    assert_exactly_once_in_order,
    cli_env,
    read_stream,
    run_cli,
    spawn_cli,
)
from tests.workers import reaped

pytestmark = pytest.mark.slow
MOMENTS = [random.Random(seed).uniform(0.2, 4.0) for seed in range(3)]


def interrupted(args: list[str], env: dict[str, str], after: float) -> tuple[int, str]:
    """Run the CLI, send SIGINT `after` seconds in (if still running); exit code, stderr."""
    with reaped(spawn_cli(args, env)) as process:
        time.sleep(after)  # picks the moment only: every outcome is checked
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=600)
    if process.returncode == 130:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "interrupted" in lines[-1], err
    else:
        assert process.returncode == 0, err
    return process.returncode, err


def ok(args: list[str], env: dict[str, str]) -> str:
    done = run_cli(args, env, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def events(env: dict[str, str]) -> int:
    return int(json.loads(ok(["--format", "json", "events", "stats"], env))["events"])


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("interrupts")
    return write_jsonl(folder / "commands.jsonl", allocation_heavy(30_000))


@pytest.mark.parametrize("after", MOMENTS)
def test_an_interrupted_import_records_all_or_nothing(
    commands: Path, tmp_path: Path, after: float
) -> None:
    env = cli_env(f"sqlite:///{tmp_path / 'ledger.db'}", "nats://127.0.0.1:1")
    code, _ = interrupted(["import", str(commands)], env, after)
    stats = run_cli(["--format", "json", "events", "stats"], env)
    recorded = 0 if stats.returncode == 4 else json.loads(stats.stdout)["events"]  # no store
    # All or nothing: an interrupt after the commit finds everything recorded.
    assert recorded == 30_000 if code == 0 else recorded in (0, 30_000)


@pytest.mark.parametrize("after", MOMENTS)
def test_an_interrupted_replay_leaves_read_models_that_verify(
    commands: Path, tmp_path: Path, after: float
) -> None:
    env = cli_env(f"sqlite:///{tmp_path / 'ledger.db'}", "nats://127.0.0.1:1")
    ok(["import", str(commands)], env)
    interrupted(["replay"], env, after)
    verified = json.loads(ok(["--format", "json", "verify"], env))
    assert verified["ok"] and verified["head"] == 30_000, verified


@pytest.mark.nats
@pytest.mark.parametrize("after", MOMENTS)
def test_an_interrupted_relay_and_projector_go_on_exactly_once(
    commands: Path, tmp_path: Path, server: NatsServer, after: float
) -> None:
    env = cli_env(f"sqlite:///{tmp_path / 'ledger.db'}", server.url)
    consumer = cli_env(f"sqlite:///{tmp_path / 'consumer.db'}", server.url)
    ok(["import", str(commands)], env)
    interrupted(["relay", "--once"], env, after)
    ok(["relay", "--once"], env)
    store = open_store(Settings(store=env["HOMELEDGER_STORE"]), create=False)
    try:
        assert_exactly_once_in_order(read_stream(server.url), list(store.envelopes()))
    finally:
        store.close()
    project = ["project", "--from-nats", "--durable", "p", "--once"]
    interrupted(project, consumer, after)
    ok(project, consumer)
    for by in ("year", "initiative"):
        args = ["--format", "json", "balances", "--by", by]
        assert json.loads(ok(args, consumer)) == json.loads(ok(args, env))
    assert events(env) == 30_000
