"""The documents' libraries (Jinja2, Babel, matplotlib, WeasyPrint, lxml) are loaded by
`statement` and `export iati` only: every other command starts without them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("jinja2", "babel", "matplotlib", "weasyprint", "lxml", "markupsafe")

PROBE = """
import json, sys
from click.testing import CliRunner
from homeledger.cli.main import cli
result = CliRunner().invoke(cli, sys.argv[1:])
print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] in {heavy})))
"""


def loaded_by(*args: str) -> list[str]:
    code = PROBE.replace("{heavy}", repr(set(HEAVY)))
    done = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                          text=True)  # fmt: skip
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_other_commands_do_not_import_the_document_libraries() -> None:
    assert loaded_by("--help") == []
    assert loaded_by("statement", "--help") == []
    assert loaded_by("export", "iati", "--help") == []


def test_the_statement_imports_them_when_it_runs(tmp_path: object) -> None:
    loaded = loaded_by("--store", "sqlite:////nonexistent/x.db", "statement", "--year", "2022",
                       "--out", "/nonexistent/s.html")  # fmt: skip
    assert "jinja2" in loaded and "weasyprint" not in loaded  # PDF only for a .pdf
