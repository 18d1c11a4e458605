"""The CLI paths users run, on SQLite and PostgreSQL, against raw baselines in one run.

    python -m bench paths [--quick] [--repeat N] [--stores sqlite,postgres]

For each store kind and size (10^4 and 10^5 commands of the allocation-heavy shape,
bench/shapes.py), in a fresh store each time:

    import    `homeledger import FILE` (a fresh process: start-up and checking the file
              included, one transaction) against the eventsourcing library appending the
              same commands' fields as events, 100 per transaction, on the same kind of
              store;
    replay    `homeledger replay` (every read model rebuilt) against the library reading
              every stored event back and decoding its JSON;
    verify    `homeledger verify` against the same raw read.

Ratios are homeledger's rate over the baseline's; peak RSS is the CLI process's own
(measured by GNU time around it). Timings are measurements, never checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.shapes import allocation_heavy, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "homeledger.cli"]
TIME = "/usr/bin/time"


def timed_cli(url: str, *args: str) -> tuple[float, float | None]:
    """Seconds and peak RSS (MB) of `homeledger --store URL ARGS` as a user runs it."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrap = [TIME, "-f", "%M", "-o", rss.name] if os.path.exists(TIME) else []
        started = time.perf_counter()
        done = subprocess.run([*wrap, *CLI, "--store", url, "--actor", "bench", *args],
                              capture_output=True, text=True, check=False)  # fmt: skip
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"homeledger {' '.join(args)} failed: {done.stderr[-2000:]}")
        text = Path(rss.name).read_text().strip().splitlines()
        peak = int(text[-1]) / 1024 if text and text[-1].isdigit() else None
    return seconds, peak


def raw_append(url: str, lines: list[dict[str, Any]]) -> float:
    """Seconds for the library alone to save one event per line, 100 per transaction."""
    from bench import record as record_bench
    from bench.baseline import save_in_batches

    return save_in_batches(record_bench.baseline_env(url), lines, 100)


def raw_read(url: str) -> tuple[int, float]:
    """(events, seconds) for the library alone to read every stored event of a homeledger
    store back and decode its JSON."""
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.utils import Environment

    from homeledger.adapters.settings import APP_NAME, store_location
    from homeledger.adapters.store import library_env

    env = library_env(store_location(url))
    env["CREATE_TABLE"] = "no"
    factory = InfrastructureFactory.construct(Environment(APP_NAME, env))
    recorder = factory.application_recorder()
    started, start, count = time.perf_counter(), 1, 0
    try:
        while rows := recorder.select_notifications(start, 1000):
            for row in rows:
                json.loads(row.state)
            count += len(rows)
            start = rows[-1].id + 1
    finally:
        factory.close()
    return count, time.perf_counter() - started


def measure(kind: str, commands: int, folder: Path, new_store: Callable[..., Any],
            repeat: int) -> list[dict[str, Any]]:  # fmt: skip
    """The three paths at one size, `repeat` times each; one row per path."""
    lines = list(allocation_heavy(commands))
    file = write_jsonl(folder / f"commands-{commands}.jsonl", iter(lines))
    runs: dict[str, list[tuple[float, float, float | None]]] = {}
    for _ in range(repeat):
        url, remove = new_store(kind, folder)
        try:
            base = raw_append(url, lines)
        finally:
            remove()
        url, remove = new_store(kind, folder)
        try:
            seconds, rss = timed_cli(url, "import", str(file))
            runs.setdefault("import", []).append((commands / base, commands / seconds, rss))
            events, raw = raw_read(url)
            for path in ("replay", "verify"):
                seconds, rss = timed_cli(url, path)
                runs.setdefault(path, []).append((events / raw, events / seconds, rss))
        finally:
            remove()
    return [_row(kind, commands, path, results) for path, results in runs.items()]


def _row(kind: str, commands: int, path: str,
         results: list[tuple[float, float, float | None]]) -> dict[str, Any]:  # fmt: skip
    base = sorted(r[0] for r in results)[len(results) // 2]
    ours = sorted(r[1] for r in results)[len(results) // 2]
    peaks = [r[2] for r in results if r[2] is not None]
    return {
        "path": path, "store": kind, "commands": commands,
        "baseline_per_s": round(base), "homeledger_per_s": round(ours),
        "ratio": round(ours / base, 3), "peak_rss_mb": round(max(peaks), 1) if peaks else None,
        "runs": [round(r[1]) for r in results], "baseline_runs": [round(r[0]) for r in results],
    }  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    head = ("path", "store", "commands", "baseline/s", "homeledger/s", "ratio", "peak RSS MB")
    lines = [head, *((r["path"], r["store"], f"{r['commands']:,}", f"{r['baseline_per_s']:,}",
                      f"{r['homeledger_per_s']:,}", f"{r['ratio']:.3f}x",
                      "" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}")
                     for r in rows)]  # fmt: skip
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True))
                     for line in lines)  # fmt: skip
