"""The documents' benchmark: the statement's build time, the IATI export's time and peak
memory, on synthetic ledgers of 10^4, 10^5 and 10^6 events.

    python -m bench.documents [--sizes 10000,100000,1000000] [--repeat 1]

Each ledger is bench.rebuild's synthetic history (the cached SQLite stores under
bench/.cache/ for 10^5 events and more, generated once, as `python -m bench` does),
copied into a temporary folder with its read models rebuilt before the clock starts.
Every measure is the command as a user runs it, in a fresh process (start-up included);
its peak RSS is the process's own high-water mark (VmHWM). Results: a table on stdout
and bench/results/documents.json. Timings are measurements, never checks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import rebuild as rebuild_bench
from bench.suite import CACHE, GENERATION, _checkpoint

RESULTS = Path(__file__).parent / "results" / "documents.json"
ROOT = Path(__file__).resolve().parent.parent
STATEMENT_SIZES = (10_000, 100_000, 1_000_000)
IATI_SIZES = (100_000, 1_000_000)
# Runs the CLI and reports the process's own peak RSS on stderr when it exits.
RUNNER = (
    "import atexit, sys\n"
    "def peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            print('PEAK_KB', line.split()[1], file=sys.stderr)\n"
    "atexit.register(peak)\n"
    "from homeledger.cli.main import main\n"
    "sys.argv = ['homeledger', *sys.argv[1:]]\n"
    "main()\n"
)


def store_of(events: int, folder: Path) -> str:
    """A copy of the synthetic ledger of `events` events, its read models rebuilt."""
    path = folder / f"ledger-{events}.db"
    if events >= 100_000:
        cached = CACHE / f"sqlite-{events}-seed7-g{GENERATION}.db"
        if not cached.exists():
            print(f"generating {events:,} events into {cached} (once)", file=sys.stderr)
            CACHE.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".part")
            rebuild_bench.fill(f"sqlite:///{partial}", events)
            _checkpoint(partial)
            partial.rename(cached)
        shutil.copyfile(cached, path)
    else:
        rebuild_bench.fill(f"sqlite:///{path}", events)
    url = f"sqlite:///{path}"
    subprocess.run([sys.executable, "-c", RUNNER, "--store", url, "replay"], check=True,
                   capture_output=True, env=_env())  # fmt: skip
    return url


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def timed(*args: str) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one CLI run in a fresh process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True,
                          text=True, env=_env(), check=False)  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr[-500:]}")
    peak = next(int(line.split()[1]) for line in done.stderr.splitlines()
                if line.startswith("PEAK_KB"))  # fmt: skip
    return seconds, peak / 1024


def median_run(repeat: int, *args: str) -> dict[str, Any]:
    runs = [timed(*args) for _ in range(repeat)]
    return {"seconds": statistics.median(r[0] for r in runs),
            "peak_rss_mb": statistics.median(r[1] for r in runs),
            "runs": [round(r[0], 2) for r in runs]}  # fmt: skip


def measure(sizes: list[int], repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hl-bench-documents-") as tmp:
        folder = Path(tmp)
        for events in sizes:
            url = store_of(events, folder)
            year = _busiest_year(url)
            row: dict[str, Any] = {"events": events, "year": year}
            out = str(folder / "statement.html")
            base = ["--store", url, "statement", "--year", str(year), "--out", out]
            if events in STATEMENT_SIZES:
                row["statement"] = median_run(repeat, *base, "--no-verify")
                row["statement_html_bytes"] = Path(out).stat().st_size
                row["statement_with_verify"] = median_run(1, *base)
            if events in IATI_SIZES:
                xml = str(folder / "export.xml")
                iati = ["--store", url, "export", "iati", "--out", xml, "--reporting-org",
                        "NL-KVK-41202535", "--reporting-org-name", "Bench"]  # fmt: skip
                row["iati"] = median_run(repeat, *iati)
                row["iati_xml_bytes"] = Path(xml).stat().st_size
                row["iati_no_validate"] = median_run(1, *iati, "--no-validate")
            results[str(events)] = row
            Path(url.removeprefix("sqlite:///")).unlink()
            print(report_row(row), file=sys.stderr)
    return results


def _busiest_year(url: str) -> int:
    """A full year of the synthetic ledger: its second pledge year."""
    done = subprocess.run([sys.executable, "-c", RUNNER, "--store", url, "--format", "json",
                           "balances"], capture_output=True, text=True, env=_env(),
                          check=True)  # fmt: skip
    years = [row["year"] for row in json.loads(done.stdout)]
    return int(years[1] if len(years) > 1 else years[0])


def report_row(row: dict[str, Any]) -> str:
    parts = [f"{row['events']:>9,} events"]
    if "statement" in row:
        parts.append(f"statement {row['statement']['seconds']:.1f} s "
                     f"(with verify {row['statement_with_verify']['seconds']:.1f} s)")  # fmt: skip
    if "iati" in row:
        parts.append(f"IATI export {row['iati']['seconds']:.1f} s, peak RSS "
                     f"{row['iati']['peak_rss_mb']:.0f} MB "
                     f"({row['iati_xml_bytes'] / 1e6:.0f} MB of XML; "
                     f"{row['iati_no_validate']['seconds']:.1f} s without validation)")  # fmt: skip
    return "  ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.documents",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    results = measure(sizes, max(1, args.repeat))
    for row in results.values():
        print(report_row(row))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    saved = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
             "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
             "repeat": args.repeat, "sizes": results}  # fmt: skip
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
