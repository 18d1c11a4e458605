"""One command on a long history: does recording one command cost more as the ledger ages?

    python -m bench latency-history [--sizes 1000,100000,1000000] [--repeat 5]

For each size, a ledger of that many events of the allocation-heavy shape
(bench/shapes.py) is built with `homeledger import` (the sizes from 10^5 up are built
once and cached under bench/.cache/; the 10^6 ledger takes minutes), with
HOMELEDGER_SEAL_KEY set: ledger snapshots are trusted only when a key the database does
not hold authenticates them (without one, every process replays from the first fact, by
design). Each measure runs on a fresh copy of the cached file:

    cli         `homeledger allocate ...` as a user runs it: a fresh process, start-up,
                loading the decision state, deciding, recording; median of `repeat`;
    in process  a new application on the store: load the decision state and record one
                allocation (no start-up);
    start-up    `homeledger --help` (for reference: what every command pays anyway).

The ratio is each size's time over the smallest size's. Timings are measurements,
never checks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.shapes import allocation_heavy, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
CLI = [sys.executable, "-m", "homeledger.cli"]
SEAL_KEY = "5e" * 32  # a fixed Ed25519 private key (hex) for the bench's ledgers only
SIZES = (1_000, 100_000, 1_000_000)
CACHED_FROM = 100_000
COMMAND = ("allocate", "--initiative", "init-1", "--year", "2016", "--amount", "1.00")


def cli_env() -> dict[str, str]:
    return {**os.environ, "HOMELEDGER_SEAL_KEY": SEAL_KEY}


def ledger(events: int, folder: Path, log: Any = print) -> Path:
    """A SQLite ledger of `events` events (cached from CACHED_FROM events up)."""
    cached = CACHE / f"history-{events}.db"
    if events >= CACHED_FROM and cached.exists():
        return cached
    target = cached if events >= CACHED_FROM else folder / f"history-{events}.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(target.name + ".building")
    for stale in target.parent.glob(building.name + "*"):
        stale.unlink()
    lines = write_jsonl(folder / f"history-{events}.jsonl", allocation_heavy(events))
    log(f"latency-history: building a ledger of {events:,} events with homeledger import")
    started = time.perf_counter()
    subprocess.run([*CLI, "--store", f"sqlite:///{building}", "--actor", "bench", "import",
                    str(lines)], check=True, env=cli_env(), capture_output=True)  # fmt: skip
    log(f"latency-history: built in {time.perf_counter() - started:.1f} s")
    lines.unlink()
    if building.with_name(building.name + "-wal").exists():  # closed: checkpointed, removed
        raise RuntimeError(f"{building} still has a write-ahead log: not renamed")
    building.rename(target)
    return target


def _copy(source: Path, folder: Path) -> str:
    copy = folder / f"copy-{source.name}"
    shutil.copyfile(source, copy)
    # The copy's pages written out now: otherwise the first commit's sync waits for the
    # whole file (1 GB at 10^6 events) to reach the disk, a cost of the copy, not of
    # the command.
    os.sync()
    return f"sqlite:///{copy}"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_cli(url: str, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds of `homeledger --store URL ARGS` in a fresh process."""
    cpu, started = _children_cpu(), time.perf_counter()
    done = subprocess.run([*CLI, "--store", url, "--actor", "bench", *args], env=cli_env(),
                          capture_output=True, text=True, check=False)  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"homeledger {' '.join(args)} failed: {done.stderr[-2000:]}")
    return seconds, _children_cpu() - cpu


def time_in_process(url: str) -> tuple[float, float]:
    """Load the decision state of a new application and record one allocation: wall and
    CPU seconds."""
    from homeledger.adapters.settings import Settings
    from homeledger.cli.bootstrap import build_application
    from homeledger.domain.commands import AllocateFunds

    settings = Settings(store=url, actor="bench", seal_key=SEAL_KEY)
    cpu, started = time.process_time(), time.perf_counter()
    app = build_application(settings, create=False)
    try:
        app.execute(AllocateFunds(initiative="init-1", year=2016, amount="1.00"))
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        app.store.close()


def measure(events: int, folder: Path, repeat: int, log: Any = print) -> dict[str, Any]:
    source = ledger(events, folder, log)
    url = _copy(source, folder)
    try:
        time_cli(url, *COMMAND)  # a first run: the copy read into the page cache
        cli = [time_cli(url, *COMMAND) for _ in range(repeat)]
        time_in_process(url)  # a first run: the modules imported
        inner = [time_in_process(url) for _ in range(repeat)]
    finally:
        for file in folder.glob(f"copy-{source.name}*"):
            file.unlink()
    return {
        "events": events, "store_mb": round(source.stat().st_size / 2**20, 1),
        "cli_s": statistics.median(w for w, _ in cli),
        "cli_cpu_s": statistics.median(c for _, c in cli), "cli_runs": cli,
        "in_process_s": statistics.median(w for w, _ in inner),
        "in_process_cpu_s": statistics.median(c for _, c in inner), "in_process_runs": inner,
    }  # fmt: skip


def run(sizes: tuple[int, ...] = SIZES, repeat: int = 5, log: Any = print) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="hl-history-"))
    try:
        startup = statistics.median(
            time_cli("sqlite:///" + str(folder / "none.db"), "--help")[0] for _ in range(repeat)
        )
        rows = [measure(events, folder, repeat, log) for events in sizes]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    base = rows[0]
    for row in rows:
        for name in ("cli_s", "cli_cpu_s", "in_process_s", "in_process_cpu_s"):
            row[name.replace("_s", "_ratio")] = round(row[name] / base[name], 3)
    return {"startup_s": startup, "rows": rows, "repeat": repeat}


def table(result: dict[str, Any]) -> str:
    lines = [f"start-up (`homeledger --help`): {result['startup_s'] * 1000:.0f} ms",
             "medians; ratio: over the smallest ledger's; CPU: user + system time",
             f"{'events':>10}  {'store':>8}  {'allocate, CLI':>14}  {'ratio':>6}  "
             f"{'CLI CPU':>8}  {'ratio':>6}  {'in process':>11}  {'ratio':>6}  "
             f"{'its CPU':>8}  {'ratio':>6}"]  # fmt: skip
    for r in result["rows"]:
        lines.append(f"{r['events']:>10,}  {r['store_mb']:>6.0f}MB  {r['cli_s'] * 1000:>11.0f} ms"
                     f"  {r['cli_ratio']:>5.2f}x  {r['cli_cpu_s'] * 1000:>5.0f} ms"
                     f"  {r['cli_cpu_ratio']:>5.2f}x  {r['in_process_s'] * 1000:>8.1f} ms"
                     f"  {r['in_process_ratio']:>5.2f}x  {r['in_process_cpu_s'] * 1000:>5.1f} ms"
                     f"  {r['in_process_cpu_ratio']:>5.2f}x")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench latency-history")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)
    sizes = tuple(int(size) for size in args.sizes.split(","))
    result = run(sizes, args.repeat, lambda text: print(text, file=sys.stderr, flush=True))
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
