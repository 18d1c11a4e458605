"""The docker/ deployment files, checked without Docker (it cannot run on CI machines).

The topology itself (3-node JetStream cluster, stream at 3 replicas, relay, consumer-side
projector) runs in tests/e2e/test_relay_crash.py and the consumer tests from the same
binary; here the files that wire it up are checked: the NATS configuration parses with
the pinned server, and every homeledger command the compose file runs is one the CLI
accepts with those exact options.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from homeledger.adapters.nats_server import nats_server_binary
from homeledger.cli.main import cli

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = (DOCKER / "docker-compose.yml").read_text(encoding="utf-8")


def test_the_cluster_configuration_is_valid_for_the_pinned_server() -> None:
    env = {**os.environ, "NATS_SERVER_NAME": "nats-1", "NATS_RELAY_PASSWORD": "a",
           "NATS_PROJECTOR_PASSWORD": "b"}  # fmt: skip
    result = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(DOCKER / "nats" / "nats.conf")],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout + result.stderr


def test_a_broken_configuration_is_refused_by_the_same_check(tmp_path: Path) -> None:
    broken = tmp_path / "nats.conf"
    broken.write_text("cluster { routes: [nats://a:6222\n", encoding="utf-8")
    result = subprocess.run([str(nats_server_binary()), "-t", "-c", str(broken)],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert result.returncode != 0


def _homeledger_commands() -> list[list[str]]:
    return [json.loads(match) for match in re.findall(r"^\s+command: (\[.+\])\s*$", COMPOSE, re.M)
            if match != "[]"]  # fmt: skip


def test_the_compose_file_runs_the_relay_and_the_projector() -> None:
    commands = _homeledger_commands()
    assert [c[0] for c in commands] == ["relay", "project"]
    assert "--replicas" in commands[0] and commands[0][commands[0].index("--replicas") + 1] == "3"


@pytest.mark.parametrize("command", _homeledger_commands(), ids=lambda c: c[0])
def test_every_compose_command_is_accepted_by_the_cli(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    for option in (arg for arg in command if arg.startswith("--")):
        assert option in result.output


def test_every_environment_variable_the_compose_file_sets_is_one_homeledger_reads() -> None:
    names = set(re.findall(r"^\s+(HOMELEDGER_[A-Z_]+):", COMPOSE, re.M))
    assert names
    readme = (DOCKER.parent / "README.md").read_text(encoding="utf-8")
    unknown = sorted(name for name in names if f"`{name}`" not in readme)
    assert not unknown, f"not documented in the README configuration table: {unknown}"
