"""Start-up: the wall time of a short CLI command in a fresh process, against a bare
`python -c pass` measured in the same run.

    python -m bench startup [--repeat N]

Each command runs `max(11, 5 x repeat)` times (3 with --quick); the median wall time and
the median CPU time (user + system, steadier on a busy machine) are reported. The commands run as an
installed `homeledger` does: with its bytecode cached (one warm-up run writes it even
when PYTHONDONTWRITEBYTECODE is set in the calling environment), on a small SQLite
store made for the run.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TARGET_SECONDS = 0.3
COMMANDS: tuple[tuple[str, ...], ...] = (("--help",), ("events", "stats"), ("balances",))
SETUP = (
    ("init", "--donor", "Acme", "--beneficiary", "Aid", "--rate", "100.00", "--currency",
     "EUR", "--basis", "pro-rata", "--start", "2021-01-01"),
    ("units", "acquire", "--country", "NL", "--units", "120", "--on", "2021-01-04"),
    ("pledge", "--year", "2021", "--on", "2021-12-31"),
)  # fmt: skip


def _env(store: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HOMELEDGER_") and k != "PYTHONDONTWRITEBYTECODE"}  # fmt: skip
    return {**env, "HOMELEDGER_STORE": store, "HOMELEDGER_ACTOR": "bench"}


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `argv`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _median_of(argv: list[str], env: dict[str, str], runs: int) -> dict[str, Any]:
    _timed(argv, env)  # warm-up: bytecode written, files in the page cache
    samples = [_timed(argv, env) for _ in range(runs)]
    return {"wall_s": round(statistics.median(s[0] for s in samples), 3),
            "cpu_s": round(statistics.median(s[1] for s in samples), 3),
            "wall_runs": [round(s[0], 3) for s in samples]}  # fmt: skip


def measure(folder: Path, runs: int) -> list[dict[str, Any]]:
    """One row per command: its median wall and CPU time over `runs`, and the bare
    interpreter's."""
    env = _env(f"sqlite:///{folder / 'startup.db'}")
    cli = [sys.executable, "-m", "homeledger.cli"]
    for command in SETUP:
        subprocess.run([*cli, *command], env=env, check=True, capture_output=True, timeout=120)
    bare = _median_of([sys.executable, "-c", "pass"], env, runs)
    rows = []
    for command in COMMANDS:
        found = _median_of([*cli, *command], env, runs)
        rows.append({"command": "homeledger " + " ".join(command), **found,
                     "python_wall_s": bare["wall_s"], "python_cpu_s": bare["cpu_s"],
                     "ratio_to_python": round(found["wall_s"] / bare["wall_s"], 1)})  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'command':<26} {'wall s':>7} {'cpu s':>6} {'python -c pass':>15} {'ratio':>6}"]
    for r in rows:
        lines.append(f"{r['command']:<26} {r['wall_s']:>7.3f} {r['cpu_s']:>6.3f} "
                     f"{r['python_wall_s']:>15.3f} {r['ratio_to_python']:>6.1f}")  # fmt: skip
    return "\n".join(lines)
