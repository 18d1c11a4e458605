"""HOMELEDGER_SUBJECT_PREFIX: several ledgers on one NATS deployment, each under its own
first subject token and in its own stream, none seeing another's facts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeledger.adapters.application import LedgerApplication
from homeledger.adapters.errors import ConfigError
from homeledger.adapters.nats_messages import stream_subjects, subject_for
from homeledger.adapters.nats_server import NatsServer
from homeledger.adapters.settings import SUBJECT_TOKEN, Settings
from tests.helpers import one_line
from tests.nats_helpers import (
    assert_exactly_once_in_order,
    cli_env,
    invoke,
    read_stream,
    record_bulk,
    record_story,
    store_envelopes,
)

pytestmark = pytest.mark.nats

VARIABLE = "HOMELEDGER_SUBJECT_PREFIX"


# The setting.


@pytest.mark.parametrize(
    "prefix",
    ["a.b", "ledger.>", "*", ">", "$SYS", "$JS", "two words", "tab\there", "ünicode",
     "x" * 65, "semi;colon", "quote\"d", "\udcff"],
    ids=["dot", "wildcard-tail", "star", "gt", "system", "jetstream", "space", "tab",
         "non-ascii", "too-long", "semicolon", "quote", "lone-surrogate"],
)  # fmt: skip
def test_a_prefix_that_is_not_one_plain_token_is_refused_with_exit_2(
    prefix: str, tmp_path: Path
) -> None:
    store = tmp_path / "never.db"
    result = invoke(["stream", "info"], cli_env(f"sqlite:///{store}", "nats://127.0.0.1:1",
                                                **{VARIABLE: prefix}))  # fmt: skip
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    why = "not valid UTF-8" if prefix == "\udcff" else "one NATS subject token"
    assert VARIABLE in line and why in line  # (no variable is read if it is not UTF-8)
    assert not store.exists()


@given(st.text(max_size=80))
def test_a_prefix_is_accepted_exactly_when_it_is_one_plain_token(text: str) -> None:
    try:
        prefix = Settings.load(environ={VARIABLE: text}).subject_prefix
    except ConfigError as refused:
        assert str(refused).startswith(f"{VARIABLE}: ")
        assert not SUBJECT_TOKEN.fullmatch(text.strip())
        return
    if not text.strip():
        assert prefix == "homeledger"  # unset: the default
        return
    assert prefix == text.strip() and SUBJECT_TOKEN.fullmatch(prefix)
    subject = subject_for("FundsAllocated", "gw-bissau-village", prefix)
    assert subject.split(".") == [prefix, "events", "FundsAllocated", "gw-bissau-village"]
    assert stream_subjects(prefix) == f"{prefix}.events.>"


# Two ledgers on one server.


@pytest.fixture
def two_ledgers(make_app: Callable[..., LedgerApplication],
                tmp_path: Path) -> tuple[LedgerApplication, LedgerApplication]:  # fmt: skip
    first = make_app(f"sqlite:///{tmp_path / 'a.db'}")
    record_story(first)
    second = make_app(f"sqlite:///{tmp_path / 'b.db'}")
    record_story(second)
    record_bulk(second, 40)  # so that the two differ in size and figures
    return first, second


def ledger_env(app: LedgerApplication, server: NatsServer, stream: str,
               prefix: str) -> dict[str, str]:  # fmt: skip
    url = f"sqlite:///{app.store.location.path}"
    return cli_env(url, server.url, HOMELEDGER_STREAM=stream, **{VARIABLE: prefix})


def test_two_ledgers_relay_to_one_server_and_each_consumer_sees_only_its_own(
    two_ledgers: tuple[LedgerApplication, LedgerApplication], server: NatsServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    ledgers = {"ledger-a": ("LEDGER_A", two_ledgers[0]), "ledger-b": ("LEDGER_B", two_ledgers[1])}
    envs = {prefix: ledger_env(app, server, stream, prefix)
            for prefix, (stream, app) in ledgers.items()}  # fmt: skip
    for env in envs.values():
        relayed = invoke(["relay", "--once"], env)
        assert relayed.exit_code == 0, relayed.output
    for prefix, (stream, app) in ledgers.items():
        env, envelopes = envs[prefix], store_envelopes(app)
        messages = read_stream(server.url, stream, prefix=prefix)
        assert_exactly_once_in_order(messages, envelopes)
        assert {m.subject.split(".")[0] for m in messages} == {prefix}
        info = json.loads(invoke(["--format", "json", "stream", "info"], env).stdout)
        assert info["subjects"] == [f"{prefix}.events.>"]
        assert info["messages"] == info["last_position"] == len(envelopes)
        seen = invoke(["--format", "jsonl", "subscribe", "--idle", "0.5"], env)
        ids = [json.loads(line)["event_id"] for line in seen.stdout.splitlines()]
        assert ids == [e.event_id for e in envelopes]
        one = invoke(["--format", "jsonl", "subscribe", "--idle", "0.5",
                      "--subject", f"{prefix}.events.*.gw-bissau-village"], env)  # fmt: skip
        assert [json.loads(line)["scope"] for line in one.stdout.splitlines()] == \
            [e.scope for e in envelopes if e.scope == "gw-bissau-village"]  # fmt: skip
        consumer = f"sqlite:///{tmp_path / f'{prefix}-consumer.db'}"
        projected = invoke(["--store", consumer, "--format", "json", "project", "--from-nats",
                            "--durable", "views", "--once"], env)  # fmt: skip
        assert json.loads(projected.stdout)["events"] == len(envelopes), projected.output
        assert invoke(["verify", "--against-nats"], env).exit_code == 0
    other = invoke(["subscribe", "--idle", "0.5", "--subject", "ledger-b.events.>"],
                   envs["ledger-a"])  # fmt: skip
    assert other.exit_code == 2
    assert "outside the stream" in one_line(other.stderr)


def test_a_second_ledger_under_the_same_prefix_is_refused_by_the_server(
    two_ledgers: tuple[LedgerApplication, LedgerApplication], server: NatsServer,
) -> None:  # fmt: skip
    first, second = two_ledgers
    assert invoke(["relay", "--once"], ledger_env(first, server, "LEDGER_A", "shared")
                  ).exit_code == 0  # fmt: skip
    clash = invoke(["relay", "--once"], ledger_env(second, server, "LEDGER_B", "shared"))
    assert clash.exit_code == 2
    assert "cannot create stream LEDGER_B" in one_line(clash.stderr)
    assert len(read_stream(server.url, "LEDGER_A", prefix="shared")) == \
        len(store_envelopes(first))  # fmt: skip


def test_a_stream_of_another_prefix_is_never_re_pointed_or_read(
    two_ledgers: tuple[LedgerApplication, LedgerApplication], server: NatsServer,
) -> None:  # fmt: skip
    first, second = two_ledgers
    owner = ledger_env(first, server, "LEDGER_A", "ledger-a")
    assert invoke(["relay", "--once"], owner).exit_code == 0
    before = json.loads(invoke(["--format", "json", "stream", "info"], owner).stdout)
    for args, env in (
        (["relay", "--once"], ledger_env(second, server, "LEDGER_A", "ledger-b")),
        (["subscribe", "--idle", "0.5"], ledger_env(first, server, "LEDGER_A", "ledger-b")),
        (["verify", "--against-nats"], ledger_env(first, server, "LEDGER_A", "ledger-b")),
    ):
        result = invoke(args, env)
        assert result.exit_code == 2, (args, result.output)
        assert "carries ledger-a.events.>, not ledger-b.events.>" in one_line(result.stderr)
    after = json.loads(invoke(["--format", "json", "stream", "info"], owner).stdout)
    assert after == before
