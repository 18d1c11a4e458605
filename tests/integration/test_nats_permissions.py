"""The shipped NATS users on a cluster started from docker/nats/nats.conf itself.

The relay's credential publishes the ledger's facts and nothing else; a projector's
credential reads (builds its views, subscribes, inspects the stream and its consumers)
but can neither publish, purge, delete nor reshape the stream. Each attempt is made
with nats-py directly, as an attacker holding the credential would, and the stream is
checked unchanged afterwards.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig

from homeledger.adapters.nats_server import cluster_url
from homeledger.adapters.settings import Settings
from homeledger.cli.bootstrap import build_application
from tests.helpers import one_line, open_app, wait_until
from tests.nats_helpers import (
    assert_exactly_once_in_order,
    invoke,
    read_stream,
    record_story,
    store_envelopes,
)
from tests.shipped_deployment import homeledger_env, service_env, start_shipped_cluster

pytestmark = pytest.mark.nats

STREAM = "HOMELEDGER"


@dataclass
class Deployment:
    url: str
    store: str
    relay_env: dict[str, str]
    projector_env: dict[str, str]  # the projector service's credential
    cli_env: dict[str, str]  # the operators' cli service (the projector's credential too)
    events: int

    def credential(self, service_name: str) -> dict[str, str]:
        env = service_env(service_name)
        return {"user": env["HOMELEDGER_NATS_USER"], "password": env["HOMELEDGER_NATS_PASSWORD"]}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A ledger relayed by the compose file's relay service to the shipped cluster."""
    base = tmp_path_factory.mktemp("shipped")
    store = f"sqlite:///{base / 'ledger.db'}"
    app = open_app(store)
    record_story(app)
    events = len(store_envelopes(app))
    app.store.close()
    servers = start_shipped_cluster(base / "cluster")
    try:
        url = cluster_url(servers)
        relay_env = homeledger_env("relay", store, url)
        relayed = invoke(["relay", "--once", "--replicas", "3"], relay_env)
        assert relayed.exit_code == 0, relayed.output
        yield Deployment(url, store, relay_env, homeledger_env("projector", store, url),
                         homeledger_env("cli", store, url), events)  # fmt: skip
    finally:
        for server in servers:
            server.stop()


# What each credential can do.


def test_the_relay_credential_creates_the_protected_stream_and_publishes_every_fact(
    deployment: Deployment,
) -> None:
    info = json.loads(invoke(["--format", "json", "stream", "info"], deployment.cli_env).stdout)
    assert info["subjects"] == ["homeledger.events.>"]
    assert (info["deny_delete"], info["deny_purge"], info["allow_rollup"]) == (True, True, False)
    assert info["replicas"] == 3
    assert info["messages"] == info["last_position"] == deployment.events
    again = invoke(["--format", "json", "relay", "--once", "--replicas", "3"],
                   deployment.relay_env)  # a restart: the stream needs no update (denied)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["published"] == 0
    app = build_application(Settings(store=deployment.store), create=False)
    try:
        messages = read_stream(deployment.url, **deployment.credential("projector"))
        assert_exactly_once_in_order(messages, store_envelopes(app))
    finally:
        app.store.close()


def test_a_projector_credential_builds_its_views_and_reads_what_it_needs(
    deployment: Deployment, tmp_path: Path
) -> None:
    consumer = f"sqlite:///{tmp_path / 'consumer.db'}"
    projected = invoke(["--store", consumer, "--format", "json", "project", "--from-nats",
                        "--durable", "projector", "--once"], deployment.projector_env)  # fmt: skip
    assert projected.exit_code == 0, projected.output
    assert json.loads(projected.stdout)["events"] == deployment.events
    for by in ("year", "initiative", "country"):
        ours = invoke(["--format", "json", "balances", "--by", by], deployment.cli_env)
        theirs = invoke(["--store", consumer, "--format", "json", "balances", "--by", by],
                        deployment.projector_env)  # fmt: skip
        assert json.loads(theirs.stdout) == json.loads(ours.stdout)
    consumers_before = consumer_names(deployment.cli_env)
    assert "projector" in consumers_before
    looked = invoke(["--format", "jsonl", "subscribe", "--idle", "0.5"], deployment.cli_env)
    assert looked.exit_code == 0, looked.output
    assert len(looked.stdout.splitlines()) == deployment.events
    verified = invoke(["verify", "--against-nats"], deployment.cli_env)
    assert verified.exit_code == 0, verified.output
    # The ad-hoc readers left nothing (a cluster may list a deleted consumer for a moment).
    wait_until(lambda: consumer_names(deployment.cli_env) == consumers_before, 10, "no leftovers")
    removed = invoke(["consumers", "remove", "projector"], deployment.cli_env)
    assert removed.exit_code == 0, removed.output


def consumer_names(env: dict[str, str]) -> list[str]:
    listed = invoke(["--format", "json", "consumers", "list"], env)
    assert listed.exit_code == 0, listed.output
    return [row["name"] for row in json.loads(listed.stdout)]


# What no credential of the deployment can do.


@dataclass(frozen=True)
class Attempt:
    what: str
    call: Callable[[JetStreamContext], Awaitable[Any]]


