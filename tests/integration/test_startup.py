"""Start-up: a command imports what it needs and nothing else. `--help` loads neither the
store nor NATS nor pydantic; `events stats` and `balances` on a SQLite store load
neither psycopg nor NATS nor the documents' libraries (each costs tenths of a second).
Timings are measured by `python -m bench startup`, never asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import init_args

HEAVY = ("psycopg", "psycopg_binary", "nats", "matplotlib", "weasyprint", "lxml", "jinja2",
         "babel")  # fmt: skip

# Runs the CLI as `python -m homeledger.cli` does, then writes the top-level packages it
# imported to the file named by the first argument.
PROBE = """
import json, runpy, sys
out, sys.argv = sys.argv[1], ["homeledger", *sys.argv[2:]]
try:
    runpy.run_module("homeledger.cli", run_name="__main__")
except SystemExit as done:
    code = done.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}, f)
"""


def loaded_by(tmp_path: Path, *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELEDGER_")}
    subprocess.run([sys.executable, "-c", PROBE, str(out), *args], check=True, env=env,
                   capture_output=True, timeout=120)  # fmt: skip
    found = json.loads(out.read_text())
    assert found["code"] in (0, None), found
    return set(found["modules"])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('startup') / 'ledger.db'}"
    env = {**os.environ, "HOMELEDGER_STORE": url, "HOMELEDGER_ACTOR": "t"}
    subprocess.run([sys.executable, "-m", "homeledger.cli", *init_args()], check=True,
                   env=env, capture_output=True, timeout=120)  # fmt: skip
    return url


def test_help_imports_no_store_no_nats_no_pydantic(tmp_path: Path) -> None:
    loaded = loaded_by(tmp_path, "--help")
    assert loaded.isdisjoint({*HEAVY, "pydantic", "eventsourcing", "cryptography"}), loaded


@pytest.mark.parametrize("command", [["events", "stats"], ["balances"], ["portfolio"]],
                         ids=" ".join)  # fmt: skip
def test_reads_on_sqlite_import_neither_psycopg_nor_nats(tmp_path: Path, store: str,
                                                         command: list[str]) -> None:  # fmt: skip
    loaded = loaded_by(tmp_path, "--store", store, *command)
    assert "eventsourcing" in loaded  # it did read the store
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_probe_sees_what_a_command_imports(tmp_path: Path) -> None:
    assert "nats" in loaded_by(tmp_path, "relay", "--help")
