"""A second process for `replay` and `verify`: it does an independent part of the work
while this one does the rest.

    replay   the projections do not depend on each other: the worker rebuilds about
             half of them (projections.runner, "Beside")
    verify   the ledger's checks (hash chain, seals, rules, ledger snapshots) do not
             depend on the read models' (receipts, projections, double entry): the
             worker runs the ledger's (projections.verify, "LedgerBeside"); with
             --against-nats a second worker reads the stream beside the store's facts
             (projections.witness), and this process settles its last check with the
             replay it made

The worker is a fresh interpreter (the spawn start method: nothing of this process's
connections or threads is carried over) that opens the store from the same settings.
It reports back through a pipe: its result, or the exception that stopped it, raised
again here, so a failure reads and exits as it would in this process. It ignores
Ctrl-C (this process decides: it stops the worker and exits as interrupted) and stops by
itself, after the page it is on, when this process is gone. What a replay worker
committed stays committed: each page is one transaction, as in any runner, and a
rebuild that did not finish is run again from the start. A verify worker writes
nothing.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from homeledger.adapters.errors import StoreUnavailableError
from homeledger.adapters.settings import Settings

# Below this many facts the worker's start-up (a new interpreter importing homeledger,
# about 0.3 s of CPU) costs more than the share of the work it takes.
BESIDE_FROM = 20_000

Alive = Callable[[], None]  # raises once the process that started the worker is gone


@dataclass
class Worker:
    process: Any  # multiprocessing's SpawnProcess
    receive: Connection

    def wait(self) -> Any:
        """The worker's result, once it is done; what stopped it raised here."""
        try:
            failed, outcome = self.receive.recv()
        except EOFError:  # it died without a word (killed, out of memory)
            self.process.join()
            raise StoreUnavailableError(
                f"the second process stopped (exit code {self.process.exitcode}); run the "
                "command again"
            ) from None
        finally:
            self.receive.close()
        self.process.join()
        if failed:
            raise outcome
        return outcome

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.receive.close()


def start_worker(task: Callable[..., Any], *args: Any) -> Worker:
    """Run `task(alive, *args)` (a module-level function) in a new process."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_run, args=(task, args, os.getpid(), send),
                              name="homeledger-worker", daemon=True)  # fmt: skip
    process.start()
    send.close()  # the worker's end: once it exits, a read here ends
    return Worker(process, receive)


@dataclass(frozen=True)
class ProcessBeside:
    """`replay`'s second process, on the store of `settings`."""

    settings: Settings

    def start(self, names: Sequence[str], page: int, snapshot_every: int) -> Worker:
        return start_worker(catch_up, self.settings, list(names), page, snapshot_every)


@dataclass(frozen=True)
class ProcessLedgerChecks:
    """`verify`'s second process, on the store of `settings`."""

    settings: Settings

    def start(self, head: int) -> Worker:
        return start_worker(ledger_checks, self.settings, head)


def start_witness(settings: Settings, head: int) -> Worker:
    """`verify --against-nats`'s stream witness, reading the stream of `settings` beside
    the store's facts 1..head; its result (a WitnessResult) is settled by the caller."""
    return start_worker(stream_witness, settings, head)


# In the worker.


def catch_up(alive: Alive, settings: Settings, names: list[str], page: int,
             snapshot_every: int) -> None:  # fmt: skip
    """Catch `names` up to the head, as a runner with these settings would, and build
    their tables' indexes."""
    from homeledger.cli.bootstrap import open_projection_db, open_store
    from homeledger.projections.runner import ProjectionRunner

    store = open_store(settings, create=False)
    try:
        db = open_projection_db(settings)
        try:
            db.trust_schema()  # ensured by the parent, which dropped the indexes
            runner = ProjectionRunner(store, db, page=page, snapshot_every=snapshot_every)
            runner.catch_up(names, progress=lambda _: alive())
            runner.build_indexes(names)
        finally:
            db.close()
    finally:
        store.close()


def ledger_checks(alive: Alive, settings: Settings, head: int) -> list[Any]:
    """The checks of verify's ledger part on facts 1..head."""
    from homeledger.cli.bootstrap import open_projection_db, open_store, seal_public_keys
    from homeledger.projections.runner import ProjectionRunner
    from homeledger.projections.verify import LEDGER, Verifier

    store = open_store(settings, create=False)
    try:
        db = open_projection_db(settings)
        try:
            runner = ProjectionRunner(store, db)  # the models' part's, not used by this one
            verifier = Verifier(store, db, runner, seal_public_keys(settings),
                                frozenset((LEDGER,)), after_page=alive)  # fmt: skip
            return verifier.run(head).checks
        finally:
            db.close()
    finally:
        store.close()


def stream_witness(alive: Alive, settings: Settings, head: int) -> Any:
    """The stream compared with the store's facts 1..head (projections.witness)."""
    import asyncio

    from homeledger.cli.bootstrap import open_projection_db, open_store
    from homeledger.cli.errors import quiet_asyncio
    from homeledger.projections.witness import witness_stream

    store = open_store(settings, create=False)
    try:
        db = open_projection_db(settings)
        try:
            with quiet_asyncio():
                return asyncio.run(witness_stream(settings, store, db, head, alive))
        finally:
            db.close()
    finally:
        store.close()


class _ParentGoneError(Exception):
    pass


def _run(task: Callable[..., Any], args: tuple[Any, ...], parent: int, send: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def alive() -> None:
        """Checked after every page: a worker whose parent died (killed) stops there."""
        if os.getppid() != parent:
            raise _ParentGoneError

    try:
        outcome: tuple[bool, Any] = (False, task(alive, *args))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        outcome = (True, _sendable(exc))
    with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
        send.send(outcome)
        send.close()


def _sendable(exc: BaseException) -> BaseException:
    """The exception itself if it survives the pipe, else its text."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, just made
    except Exception:  # noqa: BLE001 - any exception that cannot cross the pipe
        return StoreUnavailableError(f"{type(exc).__name__}: {exc}")
    return exc
