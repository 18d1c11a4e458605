"""`--help` says everything a user needs: every option and argument of every command has
a help text; the top-level help lists the environment variables, the exit codes and
shell completion; `import --help` describes the JSON Lines format."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from homeledger.adapters.settings import ENVIRONMENT_ONLY
from homeledger.cli.commands import COMMANDS
from homeledger.cli.main import cli

Path = tuple[str, ...]


def commands(group: click.Group, path: Path = ()) -> Iterator[tuple[Path, click.Command]]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


ALL = [((), cli), *commands(cli)]


def params_without_help(command: click.Command) -> list[str]:
    return [param.name or "?" for param in command.params
            if not (getattr(param, "help", None) or "").strip()]  # fmt: skip


IDS = [" ".join(p) or "homeledger" for p, _ in ALL]


@pytest.mark.parametrize(("path", "command"), ALL, ids=IDS)
def test_every_option_and_argument_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert params_without_help(command) == [], f"homeledger {' '.join(path)}"
    assert (command.help or command.short_help or "").strip(), f"homeledger {' '.join(path)}"


def test_the_walk_would_catch_an_option_without_help() -> None:
    bare = click.Command("x", params=[click.Option(["--y"]), click.Argument(["z"])])
    assert params_without_help(bare) == ["y", "z"]


def test_arguments_show_their_help() -> None:
    result = CliRunner().invoke(cli, ["release", "--help"])
    assert result.exit_code == 0
    assert "ALLOCATION-ID  The allocation to release from." in result.output


def environment_variables() -> set[str]:
    found = set(ENVIRONMENT_ONLY.values())
    for _, command in ALL:
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                found.add(envvar)
    return found


def test_top_level_help_lists_environment_exit_codes_and_completion() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    text = result.output
    variables = environment_variables()
    assert len(variables) > 15
    missing = sorted(v for v in variables if v not in text)
    assert missing == []
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert any(line.split()[:1] == [code] for line in text.splitlines()), code
    assert "_HOMELEDGER_COMPLETE=bash_source homeledger" in text


def test_import_help_describes_the_file_format() -> None:
    result = CliRunner().invoke(cli, ["import", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for needle in ("JSON Lines", "one command per line", '"command"', '"units.acquire"',
                   '"on"', '"command_id"', '"id"', '"-" reads standard input',
                   "all or nothing"):  # fmt: skip
        assert needle in text, needle


def test_the_lazy_command_table_says_what_each_command_says() -> None:
    """`--help` lists the commands from a table, without importing them: the table must
    name every command, in its module, with its own short help."""
    context = click.Context(cli)
    assert set(COMMANDS) == set(cli.list_commands(context))
    for name, (_, _, short) in COMMANDS.items():
        command = cli.get_command(context, name)
        assert command is not None and command.name == name, name
        assert short == command.get_short_help_str(limit=1000), name
