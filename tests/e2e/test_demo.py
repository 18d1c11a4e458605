"""`homeledger demo` end to end, as the README runs it: a real process, a real nats-server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import CLI, clean_env
from tests.workers import reaped

pytestmark = pytest.mark.nats

def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def server_pid(stderr: str) -> int:
    found = re.search(r"nats-server \S+ \(pid (\d+)\)", stderr)
    assert found, stderr
    return int(found.group(1))


def test_the_demo_records_relays_projects_and_finds_both_sides_equal(tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "--format", "json", "demo", "--dir", str(tmp_path / "d")],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["equal"] and result["verified"] and result["differing"] == []
    assert [row["year"] for row in result["years"]] == [2021, 2022]
    for row in result["years"] + result["countries"]:
        assert row["equal"] and row["store"] == row["stream"]
    assert len(result["countries"]) >= 19 and result["initiatives"] > 30
    assert result["years"][0]["store"]["pledged"] == "11240000.00"  # 112,400 homes x 100
    checks = {c["check"]: c["ok"] for c in result["checks"]}
    assert checks == dict.fromkeys(("hash-chain", "seals", "rules", "receipts",
                                    "ledger-snapshots", "projections", "double-entry",
                                    "stream-copy", "stream-head", "stream-projections"),
                                   True)  # fmt: skip
    assert not alive(server_pid(done.stderr)), "the demo left its nats-server running"
    assert (tmp_path / "d" / "homeledger.db").exists()
    assert (tmp_path / "d" / "consumer.db").exists()


def test_the_demo_table_shows_both_sides_and_a_used_folder_is_refused(tmp_path: Path) -> None:
    folder = str(tmp_path / "d")
    first = subprocess.run([*CLI, "demo", "--dir", folder], env=clean_env(), cwd=tmp_path,
                           capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert re.search(r"^2021\s+store\s+11,240,000\.00", first.stdout, re.M)  # a table
    assert re.search(r"^\s+stream\s+11,240,000\.00", first.stdout, re.M)
    assert "EQUAL" in first.stdout
    again = subprocess.run([*CLI, "demo", "--dir", folder], env=clean_env(), cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_sigterm_stops_the_demos_server(tmp_path: Path) -> None:
    process = subprocess.Popen([*CLI, "demo", "--dir", str(tmp_path / "d")], env=clean_env(),
                               cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    with reaped(process):
        assert process.stderr is not None
        line = process.stderr.readline()  # the server is up: the demo is running
        pid = server_pid(line)
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    assert process.returncode in (0, 130), rest  # finished first, or interrupted
    assert "Traceback" not in rest
    assert not alive(pid), "SIGTERM left the demo's nats-server running"
