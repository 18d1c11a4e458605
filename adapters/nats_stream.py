"""The JetStream stream that holds every recorded fact, created and kept configured.

It is created with file storage, limits retention and no limits, deny-delete and
deny-purge (a published fact is a witness: no one removes it, one message or all),
no roll-ups, on the subjects `<prefix>.events.>`. An existing stream is brought up to
date when its duplicate window, replicas or those protections differ from what is
asked; JetStream itself refuses to turn deny-delete or deny-purge off again. A stream
that holds messages under another subject prefix is refused, never re-pointed: it is
another ledger's stream.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo

from homeledger.adapters.errors import NatsUnavailableError
from homeledger.adapters.nats_connection import display_servers, session
from homeledger.adapters.nats_messages import stream_subjects
from homeledger.adapters.settings import DEFAULT_SUBJECT_PREFIX, Settings

DEFAULT_DUPLICATE_WINDOW = 600.0  # seconds; a relay restarted within it cannot store twice
DEFAULT_REPLICAS = 1


class StreamConfigError(Exception):
    """The existing stream cannot be brought to the configuration asked for."""


def missing_stream(settings: Settings) -> NatsUnavailableError:
    """The error for a stream that is not there (nothing has been relayed to it yet)."""
    return NatsUnavailableError(
        f"stream {settings.stream} does not exist on NATS at "
        f"{display_servers(settings.nats_url)}: run 'homeledger relay' first"
    )


def check_subjects(config: StreamConfig, prefix: str) -> None:
    """The stream must carry the subjects of `prefix`, else it is another ledger's."""
    wanted = stream_subjects(prefix)
    current = list(config.subjects or [])
    if current != [wanted]:
        shown = ", ".join(current) or "no subjects"
        raise StreamConfigError(
            f"stream {config.name} carries {shown}, not {wanted}: it belongs to another "
            "ledger or subject prefix; set HOMELEDGER_SUBJECT_PREFIX to match, or use "
            "another --stream"
        )


@dataclass(frozen=True)
class StreamSpec:
    name: str
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    replicas: int = DEFAULT_REPLICAS
    prefix: str = DEFAULT_SUBJECT_PREFIX

    @property
    def subjects(self) -> str:
        return stream_subjects(self.prefix)

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description="homeledger: every recorded fact, in store order",
            subjects=[self.subjects],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_msgs=-1,
            max_bytes=-1,
            max_age=0,
            duplicate_window=self.duplicate_window,
            num_replicas=self.replicas,
            allow_direct=True,
            # A published fact is a witness: no one removes it, one message or all
            # (a roll-up header would purge too; JetStream refuses one with deny-purge).
            deny_delete=True,
            deny_purge=True,
            allow_rollup_hdrs=False,
        )


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> StreamInfo:
    """Create the stream, or update it when window, replicas or protections differ."""
    wanted = spec.config()
    try:
        info = await js.stream_info(spec.name)
    except nats.js.errors.NotFoundError:
        return await _api(js.add_stream(wanted), f"create stream {spec.name}")
    current = info.config
    if current.storage not in (None, StorageType.FILE):
        raise StreamConfigError(
            f"stream {spec.name} exists with {current.storage} storage, not file storage; "
            "delete it or use another --stream"
        )
    if info.state.messages or info.state.last_seq:
        check_subjects(current, spec.prefix)  # never re-point a stream that holds facts
    same = (
        list(current.subjects or []) == [spec.subjects]
        and abs((current.duplicate_window or 0) - spec.duplicate_window) < 1e-3
        and (current.num_replicas or 1) == spec.replicas
        and current.deny_delete and current.deny_purge and not current.allow_rollup_hdrs
    )
    if same:
        return info
    updated = current.evolve(
        subjects=[spec.subjects], duplicate_window=spec.duplicate_window,
        num_replicas=spec.replicas, deny_delete=True, deny_purge=True,
        allow_rollup_hdrs=False,
    )  # fmt: skip
    return await _api(js.update_stream(updated), f"update stream {spec.name}")


async def create_stream(settings: Settings, spec: StreamSpec) -> StreamInfo:
    """`ensure_stream` on a connection of its own (a relay waiting for its ledger)."""
    async with session(settings, name="homeledger-relay") as client:
        return await ensure_stream(client.jetstream(timeout=settings.nats_timeout), spec)


async def _api(call: Awaitable[StreamInfo], what: str) -> StreamInfo:
    try:
        return await call
    except nats.js.errors.ServiceUnavailableError:
        raise  # no JetStream leader right now (an election): the caller retries
    except nats.js.errors.APIError as exc:
        raise StreamConfigError(f"cannot {what}: {exc.description or exc}") from None
