"""The README's compose sequence on a fresh deployment, without Docker.

What `docker compose up` starts is started here from the same files: the NATS cluster
from docker/nats/nats.conf with the environment the compose file gives each node, a
fresh PostgreSQL database for the ledger and one for the projector, the relay and the
projector as processes running the compose file's commands with their services'
environments (credentials included). Then every `run ... cli ...` line of the README's
docker section runs in order, as the `cli` service would: its environment, its
working folder (the mounted files folder), `-e` settings, and a file on standard input
after `<`.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeledger.adapters.nats_server import cluster_url
from tests.helpers import CLI, pg_database, wait_until
from tests.nats_helpers import run_cli, spawn_cli
from tests.shipped_deployment import (
    cli_runs,
    compose,
    homeledger_env,
    readme_docker_block,
    service_env,
    start_shipped_cluster,
)

pytestmark = [pytest.mark.nats, pytest.mark.postgres, pytest.mark.slow]

COMMANDS = [  # docker/files/commands.jsonl
    {"command": "units.acquire", "country": "SE", "units": 41800, "on": "2021-07-01"},
    {"command": "units.acquire", "country": "DE", "units": 68200, "on": "2021-07-01"},
    {"command": "pledge", "year": 2021},
    {"command": "initiative.register", "id": "gw-bissau-village", "name": "Bissau hub",
     "country": "GW", "programme": "family-like care"},
    {"command": "allocate", "initiative": "gw-bissau-village", "year": 2021,
     "amount": "1500000.00", "command_id": "a-17"},
]  # fmt: skip
MORE_COMMANDS = [  # more-commands.jsonl, piped in
    {"command": "receive", "year": 2021, "amount": "5000000.00", "on": "2021-12-15"},
    {"command": "disburse", "initiative": "gw-bissau-village", "amount": "900000.00",
     "on": "2022-01-20"},
]  # fmt: skip


def jsonl(commands: list[dict[str, object]]) -> str:
    return "".join(json.dumps(command) + "\n" for command in commands)


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Fresh `homeledger` and `projector` databases, as postgres-init.sql makes them."""
    with pg_database() as ledger, pg_database() as projector:
        yield ledger, projector


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate(timeout=10)
    return err or ""


def test_the_readme_compose_sequence_runs_on_a_fresh_deployment(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    ledger_db, projector_db = databases
    files = tmp_path / "files"  # docker/files, mounted at /files
    files.mkdir()
    (files / "commands.jsonl").write_text(jsonl(COMMANDS), encoding="utf-8")
    (tmp_path / "more-commands.jsonl").write_text(jsonl(MORE_COMMANDS), encoding="utf-8")
    services = compose()["services"]
    servers = start_shipped_cluster(tmp_path / "cluster")
    url = cluster_url(servers)
    cli = homeledger_env("cli", ledger_db, url)
    relay = spawn_cli(services["relay"]["command"], homeledger_env("relay", ledger_db, url))
    projector: subprocess.Popen[str] | None = None
    try:
        # Before `init` nothing is there to verify; the relay waits, with the stream made.
        wait_until(lambda: run_cli(["stream", "info"], cli).returncode == 0, 60, "the stream")
        early = run_cli(["verify"], cli)
        assert early.returncode == 4 and "no homeledger ledger yet" in early.stderr
        projector = spawn_cli(services["projector"]["command"],
                              homeledger_env("projector", projector_db, url))  # fmt: skip
        for run in cli_runs(readme_docker_block()):
            stdin = (tmp_path / run.stdin).read_text(encoding="utf-8") if run.stdin else None
            result = subprocess.run([*CLI, *run.args], env={**cli, **run.env}, cwd=files,
                                    input=stdin, capture_output=True, text=True, timeout=120,
                                    check=False)  # fmt: skip
            assert result.returncode == 0, (run.args, result.stdout, result.stderr)
        events = json.loads(run_cli(["--format", "json", "events", "list"], cli).stdout)
        assert len(events) == 1 + len(COMMANDS) + len(MORE_COMMANDS)
        assert {event["actor"] for event in events} == {service_env("cli")["HOMELEDGER_ACTOR"]}
        report = json.loads((files / "report-2021.json").read_text(encoding="utf-8"))
        assert report["year"] == 2021
        theirs = homeledger_env("projector", projector_db, url)
        ours = run_cli(["--format", "json", "balances", "--by", "initiative"], cli).stdout
        wait_until(lambda: run_cli(["--format", "json", "balances", "--by", "initiative"],
                                   theirs).stdout == ours, 60, "the projector")  # fmt: skip
        assert run_cli(["verify", "--against-nats"], cli).returncode == 0
    finally:
        errors = [stop(process) for process in (projector, relay) if process is not None]
        for server in servers:
            server.stop()
    assert relay.returncode == 0, errors[-1]
    assert "waiting for the ledger" in errors[-1]
