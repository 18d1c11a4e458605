"""Processes in tests: racing workers (start them, collect what each reports) and CLI
processes; none is ever left running."""

from __future__ import annotations

import queue
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from typing import Any

import pytest

from tests.helpers import wait_until


def gather(processes: Sequence[BaseProcess], results: Any, timeout: float) -> dict[int, Any]:
    """Start the processes; each puts one `(worker, outcomes)` on `results`."""
    for process in processes:
        process.start()
    reported: dict[int, Any] = {}
    try:
        for _ in processes:
            worker, outcomes = results.get(timeout=timeout)
            reported[worker] = outcomes
    except queue.Empty:
        pytest.fail(f"only {len(reported)} of {len(processes)} workers reported within "
                    f"{timeout:g} s")  # fmt: skip
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        results.join_thread()
    assert [p.exitcode for p in processes] == [0] * len(processes)
    assert sorted(reported) == list(range(len(processes)))
    return reported


@contextmanager
def reaped(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """The process, killed and reaped on the way out if it is still running (a failed
    assertion never leaves a CLI or server process behind)."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def stopped(process: subprocess.Popen[str], sig: signal.Signals = signal.SIGINT,
            timeout: float = 120) -> tuple[str, str]:  # fmt: skip
    """Send `sig` and wait for the process to end; its (stdout, stderr). The timeout bounds
    a hang, never how fast it stops: a process still running then is aborted (SIGABRT),
    which makes Python print every thread's stack (PYTHONFAULTHANDLER, which `clean_env`
    sets), and the test fails with those stacks."""
    process.send_signal(sig)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, err = process.communicate(timeout=60)
        pytest.fail(f"still running {timeout:g} s after {sig.name}; its stderr and stacks:\n"
                    f"{(err or '')[-8000:]}")  # fmt: skip


def kill_midway(process: subprocess.Popen[Any], progress: Callable[[], int], target: int,
                end: int, timeout: float = 120) -> bool:  # fmt: skip
    """SIGKILL a process once `progress()` reached `target`; whether it was killed before
    `end`, in the middle of its work.

    The process is frozen first (SIGSTOP), so that how far it got is read while it can
    go no further: a process that finished by itself, or got to `end` before it was
    frozen, was not killed midway, however fast or slow the machine."""
    wait_until(lambda: process.poll() is not None or progress() >= target, timeout,
               f"progress to {target}")  # fmt: skip
    if process.poll() is None:
        process.send_signal(signal.SIGSTOP)
    reached = progress()
    process.kill()
    process.communicate(timeout=60)
    return process.returncode == -signal.SIGKILL and reached < end


def first_line_while(process: subprocess.Popen[str], act: Callable[[], object],
                     what: str, timeout: float = 120) -> str:  # fmt: skip
    """The first line a following process prints, `act` repeated (a second apart at most)
    until it prints one: it cannot say when it has started to follow. The timeout bounds
    a hang, never how fast the process must start."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            act()
            if selector.select(timeout=1):
                return process.stdout.readline()
    pytest.fail(f"{what} for {timeout:g} s and the process printed nothing")
