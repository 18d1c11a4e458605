"""docs/reference.md against the program, so that the reference cannot drift: every
command and every option or argument of the click tree is documented there and
nothing else is; every event type with each of its wire fields, every rule the ledger
names and every HOMELEDGER_* variable the code reads are in it. And the repository
stands on its own: no tracked file outside tests/ refers to a contract kept outside
the repository, and every relative link of the Markdown points at a file it holds.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click
import pytest

from homeledger.cli.main import cli
from homeledger.domain import errors
from homeledger.domain.events import EVENTS

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"
HEADING = re.compile(r"^### `(homeledger(?: [a-z-]+)+)`$", re.M)
FIRST_CELL = re.compile(r"^\| `([^`]+)` \|", re.M)
# What must not appear outside tests/: names of the product contract and the work folder
# that live outside the repository (joined here so that this file names none of them).
OUTSIDE = tuple("".join(parts) for parts in (("SPEC", ".md"), ("..", "/shared"),
                                             ("SPEC", " section"), ("/wo", "rk/")))


def reference() -> str:
    return REFERENCE.read_text(encoding="utf-8")


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def program_commands() -> dict[str, set[str]]:
    """Every command of the click tree and the names of its own parameters: the long
    option names and the arguments' metavars (without the brackets of an optional one)."""
    found: dict[str, set[str]] = {}

    def walk(command: click.Command, path: str, parent: click.Context | None) -> None:
        if isinstance(command, click.Group):  # sub-commands may be loaded on first use
            ctx = click.Context(command, info_name=path.rsplit(" ", 1)[-1], parent=parent)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, f"{path} {name}"
                walk(sub, f"{path} {name}", ctx)
            return
        names = set()
        for param in command.params:
            if isinstance(param, click.Argument):
                names.add(param.human_readable_name.strip("[]"))
            else:
                names.add(next(o for o in param.opts if o.startswith("--")))
        found[path] = names

    walk(cli, "homeledger", None)
    return found


def documented_commands(text: str) -> dict[str, set[str]]:
    """Each `### `homeledger ...`` heading of the Commands section and the first cells of
    the table under it."""
    commands = section(text, "Commands")
    heads = list(HEADING.finditer(commands))
    found: dict[str, set[str]] = {}
    for head, after in zip(heads, [*heads[1:], None], strict=True):
        body = commands[head.end() : after.start() if after else len(commands)]
        found[head.group(1)] = {cell.replace("\\|", "|") for cell in FIRST_CELL.findall(body)}
    return found


def test_the_reference_documents_every_command_and_option_and_nothing_else() -> None:
    program, documented = program_commands(), documented_commands(reference())
    assert len(program) > 30
    assert sorted(documented) == sorted(program), (
        f"commands missing from docs/reference.md: {sorted(set(program) - set(documented))}; "
        f"documented but not in the program: {sorted(set(documented) - set(program))}"
    )
    for name, params in program.items():
        assert documented[name] == params, (
            f"{name}: missing from docs/reference.md {sorted(params - documented[name])}, "
            f"not in the program {sorted(documented[name] - params)}"
        )


def test_the_reference_documents_the_global_options() -> None:
    table = section(reference(), "Global options")
    for param in cli.params:
        for option in param.opts:
            if option.startswith("--"):
                assert f"`{option}" in table, option
    assert "`--help`, `-h`" in table and "`--version`, `-V`" in table


def test_the_reference_documents_every_event_field() -> None:
    events = section(reference(), "Events")
    titles = re.findall(r"^### (.+)$", events, re.M)
    for name in EVENTS.types():
        title = next((t for t in titles if name in re.split(r", ", t)), None)
        assert title is not None, f"{name} has no section in docs/reference.md"
        body = events.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]
        fields = set(FIRST_CELL.findall(body))
        assert fields == set(EVENTS.current(name).model_fields), name


def test_the_reference_names_every_rule_with_its_exit_code() -> None:
    rules = section(reference(), "Rules")
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (\d) \|", rules, re.M))
    named = {cls.rule for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.DomainError)}  # fmt: skip
    generic = {errors.DomainError.rule, errors.EffectiveDateError.rule}
    for rule in named - generic:
        expected = "2" if any(issubclass(cls, errors.EffectiveDateError) and cls.rule == rule
                              for cls in vars(errors).values()
                              if isinstance(cls, type)) else "3"  # fmt: skip
        assert rows.get(rule) == expected, f"rule {rule}: exit {expected} in docs/reference.md"
    assert rows.get("store-busy") == "3"
    assert set(rows) == (named - generic) | {"store-busy"}


def test_the_reference_documents_every_environment_variable() -> None:
    configuration = section(reference(), "Configuration")
    code = "\n".join(path.read_text(encoding="utf-8")
                     for folder in ("domain", "adapters", "projections", "cli")
                     for path in (ROOT / folder).rglob("*.py"))  # fmt: skip
    variables = set(re.findall(r"(?<!_)HOMELEDGER_[A-Z_]+[A-Z]", code))  # not _HOMELEDGER_COMPLETE
    assert {"HOMELEDGER_STORE", "HOMELEDGER_SUBJECT_PREFIX"} <= variables
    missing = sorted(v for v in variables if f"`{v}`" not in configuration)
    assert not missing, f"not in the Configuration table of docs/reference.md: {missing}"


def test_the_exit_codes_are_documented() -> None:
    table = section(reference(), "Exit codes and errors")
    assert re.findall(r"^\| (\d+) \|", table, re.M) == ["0", "1", "2", "3", "4", "5", "130"]


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                                check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_nothing_outside_tests_refers_to_a_contract_outside_the_repository() -> None:
    found = []
    for path in tracked_files():
        relative = path.relative_to(ROOT)
        if relative.parts[0] == "tests" or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images, binary test data
        for number, line in enumerate(text.splitlines(), 1):
            found += [f"{relative}:{number}: {word}" for word in OUTSIDE if word in line]
    assert not found, "\n".join(found)


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_of_the_docs_points_into_the_repository() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{page.name}: {target} is outside the repository"
            assert resolved.exists(), f"{page.name}: {target} does not exist"


def test_the_readme_and_the_guides_point_to_the_reference() -> None:
    assert "(docs/reference.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("auditing.md", "nats.md", "guarantees.md"):
        assert "reference.md" in (ROOT / "docs" / name).read_text(encoding="utf-8"), name
