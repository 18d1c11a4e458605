"""`homeledger demo` writes the reference case's 2022 statement beside its store and says
where; its figures are the demo store's balances."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.documents_ledgers import run
from tests.helpers import CLI, clean_env

pytestmark = pytest.mark.nats

def test_the_demo_writes_the_statement_and_says_where(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    done = subprocess.run([*CLI, "--format", "json", "demo", "--dir", str(folder)],
                          env=clean_env(), capture_output=True, text=True, timeout=180,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = folder / "statement-2022.html"
    assert json.loads(done.stdout)["statement"] == str(written)
    assert f"to {written}" in done.stderr
    html = written.read_text(encoding="utf-8")
    years = run(f"sqlite:///{folder / 'homeledger.db'}", "balances", "--by", "year")
    row = next(r for r in years if r["year"] == 2022)
    for name in ("pledged", "received", "allocated", "unallocated"):
        found = re.search(rf'data-scope="year" data-figure="{name}" data-value="([^"]*)"', html)
        assert found is not None and found.group(1) == row[name]
    assert 'data-figure="verified" data-value="ok"' in html
