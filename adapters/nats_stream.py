"""The JetStream stream that holds every recorded fact, created and kept configured.

It is created with file storage, limits retention and no limits, deny-delete (a
published fact is a witness: no one removes it), and is brought up to date when its
subjects, duplicate window or replicas differ from what is asked.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo

from homeledger.adapters.errors import NatsUnavailableError
from homeledger.adapters.nats_connection import display_servers
from homeledger.adapters.nats_messages import STREAM_SUBJECTS
from homeledger.adapters.settings import Settings

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


@dataclass(frozen=True)
class StreamSpec:
    name: str
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    replicas: int = DEFAULT_REPLICAS

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description="homeledger: every recorded fact, in store order",
            subjects=[STREAM_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_msgs=-1,
            max_bytes=-1,
            max_age=0,
            duplicate_window=self.duplicate_window,
            num_replicas=self.replicas,
            allow_direct=True,
            deny_delete=True,  # a published fact is a witness: no one removes it
        )


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> StreamInfo:
    """Create the stream, or update it when subjects, window or replicas differ."""
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
    same = (
        list(current.subjects or []) == [STREAM_SUBJECTS]
        and abs((current.duplicate_window or 0) - spec.duplicate_window) < 1e-3
        and (current.num_replicas or 1) == spec.replicas
    )
    if same:
        return info
    updated = current.evolve(
        subjects=[STREAM_SUBJECTS], duplicate_window=spec.duplicate_window,
        num_replicas=spec.replicas,
    )  # fmt: skip
    return await _api(js.update_stream(updated), f"update stream {spec.name}")


async def _api(call: Awaitable[StreamInfo], what: str) -> StreamInfo:
    try:
        return await call
    except nats.js.errors.ServiceUnavailableError:
        raise  # no JetStream leader right now (an election): the caller retries
    except nats.js.errors.APIError as exc:
        raise StreamConfigError(f"cannot {what}: {exc.description or exc}") from None
