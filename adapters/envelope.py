"""The recorded fact as the world sees it: its envelope (docs/reference.md).

What is stored is the fact's body, the envelope without `position` and `scope` (both
derived: the store assigns the position, the type and data give the scope), as
canonical JSON; its hash chain is `hash_chain`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import orjson

from homeledger.adapters.hash_chain import ENVELOPE_FIELDS, LEDGER_ID, compact_json, hashed
from homeledger.domain.events import DomainEvent, event_data, event_from_data
from homeledger.domain.ledger import Stamp
from homeledger.domain.values import escape_unencodable

_LEDGER_ID = str(LEDGER_ID)


# orjson parses about three times as fast as the standard library and agrees with it on
# every document it accepts but one kind: an integer too large for 64 bits, which it
# turns into a float. No fact holds a float (amounts are fixed-point strings), so a
# document that decodes to one, and any document orjson refuses (a lone surrogate
# escaped in a string, NaN, a number out of range, bytes that are not UTF-8), is parsed
# by the standard library instead: what a stored or published fact decodes to, or why
# it cannot be decoded, is the same either way.
_orjson_loads = orjson.loads
_JSONError = orjson.JSONDecodeError


def decode_json(data: bytes | str) -> Any:
    """JSON text (UTF-8 bytes, or str) as Python values, exactly as `json.loads` reads it."""
    try:
        value = _orjson_loads(data)
    except _JSONError:
        return json.loads(data if isinstance(data, str) else bytes(data).decode())
    if _holds_float(value):
        return json.loads(data if isinstance(data, str) else bytes(data).decode())
    return value


def _holds_float(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        for item in value.values():
            if type(item) is not str and type(item) is not int and _holds_float(item):
                return True
        return False
    if kind is list:
        return any(_holds_float(item) for item in value)
    return kind is float


def format_time(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds and a Z, the one time format on every wire."""
    utc = moment.astimezone(UTC)
    if utc.year < 1000:  # isoformat pads the year to four digits, strftime does not
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"  # strftime is slower


_last_time: tuple[datetime, str] | None = None


def _recorded_text(moment: datetime) -> str:
    """`format_time(moment)`, kept for the next fact: a batch or an import records all
    its facts at one moment (equal aware moments are one instant: one UTC text)."""
    global _last_time
    last = _last_time
    if last is not None and moment.tzinfo is not None and last[0] == moment:
        return last[1]
    text = format_time(moment)
    _last_time = (moment, text)
    return text


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class Envelope:
    """One recorded fact with its metadata, its place in the ledger and its hash."""

    event_id: str
    type: str
    schema_version: int
    position: int
    aggregate_id: str
    aggregate_version: int
    effective_date: date
    recorded_at: datetime
    actor: str
    command_id: str
    correlation_id: str
    data: dict[str, Any]
    prev_hash: str
    hash: str
    fact: DomainEvent = field(compare=False, repr=False)
    # The stored body, kept only when its text had to be escaped to be shown (a lone
    # surrogate recorded before such text was refused): the envelope's own fields are
    # then printable, and its published form stays the recorded one, hash and all.
    recorded: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def scope(self) -> str:
        return self.fact.scope()

    def body(self) -> dict[str, Any]:
        """The stored (and hashed) form: the envelope without its position and scope."""
        body = self.to_dict()
        del body["position"], body["scope"]
        return body

    def to_dict(self) -> dict[str, Any]:
        """The published JSON envelope, fields in the published order (ENVELOPE_FIELDS)."""
        if self.recorded is not None:
            return {**self._to_dict(), **{k: self.recorded[k] for k in _TEXT_FIELDS}}
        return self._to_dict()

    def _to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "schema_version": self.schema_version,
            "position": self.position,
            "scope": self.scope,
            "aggregate_id": self.aggregate_id,
            "aggregate_version": self.aggregate_version,
            "effective_date": self.effective_date.isoformat(),
            "recorded_at": format_time(self.recorded_at),
            "actor": self.actor,
            "command_id": self.command_id,
            "correlation_id": self.correlation_id,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    def to_json(self) -> bytes:
        return compact_json(self.to_dict())

    def stamp(self) -> Stamp:
        """What the ledger's rules are told about this fact besides its data."""
        return Stamp(self.effective_date, self.recorded_at.astimezone(UTC).date(),
                     self.event_id, self.position)  # fmt: skip


