"""`homeledger import` of two versions side by side, against the raw library, in one run.

    python -m bench.import_ab --before OTHER/.venv/bin/python [--commands 100000]
                              [--repeat 1] [--stores sqlite,postgres]

Each round saves the commands with the eventsourcing library alone (100 per transaction,
as `bench paths` does), then imports the same file with the interpreter given as
`--before` (another checkout of homeledger installed in its own virtualenv) and with this
one, each into a fresh store, so that all three see the same machine at nearly the same
moment. Prints wall time, ratio to the library, CPU time (user + system) and peak RSS.
Timings are measurements, never checks.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import paths, rebuild
from bench.shapes import allocation_heavy, write_jsonl


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _import(python: str, url: str, file: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one import."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        cpu, started = _children_cpu(), time.perf_counter()
        subprocess.run([paths.TIME, "-f", "%M", "-o", rss.name, python, "-m", "homeledger.cli",
                        "--store", url, "--actor", "bench", "import", str(file)],
                       check=True, capture_output=True)  # fmt: skip
        wall = time.perf_counter() - started
        peak = int(Path(rss.name).read_text().split()[-1]) / 1024
    return wall, _children_cpu() - cpu, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.import_ab")
    parser.add_argument("--before", required=True, help="the other version's python")
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--stores", default="sqlite")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="hl-import-ab-"))
    lines = list(allocation_heavy(args.commands))
    file = write_jsonl(folder / "commands.jsonl", iter(lines))
    versions = {"before": args.before, "after": sys.executable}
    for kind in args.stores.split(","):
        for run in range(args.repeat):
            url, remove = rebuild.new_store(kind, folder)
            try:
                cpu = time.process_time()
                base = paths.raw_append(url, lines)
                base_cpu = time.process_time() - cpu
            finally:
                remove()
            print(f"{kind}, {args.commands:,} commands, run {run + 1}: library {base:.2f} s "
                  f"({args.commands / base:,.0f}/s, CPU {base_cpu:.2f} s)", flush=True)  # fmt: skip
            for name, python in versions.items():
                url, remove = rebuild.new_store(kind, folder)
                try:
                    wall, cpu_s, peak = _import(python, url, file)
                finally:
                    remove()
                print(f"  {name:6} {wall:.2f} s, {base / wall:.3f}x, CPU {cpu_s:.2f} s, "
                      f"peak RSS {peak:.0f} MB, load {os.getloadavg()[0]:.1f}", flush=True)
    file.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
