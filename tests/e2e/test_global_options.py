"""Global options work before or after the sub-command's name, on every command.

`homeledger replay --format json` is `homeledger --format json replay`, as users type
it. Every leaf command of the CLI is tried with every global option in both places
(with --help, so that nothing runs: an option click does not accept fails the parse
before help is shown), and a few real runs check that a hoisted option takes effect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from homeledger.cli.arguments import hoist_global_options
from homeledger.cli.main import cli

VALUES = {
    "--store": "sqlite:///nowhere.db", "--nats": "nats://127.0.0.1:4222",
    "--nats-user": "u", "--nats-password": "p", "--nats-token": "t",
    "--nats-creds": "creds.txt", "--nats-ca": "ca.pem", "--stream": "LEDGER",
    "--actor": "ops@example.org", "--format": "json", "--debug": None,
}  # fmt: skip


def leaf_commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))
        elif command is not None:
            yield (*path, name)


LEAVES = sorted(leaf_commands(cli))


def test_every_global_option_is_tried() -> None:
    offered = {name for param in cli.params for name in param.opts if name.startswith("--")}
    assert offered - {"--version"} == set(VALUES)
    assert len(LEAVES) > 20


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
def test_every_global_option_is_accepted_before_and_after_the_command(
    path: tuple[str, ...],
) -> None:
    runner = CliRunner()
    for option, value in VALUES.items():
        given = [option] if value is None else [option, value]
        for args in ([*given, *path, "--help"], [*path, *given, "--help"]):
            result = runner.invoke(cli, args, catch_exceptions=False)
            assert result.exit_code == 0, (args, result.output)
            assert "Usage:" in result.output, (args, result.output)


def test_a_value_that_looks_like_a_global_option_stays_with_its_option() -> None:
    argv = ["release", "a-1", "--reason", "--debug", "--amount", "1.00", "--format", "csv"]
    assert hoist_global_options(cli, argv) == [
        "--format", "csv", "release", "a-1", "--reason", "--debug", "--amount", "1.00",
    ]  # fmt: skip
    assert hoist_global_options(cli, ["events", "list", "--", "--debug"]) == [
        "events", "list", "--", "--debug",
    ]  # fmt: skip


def test_hoisted_options_take_effect(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    runner = CliRunner()
    init = ["init", "--donor", "Heimstaden", "--beneficiary", "SOS", "--rate", "100.00",
            "--currency", "EUR", "--basis", "year-end", "--start", "2021-07-01"]  # fmt: skip
    recorded = runner.invoke(cli, [*init, "--store", store, "--format", "json",
                                   "--actor", "ops@example.org"])  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    [envelope] = json.loads(recorded.stdout)
    assert envelope["actor"] == "ops@example.org"
    stats = runner.invoke(cli, ["events", "stats", "--format", "json", "--store", store])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["events"] == 1
