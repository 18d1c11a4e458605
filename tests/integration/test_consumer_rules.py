"""A consumer building from the stream applies the ledger's rules, not only the chain.

Someone who can publish to the stream appends a correctly chained fact that no valid
command could have recorded (a disbursement of 999,999,999.00, an allocation beyond
the pledge, a disbursement to an initiative that does not exist). `project --from-nats`
refuses it (exit 1, one line naming the stream sequence, the position and the rule),
leaves it unacknowledged, and changes nothing: its figures never show the forgery.
Its own ledger (the rules' state) survives restarts: a later run refuses the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.nats_server import NatsServer
from homeledger.domain import reference_case
from tests.forger import next_fact, publish_raw
from tests.integration.test_consumer_projection import dump
from tests.nats_helpers import cli_env, invoke, store_envelopes

pytestmark = pytest.mark.nats


@pytest.fixture
def ledger(make_app: Callable[..., LedgerApplication], sqlite_url: str,
           server: NatsServer) -> LedgerApplication:  # fmt: skip
    app = make_app(sqlite_url, actor="ops@example.org")
    for command in reference_case.commands():
        app.execute(command)
    assert invoke(["relay", "--once"], cli_env(sqlite_url, server.url)).exit_code == 0
    return app


def project(consumer: str, env: dict[str, str]) -> Any:
    return invoke(["--store", consumer, "--format", "json", "project", "--from-nats",
                   "--durable", "c1", "--once", "--ack-wait", "1"], env)  # fmt: skip


FORGERIES = {
    "over-disbursement": ("FundsDisbursed", "gw-bissau-village",
                          {"initiative": "gw-bissau-village", "amount": "999999999.00",
                           "currency": "EUR", "disbursed_on": "2022-03-01"},
                          "disbursement-within-allocation"),
    "allocation-beyond-pledge": ("FundsAllocated", "gw-bissau-village",
                                 {"allocation_id": "a-forged", "initiative": "gw-bissau-village",
                                  "year": 2021, "amount": "50000000.00", "currency": "EUR"},
                                 "allocation-within-pledge"),
    "unregistered-initiative": ("FundsDisbursed", "nowhere",
                                {"initiative": "nowhere", "amount": "1.00", "currency": "EUR",
                                 "disbursed_on": "2022-03-01"}, "initiative-exists"),
}  # fmt: skip


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_fact_that_breaks_a_rule_is_refused_by_the_consumer(
    ledger: LedgerApplication, server: NatsServer, sqlite_url: str, tmp_path: Path,
    forgery: str,
) -> None:  # fmt: skip
    env = cli_env(sqlite_url, server.url)
    consumer = f"sqlite:///{tmp_path / 'consumer.db'}"
    first = project(consumer, env)  # a first run: the consumer's ledger is kept
    assert first.exit_code == 0, first.output
    before = dump(consumer)
    kind, scope, data, rule = FORGERIES[forgery]
    last = store_envelopes(ledger)[-1].to_dict()
    event = next_fact(last, type=kind, scope=scope, data=data)
    publish_raw(server.url, f"homeledger.events.{kind}.{scope}", event,
                {"Nats-Msg-Id": event["event_id"]})  # fmt: skip
    for _ in range(2):  # refused, left unacknowledged, refused again by the next run
        result = project(consumer, env)
        assert result.exit_code == 1, result.output
        line = result.stderr.strip()
        assert line.count("\n") == 0 and "refused to project" in line
        assert f"position {event['position']}" in line and f"[{rule}]" in line
    assert dump(consumer) == before
    balances = invoke(["--store", consumer, "--format", "json", "balances", "--by",
                       "initiative"], env)  # fmt: skip
    assert "999999999.00" not in balances.stdout and json.loads(balances.stdout)
