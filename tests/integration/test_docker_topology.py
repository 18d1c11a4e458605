"""The docker/ deployment files, checked without Docker (it cannot run on CI machines).

The topology itself runs in the suite from the same binary: the shipped NATS
configuration as a 3-node cluster with its users and permissions
(tests/integration/test_nats_permissions.py), the README's compose sequence against it
(tests/e2e/test_docker_sequence.py), and a leader killed mid-relay
(tests/e2e/test_relay_crash.py). Here the files that wire it up are checked: the NATS
configuration parses with the pinned server and the environment the compose file
gives it, every homeledger command the compose file and the README run is one the CLI
accepts, every variable is set, documented, and every port kept off the host's own.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from homeledger.adapters.nats_server import nats_server_binary
from homeledger.cli.main import cli
from tests.shipped_deployment import (
    DOCKER,
    NATS_CONF,
    NATS_NODES,
    ROOT,
    cli_runs,
    compose,
    conf_variables,
    env_example,
    readme_docker_block,
    referenced_variables,
    service,
    service_env,
)

HOMELEDGER_SERVICES = ("relay", "projector", "cli")


def _check_config(env: dict[str, str], path: Path = NATS_CONF) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(nats_server_binary()), "-t", "-c", str(path)],
                          env={"PATH": os.environ.get("PATH", ""), **env},
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip


@pytest.mark.parametrize("node", NATS_NODES)
def test_the_nats_configuration_is_valid_with_what_compose_gives_each_node(node: str) -> None:
    result = _check_config(service_env(node))
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout + result.stderr


def test_a_broken_configuration_is_refused_by_the_same_check(tmp_path: Path) -> None:
    broken = tmp_path / "nats.conf"
    broken.write_text("cluster { routes: [nats://a:6222\n", encoding="utf-8")
    assert _check_config({}, broken).returncode != 0
    missing = dict(service_env("nats-1"))
    missing.pop("NATS_PROJECTOR_PASSWORD")
    assert _check_config(missing).returncode != 0  # an unset variable is an error too


def test_each_node_is_given_exactly_the_variables_the_configuration_reads() -> None:
    for node in NATS_NODES:
        given = {name for name in service_env(node) if name.startswith("NATS_")}
        assert given == conf_variables(), node


def test_every_variable_the_compose_file_needs_is_in_the_env_example() -> None:
    example = env_example()
    needed = sorted(name for name, default in referenced_variables().items()
                    if default is None and name not in example)  # fmt: skip
    assert not needed, f"set in docker/.env.example: {needed}"
    compose(example)  # fills without a gap


def _commands() -> dict[str, list[str]]:
    services = compose()["services"]
    return {name: list(services[name]["command"]) for name in ("relay", "projector")}


def test_the_compose_file_runs_the_relay_and_the_projector() -> None:
    commands = _commands()
    assert commands["relay"][:3] == ["relay", "--replicas", "3"]
    assert commands["projector"][:4] == ["project", "--from-nats", "--durable", "projector"]


@pytest.mark.parametrize("service_name", ["relay", "projector"])
def test_every_compose_command_is_accepted_by_the_cli(service_name: str) -> None:
    command = _commands()[service_name]
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    for option in (arg for arg in command if arg.startswith("--")):
        assert option in result.output


def test_every_readme_compose_command_is_accepted_by_the_cli() -> None:
    runs = cli_runs(readme_docker_block())
    names = [run.args[0] for run in runs]
    assert "init" in names and "verify" in names
    assert names.index("init") < names.index("verify")  # a fresh deployment starts with init
    assert any(run.stdin and run.args[-1] == "-" and not run.tty for run in runs)  # stdin
    for run in runs:
        result = CliRunner().invoke(cli, [*run.args, "--help"])
        assert result.exit_code == 0, (run.args, result.output)


def test_every_environment_variable_the_compose_file_sets_is_one_homeledger_reads() -> None:
    names = {name for service_name in HOMELEDGER_SERVICES
             for name in service_env(service_name) if name.startswith("HOMELEDGER_")}  # fmt: skip
    assert {"HOMELEDGER_ACTOR", "HOMELEDGER_SUBJECT_PREFIX"} <= names
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    unknown = sorted(name for name in names if f"`{name}`" not in readme)
    assert not unknown, f"not documented in the README configuration table: {unknown}"


def test_host_ports_are_on_loopback_and_clear_of_a_local_postgresql_or_nats() -> None:
    published = [port for spec in compose()["services"].values() for port in spec.get("ports", [])]
    assert published
    for port in published:
        host, host_port, container_port = str(port).split(":")
        assert host == "127.0.0.1", port
        assert int(host_port) not in (5432, 4222, 6222, 8222), port
        assert host_port != container_port


def test_the_cli_records_as_the_configured_actor_and_shares_a_files_folder() -> None:
    cli_service = service("cli")
    env = service_env("cli")
    assert env["HOMELEDGER_ACTOR"] == env_example()["HOMELEDGER_ACTOR"] != ""
    assert "HOMELEDGER_ACTOR" in referenced_variables()  # taken from docker/.env
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in cli_service["volumes"]}
    assert cli_service["working_dir"] in mounts  # import FILE, report/statement --out FILE
    assert (DOCKER / mounts[cli_service["working_dir"]]).is_dir()
    assert cli_service["user"] == f"{env_example()['CLI_UID']}:{env_example()['CLI_GID']}"


def test_each_service_uses_the_nats_user_of_its_job_on_the_configured_names() -> None:
    users = {name: service_env(name)["HOMELEDGER_NATS_USER"] for name in HOMELEDGER_SERVICES}
    assert users == {"relay": "relay", "projector": "projector", "cli": "projector"}
    conf = NATS_CONF.read_text(encoding="utf-8")
    for name in HOMELEDGER_SERVICES:
        env = service_env(name)
        # The permissions name the stream and the subjects: they must be the ones used.
        assert f'"{env["HOMELEDGER_SUBJECT_PREFIX"]}.events.>"' in conf
        assert f'"$JS.API.STREAM.INFO.{env["HOMELEDGER_STREAM"]}"' in conf
