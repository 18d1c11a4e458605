"""The worked example of the README and the dated example of docs/auditing.md, run as
written: every command in their shell blocks, in order, on a fresh store, exiting as
the comments after it say (0 unless `(exit N`), and every output block printed as
shown. Recorded times depend on when the example runs: they are compared as times, not
by value. A claim about `--as-of TIME` is checked with the times of this run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from homeledger.adapters.envelope import format_time, parse_time
from homeledger.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


@dataclass
class Step:
    """One command as written, what it must exit with, and the output shown after it."""

    args: list[str]
    exit_code: int = 0
    says: str = ""  # the refusal's text, from the comment after the command
    output: str | None = None


@dataclass
class Example:
    env: dict[str, str] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)


def section(text: str, title: str) -> str:
    start = text.index(title)
    after = text.find("\n## ", start + len(title))
    return text[start: after if after != -1 else len(text)]


def parse(text: str, example: Example) -> Example:
    """The sh blocks' commands and the text blocks right after them."""
    for match in FENCE.finditer(text):
        kind, body = match.group(1), match.group(2)
        if kind == "text" and example.steps:
            example.steps[-1].output = body
        elif kind == "sh":
            _commands(body, example)
    return example


def _commands(body: str, example: Example) -> None:
    lines = iter(body.replace("\\\n", " ").splitlines())
    for line in lines:
        if line.startswith("#") and example.steps:  # the refusal of the command before
            step = example.steps[-1]
            step.says = " ".join((step.says + " " + line.lstrip("# ")).split())
            found = re.search(r"\(exit (\d)", line)
            if found:
                step.exit_code = int(found.group(1))
                step.says = step.says.split("(exit")[0].removeprefix("homeledger: ").strip()
            continue
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "export":
            example.env.update(word.split("=", 1) for word in words[1:])  # type: ignore[misc]
        else:
            assert words[0] == "homeledger", line
            example.steps.append(Step(words[1:]))


def normalised(text: str) -> list[str]:
    return [TIME.sub("<time>", line).rstrip() for line in text.strip().splitlines()]


def run(example: Example, folder: Path, runner: CliRunner) -> list[Result]:
    results = []
    env = {**example.env, "HOMELEDGER_STORE": example.env["HOMELEDGER_STORE"].replace(
        "sqlite:///", f"sqlite:///{folder}/")}  # fmt: skip
    for step in example.steps:
        result = runner.invoke(cli, step.args, env=env)
        assert result.exit_code == step.exit_code, (step.args, result.output)
        if step.says:
            assert " ".join(result.stderr.split()) == f"homeledger: {step.says}", step.args
        if step.output is not None:
            assert normalised(result.output) == normalised(step.output), step.args
        results.append(result)
    return results


@pytest.fixture
def readme() -> Example:
    text = (ROOT / "README.md").read_text()
    return parse(section(text, "## A worked example: the reference case by hand"), Example())


def test_the_readme_example_prints_what_it_promises(readme: Example, tmp_path: Path) -> None:
    assert len(readme.steps) > 20 and sum(1 for s in readme.steps if s.output) >= 4
    assert sum(1 for s in readme.steps if s.exit_code) >= 3
    runner = CliRunner()
    run(readme, tmp_path, runner)
    # "--as-of TIME between the milestone (9) and the first reversal (10) answers like
    # --as-of-position 9": with this run's times.
    env = {**readme.env, "HOMELEDGER_STORE": f"sqlite:///{tmp_path}/heimstaden.db"}
    listed = runner.invoke(cli, ["--format", "json", "events", "list", "--from-position", "9",
                                 "--to-position", "10"], env=env)  # fmt: skip
    nine, ten = TIME.findall(listed.stdout)[:2]
    at_nine = runner.invoke(cli, ["balances", "--to", "2021-12-31", "--as-of-position", "9"],
                            env=env)  # fmt: skip
    assert "500,000.00" in at_nine.output  # a table: thousands separators
    for moment in (nine, _just_before(ten)):
        at_time = runner.invoke(cli, ["balances", "--to", "2021-12-31", "--as-of", moment],
                                env=env)  # fmt: skip
        assert at_time.output == at_nine.output, moment
    at_ten = runner.invoke(cli, ["balances", "--to", "2021-12-31", "--as-of", ten], env=env)
    assert at_ten.stderr.startswith("as of position 10 ")


def _just_before(moment: str) -> str:
    """The time one microsecond before a recorded time."""
    return format_time(parse_time(moment) - timedelta(microseconds=1))


def test_the_auditing_guide_prints_what_it_promises(readme: Example, tmp_path: Path) -> None:
    text = (ROOT / "docs" / "auditing.md").read_text()
    guide = parse(section(text, "## 9. A dated example and a correction"), Example())
    assert sum(1 for s in guide.steps if s.output) >= 4
    run(Example(readme.env, readme.steps + guide.steps), tmp_path, CliRunner())
