"""`homeledger`: global options, sub-command groups, and the exit-code contract."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Mapping
from typing import Any

import click

from homeledger.adapters.defaults import DEFAULT_NATS_URL, DEFAULT_STORE, DEFAULT_STREAM
from homeledger.cli.arguments import hoist_global_options
from homeledger.cli.commands import LazyCommands
from homeledger.cli.errors import InputError, classify
from homeledger.cli.help import epilog
from homeledger.cli.render import FORMATS


class LedgerGroup(LazyCommands):
    """Runs the CLI so that every failure is one line on stderr and a documented exit code;
    each sub-command's module is imported when that command is asked for."""

    def main(  # type: ignore[override]
        self, args: list[str] | None = None, prog_name: str | None = None,
        complete_var: str | None = None, standalone_mode: bool = True, **extra: Any,
    ) -> Any:  # fmt: skip
        _print_escaped()
        argv = list(sys.argv[1:] if args is None else args)
        try:
            # Inside the try: finding the sub-command imports its module, and Ctrl-C
            # during an import is an interrupt like any other.
            argv = hoist_global_options(self, argv)
            _refuse_undecodable(argv, os.environ)
            result = super().main(argv, prog_name or "homeledger", complete_var,
                                  standalone_mode=False, **extra)  # fmt: skip
            code = result if isinstance(result, int) else 0
        except click.exceptions.Exit as done:
            code = done.exit_code
        except click.exceptions.NoArgsIsHelpError as bare:
            click.echo(bare.ctx.get_help() if bare.ctx else self.get_help(click.Context(self)))
            code = 0
        except (click.exceptions.Abort, KeyboardInterrupt):
            code = _interrupted()
        except Exception as exc:  # noqa: BLE001 - the one place that reports every failure
            if _caused_by_interrupt(exc):  # e.g. a library wrapped the KeyboardInterrupt
                code = _interrupted()
                if standalone_mode:
                    sys.exit(code)
                return code
            code, message = classify(exc)
            if "--debug" in argv:
                traceback.print_exc()
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                message += f" (see '{exc.ctx.command_path} --help')"
            click.echo(f"homeledger: {message}", err=True)
        if standalone_mode:
            sys.exit(code)
        return code


def _interrupted() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping already: a second Ctrl-C waits
    click.echo("homeledger: interrupted (a transaction under way was rolled back: nothing "
               "is half-written)", err=True)  # fmt: skip
    return 130


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt | click.exceptions.Abort):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import version

    from homeledger.domain.events import EVENTS

    click.echo(f"homeledger {version('homeledger')}")
    click.echo(f"eventsourcing {version('eventsourcing')}")
    for name in EVENTS.types():
        click.echo(f"{name} schema version {EVENTS.current(name).SCHEMA_VERSION}")
    ctx.exit(0)
def _print_escaped() -> None:
    """Print what cannot be encoded (a lone surrogate in a fact recorded before such text
    was refused) as its escape, instead of failing on it."""
    for output in (sys.stdout, sys.stderr):
        reconfigure = getattr(output, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_undecodable(argv: list[str], environ: Mapping[str, str]) -> None:
    """Refuse an argument or HOMELEDGER_* variable that is not valid UTF-8 (its bytes
    arrive as lone surrogates), naming where it is and never showing it: it may be a
    secret, and it cannot be printed."""
    for index, arg in enumerate(argv):
        if not _encodable(arg):
            raise InputError(f"{_where(argv, index)} is not valid UTF-8 text")
    for key, value in environ.items():
        if key.startswith("HOMELEDGER_") and not (_encodable(key) and _encodable(value)):
            from homeledger.domain.values import escape_unencodable

            raise InputError(f"{escape_unencodable(key)} is not valid UTF-8 text")


def _where(argv: list[str], index: int) -> str:
    arg = argv[index]
    if arg.startswith("--") and "=" in arg and _encodable(arg.split("=", 1)[0]):
        return f"the value of {arg.split('=', 1)[0]}"
    before = argv[index - 1] if index else ""
    if before.startswith("-") and "=" not in before and _encodable(before):
        return f"the value of {before}"
    return f"argument {index + 1}"


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=epilog())
@click.option("--version", "-V", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version,
              help="The versions of homeledger, of the event store library, and the "
                   "schema version of each event type.")  # fmt: skip
@click.option("--store", envvar="HOMELEDGER_STORE", default=DEFAULT_STORE, show_default=True,
              help="Event store URL: sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB.")
@click.option("--nats", "nats_url", envvar="HOMELEDGER_NATS_URL", default=DEFAULT_NATS_URL,
              show_default=True, help="NATS server URL.")
@click.option("--nats-user", envvar="HOMELEDGER_NATS_USER", help="NATS user name.")
@click.option("--nats-password", envvar="HOMELEDGER_NATS_PASSWORD",
              help="NATS password (prefer the environment variable).")
@click.option("--nats-token", envvar="HOMELEDGER_NATS_TOKEN",
              help="NATS token (prefer the environment variable).")
@click.option("--nats-creds", envvar="HOMELEDGER_NATS_CREDS", help="NATS credentials file.")
@click.option("--nats-ca", envvar="HOMELEDGER_NATS_CA", help="CA file to verify NATS TLS.")
@click.option("--stream", envvar="HOMELEDGER_STREAM", default=DEFAULT_STREAM,
              show_default=True, help="JetStream stream name.")
@click.option("--actor", envvar="HOMELEDGER_ACTOR", default="",
              help="Who records (default: the OS user).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True, help="Output format.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, store: str, nats_url: str, nats_user: str | None,
        nats_password: str | None, nats_token: str | None, nats_creds: str | None,
        nats_ca: str | None, stream: str, actor: str, fmt: str, debug: bool) -> None:  # fmt: skip
    """homeledger: the event-sourced ledger of a per-home giving partnership."""
    from homeledger.adapters.settings import Settings
    from homeledger.cli.bootstrap import Services
    from homeledger.cli.context import Context

    settings = Settings.load(
        store=store, nats_url=nats_url, nats_user=nats_user, nats_password=nats_password,
        nats_token=nats_token, nats_creds=nats_creds, nats_ca=nats_ca, stream=stream,
        actor=actor,
    )  # fmt: skip
    context = Context(settings=settings, services=Services(settings), fmt=fmt, debug=debug)
    ctx.obj = context
    ctx.call_on_close(context.close)




def main() -> None:
    cli.main()
