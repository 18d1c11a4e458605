"""The message each recorded fact becomes on JetStream (docs/nats.md).

Subject `homeledger.events.<EventType>.<scope>`, where the scope is the initiative id
for initiative facts, the year for pledge and receipt facts, the country code for unit
facts and `partnership` for the rest; the contract headers; and the envelope's JSON as
payload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from homeledger.adapters.envelope import Envelope

SUBJECT_PREFIX = "homeledger.events"
STREAM_SUBJECTS = f"{SUBJECT_PREFIX}.>"

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


def subject_for(event_type: str, scope: str) -> str:
    for token in (event_type, scope):
        if not token or _NOT_IN_TOKEN.search(token):
            raise ValueError(f"{token!r} is not a valid NATS subject token")
    return f"{SUBJECT_PREFIX}.{event_type}.{scope}"


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


def message_for(envelope: Envelope) -> EventMessage:
    """The message published for one recorded event."""
    return EventMessage(
        subject_for(envelope.type, envelope.scope), envelope.to_json(), headers_for(envelope)
    )
