"""Writes tests/data/main-store.db and main-store.json: a small ledger recorded by the
code of main before effective dates and reversals (commit 1a18672).

Kept to show how the committed store was made; run it with that version's `homeledger`
on PATH (for example from `git archive 1a18672 | tar -x -C /tmp/old` installed in a
venv of its own):

    PATH=/tmp/old/.venv/bin:$PATH python tests/data/make_main_store.py

The JSON file holds what that code printed for the store (balances, trial balance,
audit trail, portfolio, events), so the migration test can check that the new code
reads the very same figures from it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
STORE = HERE / "main-store.db"
EXPECTED = HERE / "main-store.json"

COMMANDS: list[dict[str, object]] = [
    {"command": "init", "donor": "Heimstaden", "beneficiary": "SOS", "rate": "100.00",
     "currency": "EUR", "basis": "year-end", "start": "2021-07-01", "command_id": "init"},
    {"command": "units.acquire", "country": "SE", "units": 400, "on": "2021-07-01",
     "ref": "start", "command_id": "u1"},
    {"command": "units.acquire", "country": "DE", "units": 300, "on": "2021-07-01",
     "command_id": "u2"},
    {"command": "units.acquire", "country": "NL", "units": 50, "on": "2021-10-01",
     "command_id": "u3"},
    {"command": "units.dispose", "country": "SE", "units": 20, "on": "2021-11-15",
     "command_id": "u4"},
    {"command": "initiative.register", "id": "gw-bissau-village", "name": "Bissau",
     "country": "GW", "programme": "care", "command_id": "r1"},
    {"command": "initiative.register", "id": "nl-siblings-together", "name": "Siblings",
     "country": "NL", "programme": "care", "command_id": "r2"},
    {"command": "pledge", "year": 2021, "command_id": "p2021"},
    {"command": "allocate", "initiative": "gw-bissau-village", "year": 2021,
     "amount": "40000.00", "allocation_id": "2021-gw", "command_id": "a1"},
    {"command": "allocate", "initiative": "nl-siblings-together", "year": 2021,
     "amount": "20000.00", "allocation_id": "2021-nl", "command_id": "a2"},
    {"command": "receive", "year": 2021, "amount": "50000.00", "on": "2021-12-15",
     "command_id": "m1"},
    {"command": "disburse", "initiative": "gw-bissau-village", "amount": "15000.00",
     "on": "2022-01-20", "command_id": "d1"},
    {"command": "milestone", "initiative": "gw-bissau-village", "name": "solar",
     "on": "2022-03-15", "evidence": "report", "command_id": "s1"},
    {"command": "release", "id": "2021-nl", "amount": "5000.00", "reason": "replanned",
     "command_id": "rel1"},
    {"command": "units.acquire", "country": "GB", "units": 30, "on": "2022-04-01",
     "command_id": "u5"},
    {"command": "pledge", "year": 2022, "command_id": "p2022"},
    {"command": "seal"},
    {"command": "receive", "year": 2021, "amount": "20000.00", "on": "2022-03-31",
     "command_id": "m2"},
    {"command": "disburse", "initiative": "nl-siblings-together", "amount": "10000.00",
     "on": "2022-05-02", "command_id": "d2"},
    {"command": "initiative.close", "id": "nl-siblings-together", "on": "2022-08-31",
     "reason": "merged", "command_id": "c1"},
]

READS = {
    "balances_year": "balances --by year",
    "balances_initiative": "balances --by initiative",
    "balances_country": "balances --by country",
    "trial_balance": "trial-balance",
    "audit_gw": "audit gw-bissau-village",
    "audit_nl": "audit nl-siblings-together",
    "portfolio": "portfolio --on 2022-12-31",
    "events": "events list",
}


def run(env: dict[str, str], line: str, fmt: str = "table") -> str:
    args = ["homeledger", "--format", fmt, *line.split()]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{line}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def record() -> None:
    """Through that version's application, with ledger snapshots every 5 facts (so the
    store holds snapshots of its format too)."""
    from homeledger.adapters.settings import Settings
    from homeledger.cli.bootstrap import build_application
    from homeledger.domain.commands import parse_command

    settings = Settings(store=f"sqlite:///{STORE}", actor="ops@example.org",
                        ledger_snapshot_every=5)
    app = build_application(settings)
    for fields in COMMANDS:
        if fields["command"] == "seal":
            app.seal()
        else:
            app.execute(parse_command(fields))
    app.store.close()


def main() -> None:
    if shutil.which("homeledger") is None:
        sys.exit("homeledger (of the version to freeze) is not on PATH")
    STORE.unlink(missing_ok=True)
    record()
    env = {**os.environ, "HOMELEDGER_STORE": f"sqlite:///{STORE}",
           "HOMELEDGER_PROJECTION_SNAPSHOT_EVERY": "5"}
    expected = {name: json.loads(run(env, line, "json")) for name, line in READS.items()}
    EXPECTED.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
