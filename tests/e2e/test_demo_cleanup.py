"""`homeledger demo` without --dir leaves nothing behind in the temporary folder: its
stores and NATS files are removed on the way out (kept with --keep), and the statement
it writes is in the current folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import CLI, clean_env

pytestmark = pytest.mark.nats

def run_demo(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    temp, here = tmp_path / "tmp", tmp_path / "here"
    temp.mkdir()
    here.mkdir()
    done = subprocess.run([*CLI, "demo", *args], env=clean_env(TMPDIR=str(temp)), cwd=here,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (here / "homeledger-demo-statement-2022.html").is_file()
    return done, temp


def test_the_demo_removes_its_temporary_folder(tmp_path: Path) -> None:
    _, temp = run_demo(tmp_path)
    assert list(temp.glob("homeledger-demo-*")) == []


def test_the_demo_keeps_its_temporary_folder_when_asked(tmp_path: Path) -> None:
    done, temp = run_demo(tmp_path, "--keep")
    [kept] = list(temp.glob("homeledger-demo-*"))
    assert (kept / "homeledger.db").is_file()
    assert f"kept the demo's folder {kept}" in done.stderr
