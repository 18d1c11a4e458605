"""The sub-commands of `homeledger`, each imported only when it is asked for.

A command's module imports what the command needs (the store, NATS, the documents'
libraries); `homeledger --help` lists every command from the table below without
importing any of them, so that it starts in a fraction of the time. A test checks that
each line of the table says what the command's own help says.
"""

from __future__ import annotations

import importlib

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
    "portfolio": ("audit", "portfolio", "Homes held per country on a date."),
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


class LazyCommands(click.Group):
    """A group whose sub-commands are loaded from COMMANDS on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute, _ = COMMANDS[cmd_name]
            loaded = getattr(importlib.import_module(f"homeledger.cli.{module}"), attribute)
            self.add_command(loaded, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list of commands, from the table: nothing is imported to show it."""
        rows: list[tuple[str, str]] = []
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or click.Command(name, help=COMMANDS[name][2])
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
