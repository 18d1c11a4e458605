"""No secret in any output, with or without `--debug`, malformed values included.

Hypothesis puts a secret where an operator puts one (a store or NATS URL's password or
token, the NATS password and token options, the cipher key, the seal key), in URLs
that are well formed, half formed (no scheme, a bad port, an unclosed IPv6 bracket,
an '@' or a ',' inside the password, a space) or pointing nowhere, and runs a command
that reads them (recording ones included: they read the cipher and seal keys). Neither
stdout nor stderr, traceback included, may hold the secret or a recognisable part of it
(its first or last eight characters).
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeledger.cli.main import cli

# Framed by rare letters, so that its first or last eight characters are never a word
# or a hash that the output holds anyway ("RELEASED", "00000000").
secrets = st.text(alphabet=string.ascii_letters + string.digits, min_size=14, max_size=26).map(
    lambda text: f"Zq{text}Qx"
)
NATS_URLS = [
    "nats://relayu:{s}@127.0.0.1:99999", "relayu:{s}@127.0.0.1:99999", "nats://{s}@[::1",
    "nats://relayu:{s}@", "tls://relayu:{s}@127.0.0.1:-1", "ftp://relayu:{s}@127.0.0.1:1",
    "nats://relayu:{s}@127.0.0.1:abc", "nats://relayu:{s} x@127.0.0.1:1",
    "nats://relayu:a,{s}@127.0.0.1:1", "nats://relayu:{s}@127.0.0.1:1,nats://x:{s}@[bad",
    "nats://relayu:p@{s}@127.0.0.1:99999", "{s}@127.0.0.1:1", "nats://{s}@127.0.0.1:1",
    "nats://relayu:{s}@127.0.0.1:1/path?x=1",
]  # fmt: skip
STORE_URLS = [
    "postgresql://ops:{s}@[::1/db", "postgresql://ops:{s}@127.0.0.1:99999/db",
    "postgresql://ops:{s}@127.0.0.1:1/db?connect_timeout=x", "ops:{s}@127.0.0.1/db",
    "mysql://ops:{s}@127.0.0.1/db", "postgresql://ops:p@{s}/x@127.0.0.1:1/db",
    "postgres://ops:{s}@/db", "postgresql://ops:{s}@127.0.0.1:5432/",
    "postgresql://ops:a,{s}@127.0.0.1:1/db?connect_timeout=1",
    "postgresql://ops:{s}@127.0.0.1:1/db?connect_timeout=1", "postgresql://{s}@127.0.0.1:1/db",
    "postgresql://ops:{s}@127.0.0.1:port/db", "postgresql://ops:{s} @127.0.0.1:1/db",
]  # fmt: skip
PROBES = [["events", "stats"], ["relay", "--once", "--max-outage", "1"], ["balances"],
          ["verify", "--against-nats"], ["pledge", "--year", "2021"], ["seal"]]  # fmt: skip


def leaked(secret: str, text: str) -> bool:
    """The secret, or its start or end, in any case (a host name is shown lowercased)."""
    text = text.lower()
    return any(part.lower() in text for part in (secret, secret[:8], secret[-8:]))


def run(args: list[str], env: dict[str, str], folder: Path) -> str:
    result = CliRunner().invoke(cli, args, env={"HOMELEDGER_STORE": f"sqlite:///{folder}/x.db",
                                                 **env})  # fmt: skip
    assert result.exit_code != 5, result.output[-2000:]
    return result.stdout + result.stderr


SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@SETTINGS
@given(secret=secrets, template=st.sampled_from(NATS_URLS), probe=st.sampled_from(PROBES),
       debug=st.booleans(), by_env=st.booleans())  # fmt: skip
def test_a_secret_in_a_nats_url_never_shows(
    tmp_path: Path, secret: str, template: str, probe: list[str], debug: bool, by_env: bool
) -> None:
    url = template.format(s=secret)
    flags = ["--debug"] if debug else []
    env = {"HOMELEDGER_NATS_URL": url} if by_env else {}
    args = [*flags, *([] if by_env else ["--nats", url]), *probe]
    assert not leaked(secret, run(args, env, tmp_path))


@SETTINGS
@given(secret=secrets, template=st.sampled_from(STORE_URLS), probe=st.sampled_from(PROBES),
       debug=st.booleans(), by_env=st.booleans())  # fmt: skip
def test_a_secret_in_a_store_url_never_shows(
    tmp_path: Path, secret: str, template: str, probe: list[str], debug: bool, by_env: bool
) -> None:
    url = template.format(s=secret)
    flags = ["--debug"] if debug else []
    env = {"HOMELEDGER_STORE": url} if by_env else {}
    args = [*flags, *([] if by_env else ["--store", url]), "--nats", "nats://127.0.0.1:1",
            *probe]  # fmt: skip
    assert not leaked(secret, run(args, env, tmp_path))


SECRET_VARIABLES = ["HOMELEDGER_NATS_PASSWORD", "HOMELEDGER_NATS_TOKEN", "HOMELEDGER_CIPHER_KEY",
                    "HOMELEDGER_SEAL_KEY"]


@pytest.mark.parametrize("variable", SECRET_VARIABLES)
@SETTINGS
@given(secret=secrets, shape=st.sampled_from(["{s}", " {s} ", "{s}\n", "{s}==", "a,{s}"]),
       probe=st.sampled_from(PROBES), debug=st.booleans())  # fmt: skip
def test_a_secret_variable_never_shows(
    tmp_path: Path, variable: str, secret: str, shape: str, probe: list[str], debug: bool
) -> None:
    env = {variable: shape.format(s=secret)}
    if variable == "HOMELEDGER_NATS_PASSWORD":
        env["HOMELEDGER_NATS_USER"] = "relayu"
    args = [*(["--debug"] if debug else []), "--nats", "nats://127.0.0.1:1", *probe]
    assert not leaked(secret, run(args, env, tmp_path))
