"""The relay never publishes an event twice, nor skips one, whatever someone else put
in the stream: any message it did not publish is a disagreement (exit 1, one line,
nothing published), like a stream of another ledger or an older copy of the store.

The forger can publish to the stream's subjects (a credential with publish rights):
a byte copy of an old message under a new Msg-Id (which would make a relay that
trusts the stream's last message publish everything after it again), an exact copy
of an event the relay has not published yet (which would make it skip the ones
before), or a message without the relay's headers. (It cannot delete one: the stream is
created with deny-delete; a stream that lost messages anyway is refused the same way.)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date

import pytest

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.nats_messages import (
    EXPECTED_LAST_SEQUENCE,
    MSG_ID,
    POSITION,
    message_for,
)
from homeledger.adapters.nats_server import NatsServer
from homeledger.domain.commands import AcquireUnits
from tests.forger import publish_raw
from tests.nats_helpers import cli_env, invoke, read_stream, record_story, store_envelopes

pytestmark = pytest.mark.nats


@pytest.fixture
def ledger(make_app: Callable[..., LedgerApplication], sqlite_url: str) -> LedgerApplication:
    app = make_app(sqlite_url)
    record_story(app)
    return app


def relay(url: str, server: NatsServer) -> tuple[int, str]:
    result = invoke(["relay", "--once", "--max-outage", "10"], cli_env(url, server.url))
    return result.exit_code, result.stderr


def more(app: LedgerApplication, count: int) -> None:
    for units in range(1, count + 1):
        app.execute(AcquireUnits(country="SE", units=units, on=date(2022, 5, 1)))


def assert_refused(url: str, server: NatsServer, words: str) -> None:
    before = read_stream(server.url)
    code, stderr = relay(url, server)
    assert code == 1, stderr
    assert stderr.count("\n") == 1 and words in stderr, stderr
    assert read_stream(server.url) == before  # nothing published


def test_a_copy_of_an_old_message_under_a_new_id_is_refused(
    ledger: LedgerApplication, server: NatsServer, sqlite_url: str
) -> None:
    assert relay(sqlite_url, server)[0] == 0
    fifth = read_stream(server.url)[4]
    headers = {k: v for k, v in fifth.headers.items() if k != EXPECTED_LAST_SEQUENCE}
    publish_raw(server.url, fifth.subject, fifth.data, {**headers, MSG_ID: str(uuid.uuid4())})
    more(ledger, 3)
    assert_refused(sqlite_url, server, "messages the relay did not publish")
    ids = [m.headers[MSG_ID] for m in read_stream(server.url)]
    stored = [e.event_id for e in store_envelopes(ledger)]
    assert ids.count(fifth.headers[MSG_ID]) == 1  # the relay never published it again
    assert set(stored[:-3]) <= set(ids) and not set(stored[-3:]) & set(ids)


def test_an_event_published_ahead_of_the_relay_is_refused_not_skipped_to(
    ledger: LedgerApplication, server: NatsServer, sqlite_url: str
) -> None:
    assert relay(sqlite_url, server)[0] == 0
    more(ledger, 5)
    ahead = store_envelopes(ledger)[-2]  # the store's own event, two before the head
    message = message_for(ahead)
    publish_raw(server.url, message.subject, message.payload, message.headers)
    assert_refused(sqlite_url, server, "messages the relay did not publish")


def test_a_message_without_the_relays_headers_is_refused(
    ledger: LedgerApplication, server: NatsServer, sqlite_url: str
) -> None:
    assert relay(sqlite_url, server)[0] == 0
    publish_raw(server.url, "homeledger.events.FundsDisbursed.gw-bissau-village",
                b'{"amount": "999999999.00"}', {MSG_ID: str(uuid.uuid4())})  # fmt: skip
    more(ledger, 1)
    assert_refused(sqlite_url, server, f"no valid {POSITION} header")


def test_an_honest_stream_ahead_of_the_relays_position_is_resumed_from(
    ledger: LedgerApplication, server: NatsServer, sqlite_url: str
) -> None:
    """The relay crashed after JetStream's acknowledgement, before recording it: the
    stream holds exactly the store's events, and the relay carries on after them."""
    assert relay(sqlite_url, server)[0] == 0
    ledger.store.tracking_recorder()  # the relay's position table, emptied below
    from tests.forger import RawEvents

    raw = RawEvents(sqlite_url)
    try:
        raw.run("DELETE FROM tracking")
    finally:
        raw.close()
    more(ledger, 2)
    assert relay(sqlite_url, server)[0] == 0
    ids = [m.headers[MSG_ID] for m in read_stream(server.url)]
    assert ids == [e.event_id for e in store_envelopes(ledger)]
