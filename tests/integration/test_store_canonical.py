"""One canonical form: the fast encoder writes exactly the standard library's bytes.

The canonical JSON of a fact is what its hash covers and what the store keeps, so a
faster encoder may only be a faster way to the same bytes: for every value, every fact
of the committed store recorded by older code, and every fact recorded now.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from homeledger.adapters.hash_chain import HASHED_FIELDS, canonical_json, chain_hash, compact_json
from homeledger.adapters.idempotency import plain_fingerprint
from homeledger.domain import commands as c
from tests import strategies as s

STDLIB = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
COMPACT = json.JSONEncoder(separators=(",", ":"))  # how envelopes are published and listed
MAIN_STORE = Path(__file__).parent.parent / "data" / "main-store.db"


def stdlib(value: Any) -> bytes:
    return STDLIB.encode(value).encode()


def stdlib_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(stdlib({k: body[k] for k in HASHED_FIELDS})).hexdigest()


# Text that orjson and the standard library write differently, or not at all.
awkward_text = st.text(
    st.one_of(
        st.characters(),  # any code point, lone surrogates included
        st.sampled_from(["\x7f", "\x00", "\x1f", "\u2028", "é", "€", "\U0001f600", '"', "\\"]),
    )
)
scalars = st.one_of(
    st.none(), st.booleans(), awkward_text,
    st.integers(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e16, 1e-7, 0.1, -0.0]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(awkward_text, inner, max_size=4)
    ),
    max_leaves=12,
)


@given(value=values)
def test_canonical_json_is_the_standard_librarys_form_for_any_value(value: Any) -> None:
    assert canonical_json(value) == stdlib(value)


@given(body=s.bodies())
def test_every_kind_of_fact_encodes_and_hashes_as_before(body: dict[str, Any]) -> None:
    assert canonical_json(body) == stdlib(body)
    assert chain_hash(body) == stdlib_hash(body) == body["hash"]


@given(value=values)
def test_compact_json_is_the_standard_librarys_compact_form_in_the_given_order(value: Any) -> None:
    assert compact_json(value) == COMPACT.encode(value).encode()


def test_the_values_that_take_the_slow_way_give_the_same_bytes() -> None:
    for value in ({"a": "\x7f"}, {"a": "é"}, {"a": "\ud800"}, {"a": 2**64}, {"a": 1e16},
                  {"a": (1, 2)}, {1: "x"}, {"b": 1, "a": [True, None, "\u2028"]}):  # fmt: skip
        assert canonical_json(value) == stdlib(value), value
        assert compact_json(value) == COMPACT.encode(value).encode(), value


def test_every_fact_of_the_committed_store_keeps_its_bytes_and_hash() -> None:
    """The committed store was written by older code with the standard library alone."""
    with sqlite3.connect(f"file:{MAIN_STORE}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT state FROM stored_events ORDER BY rowid").fetchall()
    assert len(rows) == 20
    for (state,) in rows:
        body = json.loads(state)
        assert canonical_json(body) == state
        assert chain_hash(body) == body["hash"]


def test_a_freshly_recorded_ledger_stores_the_standard_librarys_bytes(tmp_path: Path) -> None:
    from tests.helpers import open_app
    from tests.nats_helpers import record_story

    app = open_app(f"sqlite:///{tmp_path / 'ledger.db'}", "opérateur ✓", None)
    try:
        record_story(app)
        app.execute(c.RegisterInitiative(id="naive-init", name="Zürich €",
                                         country="SE", programme="ünïcode"))  # fmt: skip
    finally:
        app.store.close()
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute("SELECT state FROM stored_events ORDER BY rowid").fetchall()
        receipts = dict(db.execute("SELECT command_id, fingerprint FROM homeledger_commands"))
    assert len(rows) > 10 and receipts
    previous = "0" * 64
    for (state,) in rows:
        body = json.loads(state)
        assert stdlib(body) == state
        assert stdlib_hash(body) == body["hash"]
        assert body["prev_hash"] == previous
        previous = body["hash"]


@given(command=st.sampled_from([
    c.PledgeDonation(year=2021),
    c.AllocateFunds(initiative="a-b", year=2021, amount="10.00", command_id="x"),
    c.RegisterInitiative(id="z", name="Zürich €", country="SE", programme="p"),
]))  # fmt: skip
def test_fingerprints_are_the_domains_own(command: c.Command) -> None:
    assert plain_fingerprint(command) == command.fingerprint()


@given(body=s.bodies())
def test_a_new_facts_stored_form_is_its_canonical_json_with_its_hash(
    body: dict[str, Any],
) -> None:
    from homeledger.adapters.hash_chain import hashed

    unhashed = {k: v for k, v in body.items() if k != "hash"}
    digest, stored = hashed(unhashed)
    assert digest == body["hash"]
    assert stored == stdlib(body) == canonical_json(body)