def _attacks() -> list[Attempt]:
    forged = json.dumps({"type": "FundsDisbursed", "amount": "999999999.00"}).encode()
    shrunk = StreamConfig(name=STREAM, subjects=["homeledger.events.>"], max_msgs=1,
                          deny_delete=True, deny_purge=True)  # fmt: skip
    return [
        Attempt("publish a fact",
                lambda js: js.publish("homeledger.events.FundsDisbursed.gw-x", forged)),
        Attempt("publish elsewhere", lambda js: js.publish("other.subject", forged)),
        Attempt("purge the stream", lambda js: js.purge_stream(STREAM)),
        Attempt("delete a message", lambda js: js.delete_msg(STREAM, 1)),
        Attempt("delete the stream", lambda js: js.delete_stream(STREAM)),
        Attempt("shrink the stream's limits", lambda js: js.update_stream(shrunk)),
        Attempt("create a stream", lambda js: js.add_stream(
            StreamConfig(name="CAPTURE", subjects=["capture.>"]))),
    ]  # fmt: skip


async def _attack(url: str, credential: dict[str, str],
                  attempts: list[Attempt]) -> dict[str, Any]:  # fmt: skip
    """Each attempt, as the holder of `credential`; the server's refusals and the stream's
    state before and after."""
    refusals: list[str] = []

    async def on_error(error: Exception) -> None:
        refusals.append(str(error).lower())

    nc = await nats.connect(url.split(","), **credential, error_cb=on_error)
    try:
        js = nc.jetstream(timeout=1.0)
        before = await js.stream_info(STREAM)
        # All at once: a refused request is never answered, so each waits out its timeout.
        results = await asyncio.gather(*(attempt.call(js) for attempt in attempts),
                                       return_exceptions=True)  # fmt: skip
        outcomes = {attempt.what: type(result).__name__ if isinstance(result, BaseException)
                    else "done" for attempt, result in zip(attempts, results, strict=True)}
        timed_out = sum(outcome == "TimeoutError" for outcome in outcomes.values())
        for _ in range(100):  # the server's -ERR lines arrive asynchronously
            if len(refusals) >= timed_out:
                break
            await asyncio.sleep(0.05)
        after = await js.stream_info(STREAM)
    finally:
        await nc.close()
    return {"outcomes": outcomes, "refusals": refusals, "before": before, "after": after}


def _unchanged(result: dict[str, Any]) -> None:
    before, after = result["before"], result["after"]
    assert (after.state.messages, after.state.first_seq, after.state.last_seq) == \
        (before.state.messages, before.state.first_seq, before.state.last_seq)  # fmt: skip
    assert after.config == before.config


@pytest.mark.parametrize("service_name", ["projector", "cli"])
def test_a_projector_credential_cannot_publish_purge_delete_or_reshape(
    deployment: Deployment, service_name: str
) -> None:
    result = asyncio.run(_attack(deployment.url, deployment.credential(service_name),
                                 _attacks()))  # fmt: skip
    assert set(result["outcomes"].values()) == {"TimeoutError"}, result["outcomes"]
    for subject in ("homeledger.events.fundsdisbursed.gw-x", "other.subject",
                    "$js.api.stream.purge.homeledger", "$js.api.stream.msg.delete.homeledger",
                    "$js.api.stream.delete.homeledger", "$js.api.stream.update.homeledger",
                    "$js.api.stream.create.capture"):  # fmt: skip
        assert any("permissions violation" in r and f'"{subject}"' in r
                   for r in result["refusals"]), subject  # fmt: skip
    _unchanged(result)


def test_the_relay_credential_publishes_its_subjects_only_and_removes_nothing(
    deployment: Deployment,
) -> None:
    attacks = [a for a in _attacks() if a.what != "publish a fact"]  # that is its job
    attacks.append(Attempt("read through a consumer", lambda js: js.add_consumer(
        STREAM, ConsumerConfig(name="peek", deliver_policy=DeliverPolicy.ALL))))  # fmt: skip
    result = asyncio.run(_attack(deployment.url, deployment.credential("relay"), attacks))
    assert set(result["outcomes"].values()) == {"TimeoutError"}, result["outcomes"]
    assert sum("permissions violation" in r for r in result["refusals"]) == len(attacks)
    _unchanged(result)


def test_a_consumer_cannot_make_the_server_republish_into_the_stream(
    deployment: Deployment,
) -> None:
    """A push consumer delivering to the stream's own subjects would copy facts into it."""
    loop = Attempt("push into the stream", lambda js: js.add_consumer(STREAM, ConsumerConfig(
        name="loop", durable_name="loop", deliver_subject="homeledger.events.FundsAllocated.x",
        deliver_policy=DeliverPolicy.ALL)))  # fmt: skip
    result = asyncio.run(_attack(deployment.url, deployment.credential("projector"), [loop]))
    assert result["outcomes"] == {"push into the stream": "BadRequestError"}  # a cycle
    _unchanged(result)


def test_a_permission_the_credential_lacks_is_one_line_and_exit_4(
    deployment: Deployment,
) -> None:
    """The relay's credential reads no consumer: the refusal is said, not a bare timeout."""
    result = invoke(["consumers", "list"], deployment.relay_env)
    assert result.exit_code == 4
    line = one_line(result.stderr)
    assert "permissions violation" in line and "$js.api.consumer.list.homeledger" in line.lower()
    assert deployment.relay_env["HOMELEDGER_NATS_PASSWORD"] not in result.output