def new_body(fact: DomainEvent, **fields: Any) -> dict[str, Any]:
    """The stored body of a new fact, hash included (see `new_fact`)."""
    return new_fact(fact, **fields)[0]


def new_fact(
    fact: DomainEvent,
    *,
    event_id: UUID | str,
    version: int,
    recorded_at: datetime,
    actor: str,
    command_id: str,
    correlation_id: str,
    prev_hash: str,
    effective_date: date | None = None,
) -> tuple[dict[str, Any], bytes]:
    """The stored body of a new fact, hash included, and its canonical JSON (what the
    store keeps). Its effective date is the fact's own date, else `effective_date`,
    else the day it is recorded (UTC)."""
    default = recorded_at.astimezone(UTC).date() if effective_date is None else effective_date
    body: dict[str, Any] = {
        "event_id": str(event_id),
        "type": fact.TYPE,
        "schema_version": fact.SCHEMA_VERSION,
        "aggregate_id": _LEDGER_ID,
        "aggregate_version": version,
        "effective_date": fact.business_date(default).isoformat(),
        "recorded_at": _recorded_text(recorded_at),
        "actor": actor,
        "command_id": command_id,
        "correlation_id": correlation_id,
        "data": event_data(fact),
        "prev_hash": prev_hash,
    }
    body["hash"], canonical = hashed(body)
    return body, canonical


_FIELD_ORDER: dict[type[DomainEvent], tuple[str, ...]] = {}


def _field_order(cls: type[DomainEvent]) -> tuple[str, ...]:
    order = _FIELD_ORDER.get(cls)
    if order is None:
        order = _FIELD_ORDER[cls] = tuple(cls.model_fields)
    return order


def envelope_from_body(
    body: dict[str, Any], position: int, fact: DomainEvent | None = None
) -> Envelope:
    """Rebuild an envelope from its stored body; the fact is upcast to the current schema.

    `fact`, when given, is the fact this body holds (already validated: the one just
    decided, or one read back by the store), so it is not validated again.
    """
    if fact is None:
        fact = event_from_data(body["type"], body["schema_version"], body["data"])
    data = body["data"]
    if body["schema_version"] == fact.SCHEMA_VERSION:  # the model's field order, as recorded
        data = {**{k: data[k] for k in _field_order(type(fact)) if k in data}, **data}
    recorded = None
    actor, command_id, correlation_id = (body[name] for name in _TEXT_FIELDS)
    if not (_ascii(actor) and _ascii(command_id) and _ascii(correlation_id)):
        shown = [_shown(body, name) for name in _TEXT_FIELDS]
        if shown != [actor, command_id, correlation_id]:
            recorded, (actor, command_id, correlation_id) = body, shown
    # The same frozen Envelope its __init__ would build (it has no __post_init__), filled
    # in one step: a frozen dataclass's __init__ sets each of its 15 fields through
    # object.__setattr__, a quarter of the cost of reading a fact back.
    envelope = _new_object(Envelope)
    envelope.__dict__.update(
        event_id=body["event_id"],
        type=body["type"],
        schema_version=body["schema_version"],
        position=position,
        aggregate_id=body["aggregate_id"],
        aggregate_version=body["aggregate_version"],
        effective_date=date.fromisoformat(body["effective_date"]),
        recorded_at=parse_time(body["recorded_at"]),
        actor=actor,
        command_id=command_id,
        correlation_id=correlation_id,
        data=data,
        prev_hash=body["prev_hash"],
        hash=body["hash"],
        fact=fact,
        recorded=recorded,
    )
    return envelope


_TEXT_FIELDS = ("actor", "command_id", "correlation_id")


def _ascii(value: Any) -> bool:
    return type(value) is str and value.isascii()


def _shown(body: dict[str, Any], name: str) -> str:
    value = body[name]
    if not isinstance(value, str):
        raise ValueError(f"the fact's {name} is not text")
    return escape_unencodable(value)


_new_object = object.__new__


__all__ = ["ENVELOPE_FIELDS", "Envelope", "decode_json", "envelope_from_body", "format_time",
           "new_body", "new_fact", "parse_time"]
