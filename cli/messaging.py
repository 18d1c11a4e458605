"""Messaging commands (relay, subscribe, project --from-nats)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Adds the messaging commands to the CLI."""
