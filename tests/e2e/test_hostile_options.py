"""Every option and every environment variable, given hostile values, never exits 5.

Exit 5 means a bug. An infinite, NaN, huge, negative, empty, malformed or non-UTF-8
value is the user's mistake: one line on stderr, exit 2 (or whatever the command's
input then leads to: 0, 1, 3 or 4), never a traceback and never 5.

The commands and options are read from the CLI itself (click's command tree), so a new
option is tested as soon as it exists. Each command runs from a valid, quick argument
list (`BASE`) with some of its options replaced by hostile values drawn by Hypothesis;
the NATS commands talk to a real server started for this module. Options that keep a
command running (a follower's stop conditions) are not drawn: they are checked with
values that must be refused before anything runs.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.settings import ENVIRONMENT_ONLY
from homeledger.cli.main import cli
from tests.nats_helpers import running_server

pytestmark = pytest.mark.nats

HOSTILE = [
    "inf", "-inf", "Infinity", "nan", "NaN", "1e309", "-1e309", "1e-400", "9" * 30,
    "-" + "9" * 30, "18446744073709551616", "9223372036854775808", "-1", "0", "-0", "",
    " ", "\udcff", "caf\udce9", "x" * 5000, "0x10", "1_000", "%s%n", "--", "-",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01", "9999-12-31",
    "2021-02-30", "99999-01-01", "\u200b", "é" * 300, "../../etc/passwd", "a,b", "*",
]  # fmt: skip
hostile = st.sampled_from(HOSTILE) | st.text(max_size=20).filter(lambda t: "\x00" not in t)

# A valid, quick invocation of each command (after the global options).
BASE: dict[str, list[str]] = {
    "init": ["--donor", "D", "--beneficiary", "B", "--rate", "100.00", "--currency", "EUR",
             "--basis", "year-end", "--start", "2021-01-01"],
    "units acquire": ["--country", "SE", "--units", "1", "--on", "2021-06-01"],
    "units dispose": ["--country", "SE", "--units", "1", "--on", "2021-06-01"],
    "pledge": ["--year", "2021"],
    "receive": ["--year", "2021", "--amount", "1.00", "--on", "2021-06-01"],
    "initiative register": ["new-one", "--name", "N", "--country", "SE", "--programme", "p"],
    "initiative close": ["open-one", "--on", "2021-06-01"],
    "allocate": ["--initiative", "open-one", "--year", "2021", "--amount", "1.00"],
    "release": ["a-1", "--amount", "1.00", "--reason", "r"],
    "disburse": ["--initiative", "open-one", "--amount", "1.00", "--on", "2021-06-01"],
    "milestone": ["--initiative", "open-one", "--name", "m", "--on", "2021-06-01"],
    "import": ["commands.jsonl"],
    "events show": ["1"],
    "audit": ["open-one"],
    "report": ["--year", "2021"],
    "subscribe": ["--durable", "hostile", "--max", "2", "--idle", "0.5"],
    "project": ["--from-nats", "--durable", "hostile", "--once", "--max-outage", "5"],
    "relay": ["--once", "--max-outage", "5"],
}  # fmt: skip
# Commands that run until stopped, or end to end: only values refused up front.
FOLLOWERS = {"events tail", "demo"}
# Options that decide when a command stops: only values refused up front.
STOPPING = {("subscribe", "--max"), ("subscribe", "--idle"), ("project", "--once"),
            ("relay", "--once"), ("project", "--max-outage"), ("relay", "--max-outage")}
GLOBAL_PROBE = ["events", "stats"]


def commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[
        tuple[str, click.Command]]:  # fmt: skip
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


COMMANDS = dict(commands())


def valued_options(command: click.Command) -> list[click.Parameter]:
    """The options and arguments that take a value (flags take none)."""
    return [p for p in command.params
            if not (isinstance(p, click.Option) and p.is_flag) and p.name != "help"]  # fmt: skip


def with_value(args: list[str], param: click.Parameter, value: str) -> list[str]:
    """`args` with `param` given `value`: an option appended (the last one wins), an
    argument put in place of the base's."""
    if isinstance(param, click.Option):
        return [*args, f"{param.opts[0]}={value}"]
    arguments = [p for p in COMMANDS_OF[id(param)].params if isinstance(p, click.Argument)]
    index = arguments.index(param)
    positional = [i for i, a in enumerate(args) if not a.startswith("-")
                  and (i == 0 or not args[i - 1].startswith("--"))]  # fmt: skip
    if index < len(positional):
        return [*args[: positional[index]], value, *args[positional[index] + 1:]]
    return [*args, "--", value] if value.startswith("-") else [*args, value]


COMMANDS_OF = {id(p): c for c in COMMANDS.values() for p in c.params}
ENV_VARS = sorted({str(p.envvar) for c in [cli, *COMMANDS.values()] for p in c.params
                   if isinstance(p, click.Option) and p.envvar}
                  | set(ENVIRONMENT_ONLY.values()))


