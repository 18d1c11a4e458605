"""Schema versions: a version bump upcasts stored facts on read, keeps
their hash chain, records new facts at the new version, and the published JSON Schema
accepts every version's envelopes as recorded.

The bump is simulated as a real one would be made: MilestoneReached gets schema
version 2 with a new field, its v1 model stays registered, and an upcaster v1 -> v2
fills the new field.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any, ClassVar

import jsonschema  # type: ignore[import-untyped]
from pydantic import ConfigDict

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.envelope import Envelope
from homeledger.adapters.schema import all_schemas, event_schema
from homeledger.domain import events as e
from homeledger.domain.commands import RecordMilestone
from tests.helpers import MakeApp
from tests.nats_helpers import cli_env, invoke


class MilestoneReachedV2(e.MilestoneReached):
    """Version 2: who verified the evidence (stored v1 facts read as 'unrecorded')."""

    model_config = ConfigDict(frozen=True, extra="forbid",
                              json_schema_serialization_defaults_required=True)  # fmt: skip
    SCHEMA_VERSION: ClassVar[int] = 2
    verified_by: str = "unrecorded"


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "verified_by": "unrecorded"}


def test_today_every_type_has_one_version_and_its_schema_is_unchanged() -> None:
    for name in e.EVENTS.types():
        cls = e.EVENTS.current(name)
        assert e.EVENTS.versions(name) == {1: cls}
        assert event_schema(cls)["properties"]["schema_version"] == {
            "const": 1, "title": "Schema Version"}  # fmt: skip
        assert "oneOf" not in event_schema(cls)


def test_a_version_bump_upcasts_stored_facts_and_the_schema_accepts_both_versions(
    make_app: MakeApp, ledger: LedgerApplication, sqlite_url: str,
) -> None:  # fmt: skip
    # The story, recorded at version 1.
    stored_v1 = [env for env in ledger.store.envelopes() if env.type == "MilestoneReached"]
    assert [env.schema_version for env in stored_v1] == [1]
    with e.EVENTS.bumped(MilestoneReachedV2, _v1_to_v2):
        _after_the_bump(make_app, sqlite_url, stored_v1)


def _after_the_bump(make_app: MakeApp, sqlite_url: str,
                    stored_v1: list[Envelope]) -> None:  # fmt: skip
    app = make_app(sqlite_url)  # the code after the bump
    [old] = [env for env in app.store.envelopes() if env.type == "MilestoneReached"]
    assert old.schema_version == 1 and "verified_by" not in old.data  # as recorded
    assert isinstance(old.fact, MilestoneReachedV2) and old.fact.verified_by == "unrecorded"
    assert old.hash == stored_v1[0].hash
    assert app.refreshed_state().ledger is not None  # the state loads through the upcaster

    [new] = app.execute(
        RecordMilestone(
            initiative="gw-bissau-village", name="crisis shelter opened", on=date(2022, 9, 1)
        )
    )
    assert new.schema_version == 2 and new.data["verified_by"] == "unrecorded"

    env = cli_env(sqlite_url, "nats://127.0.0.1:1")
    verified = invoke(["verify"], env)
    assert verified.exit_code == 0, verified.output  # hash chain and projections intact
    trail = invoke(["--format", "json", "audit", "gw-bissau-village"], env)
    assert trail.exit_code == 0, trail.output
    assert trail.stdout.count("MilestoneReached") == 2

    schema = all_schemas()["MilestoneReached"]
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(old.to_dict())
    validator.validate(new.to_dict())
    claiming_v2 = copy.deepcopy(old.to_dict())
    claiming_v2["schema_version"] = 2
    assert not validator.is_valid(claiming_v2)
    unknown = copy.deepcopy(new.to_dict())
    unknown["schema_version"] = 3
    assert not validator.is_valid(unknown)
