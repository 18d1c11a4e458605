"""The message each recorded fact becomes on JetStream (docs/nats.md).

Subject `<prefix>.events.<EventType>.<scope>`, where the prefix is the settings'
`subject_prefix` (`homeledger` by default: several ledgers share one NATS deployment,
each under its own prefix and in its own stream) and the scope is the initiative id
for initiative facts, the year for pledge and receipt facts, the country code for unit
facts and `partnership` for the rest; the contract headers; and the envelope's JSON as
payload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from homeledger.adapters.envelope import Envelope
from homeledger.adapters.settings import DEFAULT_SUBJECT_PREFIX

MSG_ID = "Nats-Msg-Id"
EVENT_TYPE = "Homeledger-Event-Type"
POSITION = "Homeledger-Position"
SCHEMA_VERSION = "Homeledger-Schema-Version"
CONTENT_TYPE = "Content-Type"
JSON = "application/json"
# JetStream control header: the message is stored only if the stream's last sequence
# is this one, so a message that was buffered across a reconnect can never land after
# a later one (the relay keeps store order even when publishes are lost mid-window).
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"

_NOT_IN_TOKEN = re.compile(r"[.*> \t\r\n]")


def subject_root(prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """What every subject of a ledger starts with: `<prefix>.events`."""
    return f"{prefix}.events"


def stream_subjects(prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """The subjects of a ledger's stream (and the filter for all of it)."""
    return f"{subject_root(prefix)}.>"


def subject_for(event_type: str, scope: str, prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    for token in (prefix, event_type, scope):
        if not token or _NOT_IN_TOKEN.search(token):
            raise ValueError(f"{token!r} is not a valid NATS subject token")
    return f"{subject_root(prefix)}.{event_type}.{scope}"


def headers_for(envelope: Envelope) -> dict[str, str]:
    return {
        MSG_ID: envelope.event_id,
        EVENT_TYPE: envelope.type,
        POSITION: str(envelope.position),
        SCHEMA_VERSION: str(envelope.schema_version),
        CONTENT_TYPE: JSON,
    }


@dataclass(frozen=True)
class EventMessage:
    subject: str
    payload: bytes
    headers: dict[str, str]


def message_for(envelope: Envelope, prefix: str = DEFAULT_SUBJECT_PREFIX) -> EventMessage:
    """The message published for one recorded event, under the subject prefix given."""
    return EventMessage(
        subject_for(envelope.type, envelope.scope, prefix), payload_of(envelope),
        headers_for(envelope),
    )


def payload_of(envelope: Envelope) -> bytes:
    """The message's payload: the envelope's compact JSON (`Envelope.to_json`)."""
    return envelope.to_json()
