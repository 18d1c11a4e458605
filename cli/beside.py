"""A second process for `replay`: it rebuilds its share of the read models while this
one rebuilds the rest (see `projections.runner`, "Beside").

The worker is a fresh interpreter (the spawn start method: nothing of this process's
connections or threads is carried over), opens the store and its read models from the
same settings, and catches its models up to the head. It reports back through a pipe:
nothing (done) or the exception that stopped it, raised again here, so a failure reads
and exits as it would in this process. It ignores Ctrl-C (this process decides: it
stops the worker and exits as interrupted) and stops by itself when this process is
gone. Whatever it committed stays committed: each page is one transaction, as in any
runner, and a rebuild that did not finish is run again from the start.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from homeledger.adapters.errors import StoreUnavailableError
from homeledger.adapters.settings import Settings

# Below this many facts the worker's start-up (a new interpreter importing homeledger,
# about 0.3 s of CPU) costs more than the share of the work it takes.
BESIDE_FROM = 20_000


@dataclass(frozen=True)
class ProcessBeside:
    """Starts workers on the store of `settings`."""

    settings: Settings

    def start(self, names: Sequence[str], page: int, snapshot_every: int) -> Worker:
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=catch_up_beside,
            args=(self.settings, list(names), (page, snapshot_every), os.getpid(), send),
            name="homeledger-replay", daemon=True,
        )  # fmt: skip
        process.start()
        send.close()  # the worker's end: once it exits, a read here ends
        return Worker(process, receive)


@dataclass
class Worker:
    process: Any  # multiprocessing's SpawnProcess
    receive: Connection

    def wait(self) -> None:
        try:
            outcome: BaseException | None = self.receive.recv()
        except EOFError:  # it died without a word (killed, out of memory)
            self.process.join()
            raise StoreUnavailableError(
                f"the replay's second process stopped (exit code {self.process.exitcode}); "
                "run replay again"
            ) from None
        finally:
            self.receive.close()
        self.process.join()
        if outcome is not None:
            raise outcome

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.receive.close()


def catch_up_beside(settings: Settings, names: list[str], runner: tuple[int, int], parent: int,
                    send: Connection) -> None:  # fmt: skip
    """The worker: catch `names` up to the head, as a runner of `runner` (page, snapshot
    interval) would; send None, or what stopped it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from homeledger.cli.bootstrap import open_projection_db, open_store
    from homeledger.projections.runner import ProjectionRunner

    outcome: BaseException | None = None
    try:
        store = open_store(settings, create=False)
        try:
            db = open_projection_db(settings)
            try:
                db.trust_schema()  # ensured by the parent, which dropped the indexes
                page, every = runner
                ProjectionRunner(store, db, page=page, snapshot_every=every).catch_up(
                    names, progress=lambda _: _parent_alive(parent)
                )
            finally:
                db.close()
        finally:
            store.close()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        outcome = _sendable(exc)
    with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
        send.send(outcome)
        send.close()


class _ParentGoneError(Exception):
    pass


def _parent_alive(parent: int) -> None:
    """Checked after every page: a worker whose parent died (killed) stops there."""
    if os.getppid() != parent:
        raise _ParentGoneError


def _sendable(exc: BaseException) -> BaseException:
    """The exception itself if it survives the pipe, else its text."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, just made
    except Exception:  # noqa: BLE001 - any exception that cannot cross the pipe
        return StoreUnavailableError(f"replay: {type(exc).__name__}: {exc}")
    return exc
