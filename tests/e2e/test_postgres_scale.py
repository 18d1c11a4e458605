"""PostgreSQL at realistic sizes.

An import of 100,000 commands completes in one transaction (psycopg's pipeline mode,
which could hang on large batches, is not used), and the store it makes replays,
verifies, relays and is projected from the stream; two imports of 20,000 commands
racing each other are never interleaved: one is recorded whole, the other refused whole
or recorded whole after it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from bench.shapes import allocation_heavy, write_jsonl
from homeledger.adapters.nats_server import NatsServer
from tests.nats_helpers import cli_env, run_cli, spawn_cli
from tests.workers import reaped

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def ok(args: list[str], env: dict[str, str]) -> str:
    done = run_cli(args, env, timeout=1800)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.nats
def test_an_import_of_100000_commands_completes_and_every_path_reads_it(
    pg_url: str, server: NatsServer, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "commands.jsonl", allocation_heavy(100_000))
    env = cli_env(pg_url, server.url)
    summary = ok(["import", str(path)], env)
    assert summary.strip() == (
        "imported 100000 commands: 100000 events recorded at positions 1..100000"
    )
    assert json.loads(ok(["--format", "json", "replay"], env))["events"] == 100_000
    verified = json.loads(ok(["--format", "json", "verify"], env))
    assert verified["ok"] and verified["head"] == 100_000
    relayed = json.loads(ok(["--format", "json", "relay", "--once"], env))
    assert relayed["published"] == 100_000
    consumer = cli_env(f"sqlite:///{tmp_path / 'consumer.db'}", server.url)
    projected = json.loads(ok(["--format", "json", "project", "--from-nats", "--durable",
                               "scale", "--once"], consumer))  # fmt: skip
    assert projected["applied"] == 100_000 and projected["position"] == 100_000
    for by in ("year", "initiative"):
        args = ["--format", "json", "balances", "--by", by]
        assert json.loads(ok(args, consumer)) == json.loads(ok(args, env))
    against = json.loads(ok(["--format", "json", "verify", "--against-nats"], env))
    assert against["ok"], against


def _racing_files(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A base file (the partnership, its homes, pledges, initiatives) and two files of
    20,000 allocations each, every line with a command id naming its file."""
    lines = list(allocation_heavy(40_521))
    base = write_jsonl(tmp_path / "base.jsonl", iter(lines[:521]))
    files = []
    for n, name in enumerate("ab"):
        own = lines[521 + n * 20_000: 521 + (n + 1) * 20_000]
        tagged = ({**line, "command_id": f"{name}-{i}"} for i, line in enumerate(own))
        files.append(write_jsonl(tmp_path / f"{name}.jsonl", tagged))
    return base, files


@pytest.mark.parametrize("lock_timeout", ["600", "1"], ids=["waiting", "impatient"])
def test_two_racing_imports_are_never_interleaved(
    pg_url: str, tmp_path: Path, lock_timeout: str
) -> None:
    base, files = _racing_files(tmp_path)
    env = cli_env(pg_url, "nats://127.0.0.1:1", HOMELEDGER_LOCK_TIMEOUT=lock_timeout)
    ok(["import", str(base)], env)
    racers = [spawn_cli(["import", str(path)], env) for path in files]
    outcomes = []
    for racer in racers:
        with reaped(racer):
            _, err = racer.communicate(timeout=1800)
            outcomes.append((racer.returncode, err))
    positions: dict[str, list[int]] = defaultdict(list)
    for line in ok(["--format", "jsonl", "events", "list", "--from-position", "522"],
                   env).splitlines():  # fmt: skip
        envelope = json.loads(line)
        positions[envelope["command_id"].split("-")[0]].append(envelope["position"])
    assert any(code == 0 for code, _ in outcomes), outcomes
    for (code, err), name in zip(outcomes, "ab", strict=True):
        if code == 0:  # recorded whole, in one run of positions
            assert len(positions[name]) == 20_000, err
            assert positions[name] == list(range(positions[name][0], positions[name][0] + 20_000))
        else:  # refused whole: the lock stayed taken by the other import
            assert (code, "store-busy" in err, err.count("\n")) == (3, True, 1), err
            assert name not in positions
