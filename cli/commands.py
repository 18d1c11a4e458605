"""The sub-commands of `homeledger`, each imported only when it is asked for.

A command's module imports what the command needs (the store, NATS, the documents'
libraries); `homeledger --help` lists every command from the table below without
importing any of them, so that it starts in a fraction of the time. A test checks that
each line of the table says what the command's own help says.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, cast

import click

# name: (module under homeledger.cli, attribute, the command's short help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "allocate": ("record", "allocate", "Allocate part of a year's pledge to an initiative."),
    "audit": ("audit", "audit",
              "Every fact that touched INITIATIVE, with the running balance after each."),
    "balances": ("audit", "balances", "Pledged, received, outstanding, allocated, released, "
                 "unallocated, disbursed."),
    "consumers": ("stream", "consumers", "The stream's consumers (durables of `subscribe` and "
                  "`project`, and ephemeral ones)."),
    "demo": ("demo", "demo",
             "The reference case end to end: record, relay to NATS, project, compare."),
    "disburse": ("record", "disburse", "Pay allocated money out to an initiative."),
    "events": ("inspect", "events", "Inspect recorded events."),
    "export": ("documents", "export", "The ledger in standard formats for others to read."),
    "import": ("record", "import_", "Record a JSON Lines file of commands (- reads standard "
               "input), all or nothing."),
    "init": ("record", "init", "Establish the partnership (once per ledger)."),
    "initiative": ("record", "initiative", "Initiatives the charity funds."),
    "milestone": ("record", "milestone",
                  "Record a milestone an initiative reached (once per milestone)."),
    "pledge": ("record", "pledge",
               "Pledge (or adjust) a year's donation, computed from the portfolio."),
    "portfolio": ("audit", "portfolio",
                  "Homes held per country on a date (the table ends with their total)."),
    "project": ("messaging", "project", "Build balances, audit trails, portfolio and postings "
                "from the stream alone."),
    "receive": ("record", "receive", "Record money received against a year's pledge."),
    "relay": ("messaging", "relay",
              "Publish stored events to JetStream in store order, exactly once."),
    "release": ("record", "release", "Release (part of) an allocation back to its year."),
    "replay": ("audit", "replay", "Drop projections and rebuild them from position 0."),
    "report": ("audit", "report",
               "A year's report: pledged, received, allocations, disbursed, milestones."),
    "reverse": ("record", "reverse", "Reverse a recorded fact: an acquisition, a disposal, a "
                "receipt, a disbursement or a milestone."),
    "schema": ("inspect", "schema", "JSON Schema of the published envelope, per event type."),
    "seal": ("record", "seal",
             "Record a LedgerSealed fact: a digest of everything stored up to now."),
    "statement": ("documents", "statement", "The partnership's yearly statement for people: "
                  "figures, charts, initiatives, milestones and the integrity of what it "
                  "shows."),
    "stream": ("stream", "stream",
               "The JetStream stream the relay publishes to (--stream, --nats)."),
    "subscribe": ("messaging", "subscribe",
                  "Print events from the stream, acknowledging each after printing."),
    "trial-balance": ("audit", "trial_balance",
                      "Debits, credits and balance per account; the difference is always zero."),
    "units": ("record", "units", "Homes acquired and disposed of."),
    "verify": ("audit", "verify", "Check the hash chain, seals, rules, receipts, snapshots, "
               "projections, double entry."),
}  # fmt: skip


def _load(name: str) -> click.Command:
    module, attribute, _ = COMMANDS[name]
    command: click.Command = getattr(importlib.import_module(f"homeledger.cli.{module}"),
                                     attribute)  # fmt: skip
    return command


class _Commands(dict[str, click.Command]):
    """The group's commands by name: one is imported when it is looked up, all of them
    when the mapping is walked (as a plain dict of commands would be)."""

    def _all(self) -> None:
        for name in COMMANDS:
            self.get(name)

    def get(self, name: str, default: Any = None) -> Any:
        if not dict.__contains__(self, name) and name in COMMANDS:
            self[name] = _load(name)
        return dict.get(self, name, default)

    def __getitem__(self, name: str) -> click.Command:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return cast(click.Command, found)

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or dict.__contains__(self, name)

    def __iter__(self) -> Iterator[str]:
        self._all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._all()
        return dict.__len__(self)

    def keys(self) -> Any:
        self._all()
        return dict.keys(self)

    def values(self) -> Any:
        self._all()
        return dict.values(self)

    def items(self) -> Any:
        self._all()
        return dict.items(self)


class LazyCommands(click.Group):
    """A group whose sub-commands are loaded from COMMANDS on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = _Commands(self.commands)
        self.commands = self._lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *dict.keys(self._lazy)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return cast("click.Command | None", self._lazy.get(cmd_name))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list of commands, from the table: nothing is imported to show it."""
        rows: list[tuple[str, str]] = []
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        for name in self.list_commands(ctx):
            loaded = dict.get(self._lazy, name)
            command = loaded or click.Command(name, help=COMMANDS[name][2])
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
