"""JSON Schemas of the published envelopes, generated from the event models.

What `homeledger schema` prints and what consumers validate payloads against.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from homeledger.domain.events import EVENTS, DomainEvent
from homeledger.domain.money import AMOUNT_PATTERN

_HASH = r"^[0-9a-f]{64}$"
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


class EnvelopeMeta(BaseModel):
    """The metadata every published event carries (docs/reference.md)."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern=_UUID, description="Event id (UUID); also Nats-Msg-Id.")
    type: str = Field(description="Event type.")
    schema_version: int = Field(ge=1, description="Schema version of `data`.")
    position: int = Field(ge=1, description="Global position in the store.")
    scope: str = Field(description="Last subject token: initiative, year, country or partnership.")
    aggregate_id: str = Field(pattern=_UUID)
    aggregate_version: int = Field(ge=1)
    effective_date: str = Field(pattern=_DATE, description="Business date.")
    recorded_at: str = Field(pattern=_TIME, description="System time of recording, UTC.")
    actor: str
    command_id: str
    correlation_id: str
    data: dict[str, Any]
    prev_hash: str = Field(pattern=_HASH, description="Hash of the previous fact.")
    hash: str = Field(pattern=_HASH, description="SHA-256 over this fact and prev_hash.")


def event_schema(cls: type[DomainEvent]) -> dict[str, Any]:
    """The envelope schema for one event type, its `data` being that type's model.

    Stored facts are published as recorded (the hash covers them), so the schema accepts
    every schema version the type ever had: one `oneOf` branch per older version, each
    pairing its `schema_version` with that version's `data` model.
    """
    schema = EnvelopeMeta.model_json_schema()
    schema["title"] = cls.TYPE
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:homeledger:event:{cls.TYPE}:v{cls.SCHEMA_VERSION}"
    properties = schema["properties"]
    properties["type"] = {"const": cls.TYPE, "title": "Type"}
    defs: dict[str, Any] = {}
    branches = []
    for version, model in EVENTS.versions(cls.TYPE).items():
        prefix = "" if version == cls.SCHEMA_VERSION else f"v{version}."
        data = model.model_json_schema(mode="serialization",
                                       ref_template=f"#/$defs/{prefix}{{model}}")  # fmt: skip
        defs.update({prefix + name: value for name, value in data.pop("$defs", {}).items()})
        # Fields may be added, never renamed or removed: consumers must accept new ones.
        data.pop("additionalProperties", None)
        branches.append({"properties": {
            "schema_version": {"const": version, "title": "Schema Version"}, "data": data,
        }})  # fmt: skip
    if defs:
        schema["$defs"] = defs
    schema.pop("additionalProperties", None)
    if len(branches) == 1:
        properties.update(branches[0]["properties"])
    else:
        properties["schema_version"] = {"enum": [b["properties"]["schema_version"]["const"]
                                                 for b in branches], "title": "Schema Version"}
        properties["data"] = {"type": "object"}
        schema["oneOf"] = branches
    schema["required"] = sorted(EnvelopeMeta.model_fields)
    return schema


def all_schemas() -> dict[str, dict[str, Any]]:
    return {name: event_schema(EVENTS.current(name)) for name in EVENTS.types()}


__all__ = ["AMOUNT_PATTERN", "all_schemas", "event_schema"]
