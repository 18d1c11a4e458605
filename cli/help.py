"""What `--help` says beyond each option: the top-level epilog (environment variables,
exit codes, shell completion) and the import file's format.

Kept free of heavy imports: `homeledger --help` loads click and this module, not the
store, NATS or the documents' libraries.
"""

from __future__ import annotations

# Every variable the CLI reads; a flag given on the command line wins over its variable.
ENVIRONMENT = {
    "HOMELEDGER_STORE": "event store URL (--store)",
    "HOMELEDGER_NATS_URL": "NATS server URLs, comma-separated (--nats)",
    "HOMELEDGER_NATS_USER": "NATS user (--nats-user)",
    "HOMELEDGER_NATS_PASSWORD": "NATS password (--nats-password)",
    "HOMELEDGER_NATS_TOKEN": "NATS token (--nats-token)",
    "HOMELEDGER_NATS_CREDS": "NATS credentials file (--nats-creds)",
    "HOMELEDGER_NATS_CA": "CA file for NATS TLS (--nats-ca)",
    "HOMELEDGER_STREAM": "JetStream stream name (--stream)",
    "HOMELEDGER_ACTOR": "who records (--actor; default: the OS user)",
    "HOMELEDGER_SUBJECT_PREFIX": "first token of NATS subjects (default: homeledger)",
    "HOMELEDGER_CIPHER_KEY": "base64 AES key that encrypts stored facts",
    "HOMELEDGER_SEAL_KEY": "Ed25519 private key that signs seals",
    "HOMELEDGER_SEAL_PUBLIC_KEY": "Ed25519 public key(s) verify checks seals with",
    "HOMELEDGER_STORE_TIMEOUT": "seconds per answer of the store (default 60)",
    "HOMELEDGER_LOCK_TIMEOUT": "seconds to wait for a writer's lock (default 10)",
    "HOMELEDGER_NATS_TIMEOUT": "seconds for one answer of NATS (default 5)",
    "HOMELEDGER_NATS_SERVER_BIN": "nats-server binary for demo (default: bundled)",
    "HOMELEDGER_NATS_DUPLICATE_WINDOW": "relay: stream de-duplication window, seconds",
    "HOMELEDGER_NATS_REPLICAS": "relay: stream replicas",
    "HOMELEDGER_PROJECTION_PAGE": "facts per read-model transaction",
    "HOMELEDGER_PROJECTION_SNAPSHOT_EVERY": "positions between read-model snapshots",
}

EXIT_CODES = (
    (0, "done"),
    (1, "verification found a problem"),
    (2, "bad input (usage, validation): nothing written"),
    (3, "refused by a domain rule or a concurrent change: nothing written"),
    (4, "store or NATS unreachable or unreadable"),
    (5, "internal error (a bug: please report it)"),
    (130, "interrupted (Ctrl-C): nothing half-written"),
)


def _block(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name.ljust(width)}  {text}" for name, text in rows]
    return "\b\n" + "\n".join([f"{title}:", *lines])


def epilog() -> str:
    """The top-level help's closing sections ("\\b": click keeps their lines)."""
    completion = [("bash", 'eval "$(_HOMELEDGER_COMPLETE=bash_source homeledger)"'),
                  ("zsh", 'eval "$(_HOMELEDGER_COMPLETE=zsh_source homeledger)"'),
                  ("fish", "_HOMELEDGER_COMPLETE=fish_source homeledger | source")]  # fmt: skip
    return "\n\n".join([
        _block("Environment variables", list(ENVIRONMENT.items())),
        _block("Exit codes", [(str(code), text) for code, text in EXIT_CODES]),
        _block("Shell completion (add to your shell's start-up file)", completion),
    ])  # fmt: skip


IMPORT_FORMAT = """\b
The file is JSON Lines: one command per line, a JSON object (blank lines
are skipped). "command" names it as on the command line, with dots:
"init", "units.acquire", "units.dispose", "pledge", "receive",
"initiative.register", "initiative.close", "allocate", "release",
"disburse", "milestone", "reverse". The other fields are the command's
options named in snake_case ("allocation_id"); the positional ID of
"initiative register", "release" and "reverse" is "id". "on" is the
effective date (YYYY-MM-DD) where the command takes --on, and
"command_id" its idempotency key (a repeat records nothing). Money is a
decimal string ("250000.00"), never a JSON number. For example:

\b
  {"command": "units.acquire", "country": "NL", "units": 120, "on": "2021-01-04"}
  {"command": "allocate", "initiative": "gw-bissau-village", "year": 2021,
   "amount": "250000.00", "command_id": "a-17"}

\b
FILE "-" reads standard input. Every line is checked before anything is
recorded, then all commands are recorded in one transaction: all or nothing."""
