"""Long work shows its progress on a terminal, and only there.

Each command runs in a fresh process whose stderr is a pseudo-terminal (the pty module)
or a pipe: on the terminal the progress line (count, rate, time left) appears, through a
pipe it does not; stdout is a pipe in both cases and holds the same answer. Followers
print what they follow on stderr in every case.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from homeledger.cli.progress import Progress
from tests.helpers import CLI, clean_env, init_line
from tests.nats_helpers import record_bulk, running_server

EVENTS = 3000


def run(args: list[str], env: dict[str, str], *, tty: bool) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the CLI, its stderr a terminal or a pipe."""
    if not tty:
        done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True,
                              timeout=300, check=False)  # fmt: skip
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen([*CLI, *args], env=env, stdout=subprocess.PIPE,
                                   stderr=slave, text=True)  # fmt: skip
        os.close(slave)
        out, _ = process.communicate(timeout=300)
        return process.returncode, out, _drain(master)
    finally:
        os.close(master)


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other end is closed: everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('progress') / 'ledger.db'}"
    app = build_application(Settings(store=url, actor="t"))
    from homeledger.cli.import_file import parse_line

    app.execute(parse_line(1, json.dumps(init_line()).encode()))
    record_bulk(app, EVENTS)
    app.store.close()
    return url


@pytest.mark.parametrize(("args", "label"), [(["verify"], "verifying"), (["replay"], "replaying")],
                         ids=["verify", "replay"])
def test_a_terminal_sees_progress_and_a_pipe_does_not(ledger: str, args: list[str],
                                                      label: str) -> None:  # fmt: skip
    env = clean_env(HOMELEDGER_STORE=ledger)
    code, out, err = run(args, env, tty=True)
    assert code == 0, err
    assert f"{label}: " in err and "/s" in err and "\r" in err, err
    assert f"/{EVENTS + 1:,} events" in err, err  # the total is known: count of total
    code, piped_out, piped_err = run(args, env, tty=False)
    assert code == 0, piped_err
    assert label not in piped_err and "\r" not in piped_err, piped_err
    assert out.splitlines()[0] == piped_out.splitlines()[0]  # the same answer on stdout


def test_verify_ends_with_a_summary_line(ledger: str) -> None:
    code, _, err = run(["verify"], clean_env(HOMELEDGER_STORE=ledger), tty=False)
    assert code == 0
    assert err.startswith(f"verify: {EVENTS + 1:,} events, "), err
    assert "all passed in" in err and len(err.strip().splitlines()) == 1, err


def test_import_shows_progress_on_a_terminal_and_prints_its_summary(tmp_path: Path) -> None:
    lines = [init_line()] + [
        {"command": "units.acquire", "country": "NL", "units": 1, "on": "2022-01-03"}
        for _ in range(2000)
    ]  # fmt: skip
    file = tmp_path / "commands.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    for tty, name in ((True, "a.db"), (False, "b.db")):
        env = clean_env(HOMELEDGER_STORE=f"sqlite:///{tmp_path / name}", HOMELEDGER_ACTOR="t")
        code, out, err = run(["import", str(file)], env, tty=tty)
        assert code == 0, err
        assert out.startswith("imported 2001 commands: 2001 events recorded"), out
        assert len(out.splitlines()) == 1, out  # the summary, not every envelope
        assert ("importing: " in err) is tty, err


def test_the_progress_line_counts_rates_and_time_left() -> None:
    class Terminal:
        text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return True

    screen = Terminal()
    with Progress("working", 200, stream=screen) as bar:  # type: ignore[arg-type]
        bar.advance(50)
        assert "working: 50/200 events 25%" in screen.text
        assert "left" in bar.line() and "events/s" in bar.line()
        bar.advance(300)  # past the total: a plain count
        assert bar.line().startswith("working: 350 events, ")
    assert screen.text.endswith("\r")  # the line is erased for the summary
    quiet = Terminal()
    quiet.isatty = lambda: False  # type: ignore[method-assign]
    with Progress("working", 200, stream=quiet) as bar:  # type: ignore[arg-type]
        bar.advance(50)
    assert quiet.text == ""


@pytest.mark.nats
def test_nats_commands_show_progress_and_followers_say_what_they_follow(
    ledger: str, tmp_path: Path
) -> None:
    with running_server(tmp_path / "nats") as server:
        env = clean_env(HOMELEDGER_STORE=ledger, HOMELEDGER_NATS_URL=server.url)
        code, out, err = run(["relay", "--once"], env, tty=True)
        assert code == 0 and "relaying: " in err, err
        code, _, err = run(["verify", "--against-nats"], env, tty=True)
        assert code == 0 and "checking the stream: " in err, err
        consumer = clean_env(HOMELEDGER_STORE=f"sqlite:///{tmp_path / 'c.db'}",
                             HOMELEDGER_NATS_URL=server.url)  # fmt: skip
        code, out, err = run(["project", "--from-nats", "--durable", "p", "--once"], consumer,
                             tty=True)  # fmt: skip
        assert code == 0 and "projecting: " in err, err
        assert out.startswith(f"projected {EVENTS + 1} events"), out
        with subprocess.Popen([*CLI, "relay"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as follower:  # fmt: skip
            try:
                first = follower.stderr.readline() if follower.stderr else ""
            finally:
                follower.terminate()
                follower.communicate(timeout=60)
        assert follower.returncode == 0  # SIGTERM: a request to stop, done
        assert first.startswith("homeledger: following "), first
        assert "publishing to stream HOMELEDGER" in first, first
        assert " 0 events to publish first" in first, first
