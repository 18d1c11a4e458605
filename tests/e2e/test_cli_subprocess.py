"""The installed `homeledger` console script, run as a real process.

What CliRunner cannot show: the entry point itself, the process exit status, the
environment variables read by the real process, `--debug` tracebacks and Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import clean_env, init_args
from tests.workers import first_line_while, reaped, stopped

SCRIPT = Path(sysconfig.get_path("scripts")) / "homeledger"
ACTOR = "ops@example.org"
UNREACHABLE_PG = "postgresql://user:s3cret@127.0.0.1:1/x"
INIT = init_args(start="2021-01-01")
DISPOSE_TOO_MANY = ("units", "dispose", "--country", "SE", "--units", "1", "--on", "2021-06-01")


def homeledger(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.is_file() and os.access(SCRIPT, os.X_OK), f"console script missing: {SCRIPT}"
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, env=clean_env(**(env or {"HOMELEDGER_ACTOR": ACTOR})),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def ok(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = homeledger(*args, cwd=cwd, env=env)
    assert done.returncode == 0, f"{args}: exit {done.returncode}: {done.stderr!r}"
    assert done.stderr == ""
    return done.stdout


def one_line_failure(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, f"exit {done.returncode}: {done.stderr!r}"
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("homeledger: ")
    return lines[0]


def test_init_units_pledge_chain(sqlite_url: str, tmp_path: Path) -> None:
    store = ("--store", sqlite_url)
    ok(*store, *INIT, cwd=tmp_path)
    for country, homes in (("SE", "60000"), ("DE", "30000"), ("NL", "20000")):
        ok(*store, "units", "acquire", "--country", country, "--units", homes,
           "--on", "2021-01-01", cwd=tmp_path)  # fmt: skip
    [pledge] = json.loads(ok(*store, "--format", "json", "pledge", "--year", "2021", cwd=tmp_path))
    assert pledge["type"] == "DonationPledged" and pledge["position"] == 5
    assert pledge["data"]["amount"] == "11000000.00"
    assert pledge["actor"] == ACTOR
    stats = json.loads(ok(*store, "--format", "json", "events", "stats", cwd=tmp_path))
    assert stats["events"] == 5 and stats["head_hash"] == pledge["hash"]


def test_refused_command_is_one_line(sqlite_url: str, tmp_path: Path) -> None:
    ok("--store", sqlite_url, *INIT, cwd=tmp_path)
    line = one_line_failure(homeledger("--store", sqlite_url, *DISPOSE_TOO_MANY, cwd=tmp_path), 3)
    assert "refused [units-held]" in line
    stats = json.loads(ok("--store", sqlite_url, "--format", "json", "events", "stats",
                          cwd=tmp_path))  # fmt: skip
    assert stats["events"] == 1


def test_usage_error_names_the_program(sqlite_url: str, tmp_path: Path) -> None:
    line = one_line_failure(homeledger("--store", sqlite_url, "allocate", cwd=tmp_path), 2)
    assert "homeledger allocate --help" in line


def test_no_command_at_all(tmp_path: Path) -> None:
    # Help on stdout (exit 0), or one line on stderr (exit 2); never the help as an error.
    done = homeledger(cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode in (0, 2), done.stderr
    if done.returncode == 2:
        assert len(lines) == 1, f"help printed as a {len(lines)}-line error: {done.stderr!r}"
    else:
        assert lines == [] and "Commands:" in done.stdout
    assert not (tmp_path / "homeledger.db").exists()


@pytest.mark.parametrize(
    ("store", "args", "code"),
    [("sqlite", DISPOSE_TOO_MANY, 3), (UNREACHABLE_PG, ("events", "stats"), 4)],
    ids=["refused", "unreachable"],
)
def test_debug_shows_a_traceback(
    sqlite_url: str, tmp_path: Path, store: str, args: tuple[str, ...], code: int
) -> None:
    url = sqlite_url if store == "sqlite" else store
    if store == "sqlite":
        ok("--store", url, *INIT, cwd=tmp_path)
        one_line_failure(homeledger("--store", url, *args, cwd=tmp_path), code)
    done = homeledger("--store", url, "--debug", *args, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("homeledger: ")
    assert "s3cret" not in done.stdout + done.stderr


def test_store_env_var_is_honoured(tmp_path: Path) -> None:
    db = tmp_path / "from-env.db"
    env = {"HOMELEDGER_STORE": f"sqlite:///{db}", "HOMELEDGER_ACTOR": "env-actor"}
    [established] = json.loads(ok("--format", "json", *INIT, cwd=tmp_path, env=env))
    assert db.exists() and not (tmp_path / "homeledger.db").exists()
    assert established["actor"] == "env-actor"
    shown = json.loads(ok("--store", f"sqlite:///{db}", "--format", "json", "events", "show",
                          "1", cwd=tmp_path))  # fmt: skip
    assert shown == established


def test_store_flag_overrides_the_env_var(tmp_path: Path) -> None:
    from_env, from_flag = tmp_path / "env.db", tmp_path / "flag.db"
    env = {"HOMELEDGER_STORE": f"sqlite:///{from_env}", "HOMELEDGER_ACTOR": ACTOR}
    ok("--store", f"sqlite:///{from_flag}", *INIT, cwd=tmp_path, env=env)
    assert from_flag.exists() and not from_env.exists()


def test_default_store_is_homeledger_db_in_the_working_directory(tmp_path: Path) -> None:
    ok(*INIT, cwd=tmp_path)
    assert (tmp_path / "homeledger.db").exists()
    stats = json.loads(ok("--format", "json", "events", "stats", cwd=tmp_path))
    assert stats["events"] == 1


def test_tail_follows_new_events_until_ctrl_c(sqlite_url: str, tmp_path: Path) -> None:
    ok("--store", sqlite_url, *INIT, cwd=tmp_path)
    tail = subprocess.Popen(
        [str(SCRIPT), "--store", sqlite_url, "--format", "jsonl", "events", "tail",
         "--interval", "0.05"],
        cwd=tmp_path, env=clean_env(HOMELEDGER_ACTOR=ACTOR),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with reaped(tail):
        # tail follows what is recorded after it starts, and it cannot say when that is:
        # record until it shows something.
        line = first_line_while(tail, lambda: ok(
            "--store", sqlite_url, "units", "acquire", "--country", "SE", "--units", "10",
            "--on", "2021-01-01", cwd=tmp_path), "events recorded")  # fmt: skip
        followed = json.loads(line)
        assert followed["type"] == "UnitsAcquired" and followed["position"] >= 2
        _, stderr = stopped(tail, signal.SIGINT)
    assert tail.returncode == 0, stderr
    assert "Traceback" not in stderr
