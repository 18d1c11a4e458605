"""The shipped deployment (docker/), without Docker: the compose file read as Compose reads
it (YAML with merge keys, `${VAR}` filled from docker/.env.example), and a NATS cluster
started on loopback ports from docker/nats/nats.conf itself, with the environment the
compose file gives each node (only the addresses and the store folder differ).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from homeledger.adapters.nats_server import LOOPBACK, NatsServer, free_port, nats_server_binary
from tests.helpers import clean_env

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
NATS_CONF = DOCKER / "nats" / "nats.conf"
ENV_EXAMPLE = DOCKER / ".env.example"
NATS_NODES = ("nats-1", "nats-2", "nats-3")
# What differs between a container and a test on loopback (set per node here).
NODE_PLACES = ("NATS_SERVER_NAME", "NATS_LISTEN", "NATS_HTTP", "NATS_STORE_DIR",
               "NATS_CLUSTER_LISTEN", "NATS_ROUTES")  # fmt: skip

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    """docker/.env.example as Compose reads an .env file."""
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def referenced_variables() -> dict[str, str | None]:
    """Every `${VAR}` of the compose file: its default (None when it has none)."""
    found: dict[str, str | None] = {}
    for name, kind, default in _REFERENCE.findall(COMPOSE_FILE.read_text(encoding="utf-8")):
        has_default = kind in ("-", ":-")
        found[name] = default if has_default else found.get(name)
    return found


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """`${VAR}`, `${VAR:-default}` and `${VAR:?message}` as Compose fills them."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if env.get(name):
            return env[name]
        if kind and kind.endswith("-"):
            return str(rest)
        raise KeyError(f"compose needs {name}: {rest or 'unset'}")

    return _REFERENCE.sub(fill, value)


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file, merge keys resolved, variables filled from .env.example."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return dict(interpolate(raw, env_example() if env is None else env))


def service(name: str) -> dict[str, Any]:
    return dict(compose()["services"][name])


def service_env(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in (service(name).get("environment") or {}).items()}


def conf_variables() -> set[str]:
    """The environment variables nats.conf reads ($NAME outside quotes, not defined in it)."""
    text = re.sub(r'"[^"]*"', '""', NATS_CONF.read_text(encoding="utf-8"))
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    used = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text))
    defined = set(re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*[=:]", text, re.M))
    return used - defined


# The README's docker sequence.


@dataclass(frozen=True)
class CliRun:
    """One `docker compose -f docker/docker-compose.yml run ... cli ARGS` of the README."""

    args: list[str]
    env: dict[str, str]  # -e NAME=VALUE
    stdin: str | None  # the file after `<`
    tty: bool  # without -T, stdin is not piped


def readme_docker_block() -> list[str]:
    """The commands of the README's docker section (continuation lines joined)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Deployment: docker/", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split("  #", 1)[0].strip() for line in joined.splitlines() if line.strip()]


def cli_runs(lines: list[str]) -> list[CliRun]:
    """The `run ... cli ...` commands among `lines`, as arguments for homeledger."""
    runs = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if words[:4] != ["docker", "compose", "-f", "docker/docker-compose.yml"] \
                or words[4] != "run":  # fmt: skip
            continue
        stdin = None
        if "<" in words:
            at = words.index("<")
            stdin, words = words[at + 1], words[:at]
        rest, env, tty = words[5:], {}, True
        while rest[0].startswith("-"):
            option = rest.pop(0)
            if option == "-T":
                tty = False
            elif option == "-e":
                name, _, value = rest.pop(0).partition("=")
                env[name] = value
        assert rest.pop(0) == "cli", line
        runs.append(CliRun(rest, env, stdin, tty))
    return runs


# The NATS cluster from the shipped configuration.


@dataclass
class ShippedNatsServer(NatsServer):
    """One node started from docker/nats/nats.conf, with the compose file's environment."""

    node_env: dict[str, str] = field(default_factory=dict)
    route_ports: list[int] = field(default_factory=list)

    def environment(self) -> dict[str, str]:
        routes = ", ".join(f"nats://{LOOPBACK}:{port}" for port in self.route_ports)
        return {
            "PATH": os.environ.get("PATH", ""),
            **self.node_env,
            "NATS_SERVER_NAME": self.name,
            "NATS_LISTEN": f"{LOOPBACK}:{self.port}",
            "NATS_HTTP": f"{LOOPBACK}:{self.monitor_port}",
            "NATS_STORE_DIR": str(self.store_dir / "jetstream"),
            "NATS_CLUSTER_LISTEN": f"{LOOPBACK}:{self.cluster_port}",
            "NATS_ROUTES": f"[{routes}]",
        }

    def _start(self, timeout: float) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [str(nats_server_binary()), "-c", str(NATS_CONF)], env=self.environment(),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self._started_once = True
        return self


def nats_node_env(node: str = "nats-1") -> dict[str, str]:
    """What the compose file gives a NATS node, passwords from .env.example."""
    return service_env(node)


def start_shipped_cluster(base: Path, timeout: float = 30.0) -> list[ShippedNatsServer]:
    """The compose file's three NATS nodes, on loopback, from the shipped configuration."""
    ports = [free_port() for _ in NATS_NODES]
    servers = [
        ShippedNatsServer(
            base / node, name=node, cluster_name="homeledger", cluster_port=port,
            node_env=nats_node_env(node), route_ports=ports,
        )
        for port, node in zip(ports, NATS_NODES, strict=True)
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


def homeledger_env(service_name: str, store: str, nats_url: str) -> dict[str, str]:
    """A compose service's environment for a homeledger process on this machine: the
    store and the servers are the test's, everything else is the compose file's."""
    ours = {"HOMELEDGER_STORE": store, "HOMELEDGER_NATS_URL": nats_url}
    return clean_env(**(service_env(service_name) | ours))
