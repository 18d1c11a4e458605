"""The benchmark suite still runs: `python -m bench all --quick` at tiny sizes.

No timing is asserted (timings are measurements, never checks): only that every
measure ran (a row "not available" is a failure) on SQLite, PostgreSQL and NATS and
that the JSON table is well formed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import require_postgres

ROOT = Path(__file__).resolve().parents[2]
MEASURES = ("record", "import", "rebuild", "balances --as-of-position", "relay", "latency p50",
            "latency p99", "consumer-side projection", "witness", "project ", "start-up",
            "events list")  # fmt: skip
ROW_KEYS = {"measure", "unit", "baseline", "figure", "ratio", "target", "met", "runs",
            "baseline_runs", "detail", "note"}  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.nats
def test_bench_all_quick_writes_a_well_formed_table(tmp_path: Path) -> None:
    require_postgres()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--quick", "--name", "smoke",
         "--out-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "smoke.json").read_text())

    assert report["benchmark"] == "all" and report["quick"] is True
    assert report["environment"]["cpus"] >= 1
    rows = report["table"]
    for row in rows:
        assert set(row) == ROW_KEYS, row
        assert row["met"] in (True, False, None)
        for key in ("baseline", "figure", "ratio"):
            value = row[key]
            assert value is None or (isinstance(value, int | float) and math.isfinite(value)
                                     and value > 0), (key, row)  # fmt: skip
        assert row["figure"] is not None, f"a measure did not run: {row}"
        assert row["met"] is not None or row["target"] == "(none)", row
    names = [row["measure"] for row in rows]
    for measure in MEASURES:
        assert any(measure in name for name in names), (measure, names)
    assert any("SQLite" in n for n in names if n.startswith("record"))
    assert any("PostgreSQL" in n for n in names if n.startswith("record"))

    scale = {(entry["store"], entry["events"]) for entry in report["scale"]}
    assert {store for store, _ in scale} == {"sqlite", "postgresql"}
    for entry in report["scale"]:
        assert entry["rebuild_rate"] > 0 and entry["peak_rss_mb"] > 0
        assert all(run["rebuild_events"] == entry["events"] for run in entry["runs"])
        assert entry["as_of_seconds_max"] >= entry["as_of_seconds_median"] > 0
    table = done.stdout
    assert table.splitlines()[0].split(" | ")[0].strip() == "measure"
    assert "smoke.json" in done.stderr
