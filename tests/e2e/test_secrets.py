"""Secrets: the database password, NATS credentials and the cipher key never show.

One ledger on PostgreSQL reached through a URL with a password (trust authentication
accepts any password, so a distinctive one is enough), encrypted with a cipher key,
relayed to nats-servers that need a user and password, or a token. The real
`homeledger` command (a process of its own, so that anything printed or logged by
any library reaches the captured output) runs a spread of commands, succeeding and
failing, most with `--debug` (tracebacks on errors). Every stdout and stderr, every
exported file and the folder they were written to are searched for every secret
value: none may appear. The same run shows that `verify` works on the encrypted
store with the key and fails clearly (exit 4, one line) without it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eventsourcing.cryptography import AESCipher

from homeledger.adapters.nats_server import Auth, free_port
from tests.helpers import PG_HOST, PG_PORT, PG_USER, init_line
from tests.nats_helpers import cli_env, run_cli, running_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.nats]

IMPORT = [
    init_line(),
    {"command": "units.acquire", "country": "SE", "units": 41800, "on": "2021-07-01"},
    {"command": "pledge", "year": 2021},
    {"command": "receive", "year": 2021, "amount": "1000000.00", "on": "2021-12-15"},
    {"command": "initiative.register", "id": "gw-bissau-village", "name": "Bissau hub",
     "country": "GW", "programme": "family-like care"},
    {"command": "allocate", "initiative": "gw-bissau-village", "year": 2021,
     "amount": "250000.00", "command_id": "a-17"},
    {"command": "disburse", "initiative": "gw-bissau-village", "amount": "50000.00",
     "on": "2022-01-20"},
]  # fmt: skip


@dataclass
class Secrets:
    pg_password: str = field(default_factory=lambda: f"s3cr3t-{uuid.uuid4().hex}")
    nats_password: str = field(default_factory=lambda: f"n4ts-pw-{uuid.uuid4().hex}")
    nats_token: str = field(default_factory=lambda: f"t0ken-{uuid.uuid4().hex}")
    cipher_key: str = field(default_factory=lambda: AESCipher.create_key(32))

    def values(self) -> dict[str, str]:
        return {"database password": self.pg_password, "NATS password": self.nats_password,
                "NATS token": self.nats_token, "cipher key": self.cipher_key}  # fmt: skip

    def leaks(self, text: str) -> list[str]:
        return [name for name, value in self.values().items() if value in text]


def test_no_secret_in_any_output_traceback_or_file(tmp_path: Path, pg_url: str) -> None:
    secrets = Secrets()
    pg_database = pg_url.rsplit("/", 1)[1]
    store = f"postgresql://{PG_USER}:{secrets.pg_password}@{PG_HOST}:{PG_PORT}/{pg_database}"
    out = tmp_path / "out"
    out.mkdir()
    (out / "commands.jsonl").write_text("".join(json.dumps(line) + "\n" for line in IMPORT))
    seen: list[tuple[list[str], str]] = []  # every command and everything it printed

    def run(args: list[str], env: dict[str, str], code: int) -> str:
        done = run_cli(args, env)
        seen.append((args, done.stdout + done.stderr))
        assert done.returncode == code, (args, done.stdout[-500:], done.stderr[-2000:])
        if code:
            lines = done.stderr.splitlines()
            assert lines[-1].startswith("homeledger: "), done.stderr
            if "--debug" not in args:
                assert len(lines) == 1, done.stderr
        return done.stdout

    by_password = Auth(user="relay", password=secrets.nats_password)
    with (
        running_server(tmp_path / "nats-user", auth=by_password) as by_user,
        running_server(tmp_path / "nats-token", auth=Auth(token=secrets.nats_token)) as by_token,
    ):
        env = cli_env(store, by_user.url, HOMELEDGER_NATS_USER="relay",
                      HOMELEDGER_NATS_PASSWORD=secrets.nats_password,
                      HOMELEDGER_CIPHER_KEY=secrets.cipher_key, HOMELEDGER_ACTOR="ops")  # fmt: skip
        token_env = cli_env(store, by_token.url, HOMELEDGER_NATS_TOKEN=secrets.nats_token,
                            HOMELEDGER_CIPHER_KEY=secrets.cipher_key)  # fmt: skip
        no_key = {k: v for k, v in env.items() if k != "HOMELEDGER_CIPHER_KEY"}
        down = f"postgresql://{PG_USER}:{secrets.pg_password}@{PG_HOST}:{free_port()}/x"
        missing = f"postgresql://{PG_USER}:{secrets.pg_password}@{PG_HOST}:{PG_PORT}/no_such_db"

        # Recording, reading, exporting: all succeed.
        run(["--debug", "import", str(out / "commands.jsonl")], env, 0)
        run(["--debug", "--format", "json", "milestone", "--initiative", "gw-bissau-village",
             "--name", "solar panels installed", "--on", "2022-03-15"], env, 0)  # fmt: skip
        (out / "events.csv").write_text(run(["--format", "csv", "events", "list"], env, 0))
        run(["--debug", "--format", "json", "events", "show", "1"], env, 0)
        (out / "audit.csv").write_text(run(["--format", "csv", "audit", "gw-bissau-village"],
                                           env, 0))  # fmt: skip
        run(["--debug", "report", "--year", "2021", "--out", str(out / "report.txt")], env, 0)
        run(["--format", "json", "report", "--year", "2021", "--out", str(out / "report.json")],
            env, 0)  # fmt: skip
        run(["--debug", "balances", "--by", "initiative"], env, 0)
        run(["--debug", "relay", "--once"], env, 0)
        run(["--debug", "--format", "jsonl", "subscribe", "--durable", "auditor", "--max", "3"],
            env, 0)  # fmt: skip
        run(["--debug", "relay", "--once"], token_env, 0)
        verified = json.loads(run(["--debug", "--format", "json", "verify"], env, 0))
        assert verified["ok"] is True  # verify works on the encrypted store, with the key
        against = run_cli(["verify", "--help"], env).stdout
        if "--against-nats" in against:
            run(["--debug", "verify", "--against-nats"], env, 0)

        # Failing, with tracebacks: refusals, bad input, the store and NATS out of reach.
        run(["--debug", "allocate", "--initiative", "gw-bissau-village", "--year", "2021",
             "--amount", "99999999.00"], env, 3)  # fmt: skip
        assert "Traceback" in seen[-1][1]  # --debug does print the traceback
        run(["--debug", "receive", "--year", "2021", "--amount", "NaN", "--on", "2022-01-01"],
            env, 2)  # fmt: skip
        run(["--debug", "--store", down, "events", "list"], env, 4)
        run(["--debug", "--store", missing, "events", "list"], env, 4)
        run(["--store", down, "allocate", "--initiative", "x", "--year", "2021",
             "--amount", "1.00"], env, 4)  # fmt: skip
        run(["--debug", "--store", f"postgresql://{PG_USER}:{secrets.pg_password}@/nodb",
             "events", "list"], env, 2)  # fmt: skip
        run(["--debug", "--nats-user", "mallory", "relay", "--once", "--max-outage", "1"], env, 4)
        run(["--debug", "--nats", by_token.url, "relay", "--once", "--max-outage", "1"], env, 4)
        run(["--debug", "--nats-token", "wrong", "relay", "--once", "--max-outage", "1"],
            token_env, 4)  # fmt: skip
        run(["--debug", "--nats", f"nats://relay:{secrets.nats_password}@127.0.0.1:{free_port()}",
             "relay", "--once", "--max-outage", "1"], env, 4)  # fmt: skip
        run(["--debug", "subscribe", "--durable", "x", "--max", "1", "--idle", "1"],
            {**env, "HOMELEDGER_NATS_PASSWORD": "wrong"}, 4)  # fmt: skip
        wrong_key = {**env, "HOMELEDGER_CIPHER_KEY": AESCipher.create_key(32)}
        run(["--debug", "events", "list"], wrong_key, 4)
        run(["--debug", "events", "list"], no_key, 4)
        run(["verify"], no_key, 4)  # without the key: a clear line, not a wall of findings
        assert "cipher key" in seen[-1][1]
        run(["--debug", "events", "list"], {**env, "HOMELEDGER_CIPHER_KEY": "bad-key!"}, 2)

    exported = sorted(p for p in out.iterdir() if p.is_file())
    assert {p.name for p in exported} >= {"events.csv", "audit.csv", "report.txt",
                                           "report.json"}  # fmt: skip
    assert "gw-bissau-village" in (out / "audit.csv").read_text()
    leaks = [(args, secrets.leaks(text)) for args, text in seen if secrets.leaks(text)]
    leaks += [([str(p)], secrets.leaks(p.read_text(errors="replace"))) for p in exported
              if secrets.leaks(p.read_text(errors="replace"))]  # fmt: skip
    assert not leaks, f"secrets shown: {leaks}"
    print(f"\nsecrets: {len(seen)} commands ({sum('--debug' in a for a, _ in seen)} with "
          f"--debug) and {len(exported)} files searched for {len(secrets.values())} secrets: "
          "none found")  # fmt: skip


def test_the_search_would_find_a_leak() -> None:
    """The check above can fail: a printed secret is found."""
    secrets = Secrets()
    assert secrets.leaks(f"homeledger: store postgresql://u:{secrets.pg_password}@h/db") == [
        "database password"
    ]
    assert secrets.leaks("nothing here") == []