class Stuck(Exception):
    """The command did not end: a value kept it running."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Stuck


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with running_server(tmp_path_factory.mktemp("nats")) as started:
        yield started


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory, server: NatsServer) -> Path:
    """A small ledger, relayed: partnership, homes, a pledge, an open initiative."""
    folder = tmp_path_factory.mktemp("hostile-options")
    url = f"sqlite:///{folder / 'ledger.db'}"
    steps = [
        ["init", *BASE["init"]],
        ["units", "acquire", "--country", "SE", "--units", "1000", "--on", "2021-01-01"],
        ["pledge", "--year", "2021"],
        ["initiative", "register", "open-one", "--name", "Open", "--country", "GW",
         "--programme", "care"],
        ["allocate", "--initiative", "open-one", "--year", "2021", "--amount", "500.00",
         "--allocation-id", "a-1"],
        ["relay", "--once"],
    ]  # fmt: skip
    for step in steps:
        result = CliRunner().invoke(cli, ["--store", url, "--nats", server.url, *step])
        assert result.exit_code == 0, result.output
    (folder / "commands.jsonl").write_text('{"command": "pledge", "year": 2021}\n')
    return folder


def invoke(folder: Path, args: list[str], env: dict[str, str] | None = None) -> Result:
    """The CLI in the ledger's folder (relative paths land there), at most 60 s."""
    runner = CliRunner()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        with tempfile.TemporaryDirectory(dir=folder) as cwd, contextlib.chdir(cwd):
            shutil.copy(folder / "commands.jsonl", cwd)
            return runner.invoke(cli, args, env=env)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_no_bug(result: Result, what: Any) -> None:
    output = result.stdout + result.stderr
    assert "Stuck" not in output, f"{what}: did not end"
    assert result.exit_code != 5, (what, output[-2000:])
    assert "Traceback" not in output, (what, output[-2000:])
    if result.exit_code != 0:
        assert result.stderr.count("\n") == 1, (what, result.stderr[-2000:])


def global_args(folder: Path, server: NatsServer) -> list[str]:
    return ["--store", f"sqlite:///{folder / 'ledger.db'}", "--nats", server.url]


SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
DRAWN = sorted(name for name, command in COMMANDS.items() if name not in FOLLOWERS
               and any((name, p.opts[0]) not in STOPPING for p in valued_options(command)))


@pytest.mark.parametrize("name", DRAWN)
@SETTINGS
@given(data=st.data())
def test_hostile_option_values_never_exit_5(
    ledger: Path, server: NatsServer, name: str, data: st.DataObject
) -> None:
    command = COMMANDS[name]
    choices = [p for p in valued_options(command) if (name, p.opts[0]) not in STOPPING]
    args = list(BASE.get(name, []))
    for param in data.draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3,
                                    unique_by=id), label="options"):  # fmt: skip
        args = with_value(args, param, data.draw(hostile, label=param.opts[0]))
    what = [name, *args]
    assert_no_bug(invoke(ledger, [*global_args(ledger, server), *name.split(), *args]), what)


KEEPERS = sorted({*STOPPING, *((n, p.opts[0]) for n in FOLLOWERS
                               for p in valued_options(COMMANDS[n]))})


def refused_values(name: str, option: str) -> list[str]:
    """What the option must refuse: for a number, anything but a finite one in range."""
    param = next(p for p in COMMANDS[name].params if p.opts[0] == option)
    if isinstance(param.type, click.IntRange | click.FloatRange):
        return ["nan", "inf", "-inf", "-1", "1e30", "", "\udcff"]
    return ["\udcff"]


@pytest.mark.parametrize(
    ("name", "option", "value"),
    [(n, o, v) for n, o in KEEPERS for v in refused_values(n, o)
     if not next(p for p in COMMANDS[n].params if p.opts[0] == o).is_flag],  # type: ignore[attr-defined]
)
def test_values_of_options_that_keep_a_command_running_are_refused_up_front(
    ledger: Path, server: NatsServer, name: str, option: str, value: str
) -> None:
    param = next(p for p in COMMANDS[name].params if p.opts[0] == option)
    args = with_value(list(BASE.get(name, [])), param, value)
    result = invoke(ledger, [*global_args(ledger, server), *name.split(), *args])
    assert result.exit_code == 2, ([name, *args], result.output[-2000:])
    assert result.stderr.count("\n") == 1


@SETTINGS
@given(data=st.data())
def test_hostile_global_options_never_exit_5(
    ledger: Path, server: NatsServer, data: st.DataObject
) -> None:
    choices = [p for p in valued_options(cli) if p.opts[0] != "--nats"]  # probed without NATS
    args = global_args(ledger, server)
    for param in data.draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3,
                                    unique_by=id), label="options"):  # fmt: skip
        args = [*args, param.opts[0], data.draw(hostile, label=param.opts[0])]
    assert_no_bug(invoke(ledger, [*args, *GLOBAL_PROBE]), args)


PROBES = [GLOBAL_PROBE, ["relay", *BASE["relay"]],
          ["milestone", *BASE["milestone"]], ["balances"]]  # fmt: skip


@pytest.mark.parametrize("variable", ENV_VARS)
@SETTINGS
@given(value=hostile, probe=st.sampled_from(PROBES))
def test_hostile_environment_variables_never_exit_5(
    ledger: Path, server: NatsServer, variable: str, value: str, probe: list[str]
) -> None:
    store = ["--store", f"sqlite:///{ledger / 'ledger.db'}"]
    args = {"HOMELEDGER_STORE": ["--nats", server.url],
            "HOMELEDGER_NATS_URL": store}.get(variable, global_args(ledger, server))  # fmt: skip
    if variable == "HOMELEDGER_NATS_URL" and probe[0] == "relay":
        probe = GLOBAL_PROBE  # a host name could take a while to resolve: not connected
    env = {variable: value}
    assert_no_bug(invoke(ledger, [*args, *probe], env=env), (variable, value, probe))
