"""Settings from flags and environment: a bad value is exit 2 in one line, names the
flag, never shows a password, and writes nothing, whatever the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import one_line
from tests.nats_helpers import cli_env, invoke


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--stream", "bad.name", "--stream: stream name"),
        ("--stream", "", "--stream: stream name"),
        ("--stream", "a b", "--stream: stream name"),
        ("--stream", "a/b", "--stream: stream name"),
        ("--nats", "foo bar", "--nats: NATS URL"),
        ("--nats", "http://topsecret@127.0.0.1:4222", "--nats: NATS URL 'http://***@"),
        ("--nats", "nats://:4222", "--nats: NATS URL"),
        ("--store", "postgresql://u:topsecret@[::1/x", "store URL"),
        ("--store", "postgresql://u:topsecret@127.0.0.1/x?connect_timeout=bad",
         "connect_timeout"),
        ("--actor", "evil\nactor", "--actor: actor must not contain control characters"),
        ("--actor", "a" * 5000, "--actor: actor is 5000 characters long; at most 200"),
        ("--actor", "   ", "--actor: actor must not be blank"),
    ],
)  # fmt: skip
def test_bad_settings_are_exit_2_in_one_line_and_write_nothing(
    option: str, value: str, expected: str, sqlite_url: str
) -> None:
    for args in (["pledge", "--year", "2021"], ["relay", "--once"],
                 ["verify", "--against-nats"], ["events", "stats"]):  # fmt: skip
        result = invoke([option, value, *args],
                        cli_env(sqlite_url, "nats://127.0.0.1:1"))  # fmt: skip
        assert result.exit_code == 2, (args, result.output)
        line = one_line(result.stderr)
        assert line.startswith("homeledger: invalid input:") and expected in line, line
        assert "topsecret" not in result.output
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()
