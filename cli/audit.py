"""Auditing commands (balances, audit, portfolio, trial-balance, replay, verify, report)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Adds the auditing commands to the CLI."""
