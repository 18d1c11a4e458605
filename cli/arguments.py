"""Global options are accepted before or after the sub-command's name.

`homeledger replay --format json` is `homeledger --format json replay`: before click
parses the command line, every global option found after the sub-command's name (with
its value) is moved in front of it. The walk follows click's own command tree, so a
sub-command's option that takes a value keeps it (a value that looks like a global
option stays where it is), and nothing after `--` is touched.
"""

from __future__ import annotations

import click


def _takes_value(param: click.Parameter) -> bool:
    return isinstance(param, click.Option) and not param.is_flag and not param.count


def _options(command: click.Command) -> dict[str, click.Parameter]:
    return {name: param for param in command.params for name in param.opts + param.secondary_opts
            if name.startswith("-")}  # fmt: skip


def hoist_global_options(root: click.Group, argv: list[str]) -> list[str]:
    """`argv` with the root's options that follow the sub-command moved before it."""
    root_options = _options(root)
    hoisted: list[str] = []
    kept: list[str] = []
    command: click.Command = root
    local = root_options
    index = 0
    while index < len(argv):
        word = argv[index]
        name = word.split("=", 1)[0]
        width = 2 if "=" not in word else 1
        if word == "--":
            kept += argv[index:]
            break
        if command is not root and name in root_options and name not in local:
            width = width if _takes_value(root_options[name]) else 1
            hoisted += argv[index : index + width]
        elif name in local:
            width = width if _takes_value(local[name]) else 1
            kept += argv[index : index + width]
        else:
            width = 1
            kept.append(word)
            command, local = _descend(command, word, local)
        index += width
    return hoisted + kept


Options = dict[str, click.Parameter]


def _descend(command: click.Command, word: str, local: Options) -> tuple[click.Command, Options]:
    """Into the sub-command `word` names, when `command` is a group and it names one."""
    if word.startswith("-") or not isinstance(command, click.Group):
        return command, local
    sub = command.get_command(click.Context(command), word)
    if sub is None:
        return command, local
    return sub, _options(sub)
