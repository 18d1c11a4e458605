"""`homeledger events list` against a raw read + decode + print of the same events.

    python -m bench events-list [--quick] [--repeat N]

A SQLite store of the allocation-heavy shape (bench/shapes.py, 10^5 commands; 600 with
--quick) is imported through the CLI; then, each in a fresh process with its output
thrown away, the eventsourcing library alone reads every stored event, decodes its JSON
and prints it as one line (the baseline), and `homeledger events list` prints the same
events as a table and as jsonl. Rates are events per second (start-up included); the
ratio is homeledger's over the baseline's; peak RSS is the CLI's own.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.paths import timed_cli
from bench.shapes import allocation_heavy, write_jsonl

TARGET = 0.5
RAW = """
import json, sys
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment
from homeledger.adapters.settings import APP_NAME, store_location
from homeledger.adapters.store import library_env
env = library_env(store_location(sys.argv[1]))
env["CREATE_TABLE"] = "no"
factory = InfrastructureFactory.construct(Environment(APP_NAME, env))
recorder = factory.application_recorder()
write, start = sys.stdout.write, 1
while rows := recorder.select_notifications(start, 1000):
    for row in rows:
        write(json.dumps(json.loads(row.state)) + "\\n")
    start = rows[-1].id + 1
"""


def raw_print(url: str) -> float:
    """Seconds for the library alone to read, decode and print every event."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", RAW, url], check=True, stdout=subprocess.DEVNULL,
                   timeout=3600)  # fmt: skip
    return time.perf_counter() - started


def measure(folder: Path, commands: int, repeat: int) -> list[dict[str, Any]]:
    """One row per output format: events/s of the baseline and of the CLI (medians)."""
    url = f"sqlite:///{folder / f'events-list-{commands}.db'}"
    file = write_jsonl(folder / f"events-list-{commands}.jsonl", iter(allocation_heavy(commands)))
    timed_cli(url, "import", str(file))
    events = stored_events(url)
    base = [events / raw_print(url) for _ in range(repeat)]
    rows = []
    for fmt in ("table", "jsonl"):
        runs, peaks = [], []
        for _ in range(repeat):
            seconds, peak = timed_cli(url, "--format", fmt, "events", "list")
            runs.append(events / seconds)
            peaks.append(peak)
        known = [p for p in peaks if p is not None]
        rows.append({"format": fmt, "events": events,
                     "baseline_per_s": round(statistics.median(base)),
                     "homeledger_per_s": round(statistics.median(runs)),
                     "ratio": round(statistics.median(runs) / statistics.median(base), 3),
                     "peak_rss_mb": round(max(known), 1) if known else None,
                     "runs": [round(r) for r in runs],
                     "baseline_runs": [round(b) for b in base]})  # fmt: skip
    return rows


def stored_events(url: str) -> int:
    """How many events the store holds."""
    done = subprocess.run([sys.executable, "-m", "homeledger.cli", "--store", url, "--format",
                           "json", "events", "stats"], check=True, capture_output=True,
                          text=True)  # fmt: skip
    return int(json.loads(done.stdout)["events"])
