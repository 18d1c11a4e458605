"""The defaults of the global settings, in a module that imports nothing: the CLI shows
them in `--help` without loading the settings model (pydantic)."""

DEFAULT_STORE = "sqlite:///homeledger.db"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_STREAM = "HOMELEDGER"
# The first token of every subject: <prefix>.events.<EventType>.<scope>.
DEFAULT_SUBJECT_PREFIX = "homeledger"
