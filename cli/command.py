"""How each command group registers its commands: one `Command` per verb, old spellings as aliases.

A group module (`cli/platform.py`, …) exposes `register(commands)`, where `commands` is the top-level
subparsers action; `cli/main.py` calls each. `add` registers a command under its new spelling, `alias`
the same command under an old one (one deprecation line on stderr when used), and `renamed_flag` an
old flag spelling beside its new one (one deprecation line when used).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

Arguments = Callable[[argparse.ArgumentParser], None]
Subparsers = Any  # argparse's _SubParsersAction, which it does not export


@dataclass(frozen=True)
class Command:
    """A command as `cli.main.invoke` runs it.

    `run` is called as `run(settings, args)`, or `run(args)` when `needs_settings` is false (the command
    works on a model package the settings may not accept yet). `runs_flows`: the command runs flows in this
    process, so it gets a temporary Prefect server when none runs and no flow-run heartbeats. `prepare(settings,
    args)`, when given, is entered before Prefect is imported and left after `run`: work the command starts at
    once, beside Prefect's start (`mlops run` starts the endpoint it will deploy to)."""

    name: str  # as the user types it: "platform up"
    run: Callable[..., int]
    runs_flows: bool = False
    needs_settings: bool = True
    prepare: Callable[[Any, argparse.Namespace], AbstractContextManager[object]] | None = None


def group(commands: Subparsers, noun: str, *, help: str) -> Subparsers:
    """`mlops NOUN VERB`: the subparsers of a group's verbs."""
    parser = commands.add_parser(noun, help=help, description=help)
    return parser.add_subparsers(required=True, metavar="VERB", title="verbs")


def add(
    subparsers: Subparsers,
    word: str,
    command: Command,
    *,
    help: str,
    arguments: Arguments | None = None,
    aliases: Sequence[tuple[Subparsers, str]] = (),
) -> argparse.ArgumentParser:
    """Register `command` as `word` under `subparsers`, and under each old spelling in `aliases`
    ((subparsers, word) pairs) with the same arguments."""
    parser: argparse.ArgumentParser = subparsers.add_parser(word, help=help, description=help)
    if arguments is not None:
        arguments(parser)
    parser.set_defaults(command=command, deprecated_spelling=None)
    for where, old in aliases:
        alias = where.add_parser(
            old, description=f"{help} (deprecated: use `mlops {command.name}`)"
        )  # no help: unlisted
        if arguments is not None:
            arguments(alias)
        alias.set_defaults(command=command, deprecated_spelling=alias.prog)
    return parser


def json_argument(parser: argparse.ArgumentParser) -> None:
    """`--json`, for a command that reports state."""
    parser.add_argument("--json", action="store_true", help="print JSON")


def deprecation_line(old: str, new: str) -> str:
    """The one line an old spelling prints on stderr."""
    return f"{old} is deprecated; use {new}"


def warn_if_deprecated(args: argparse.Namespace) -> None:
    """One line on stderr when the command was reached by an old spelling."""
    old = getattr(args, "deprecated_spelling", None)
    if old:
        print(deprecation_line(f"`{old}`", f"`mlops {args.command.name}`"), file=sys.stderr)


class _RenamedFlag(argparse.Action):
    """An old flag spelling: stores into the new flag's destination and says, once, what to type instead."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        warned: set[str] = namespace.__dict__.setdefault("_warned_flags", set())
        if option_string not in warned:
            warned.add(str(option_string))
            print(f"{parser.prog}: {deprecation_line(str(option_string), self.new)}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def renamed_flag(
    parser: argparse.ArgumentParser,
    old: str,
    new: str,
    *,
    switch: bool = False,
    type: Any = None,
    metavar: str | None = None,
) -> None:
    """Accept `old` as a deprecated spelling of the flag `new` (added before, with its help and default):
    a switch (store_true) when `switch`, else a flag taking one value of `type`."""
    dest = new.removeprefix("--").replace("-", "_")
    if switch:
        parser.add_argument(
            old,
            dest=dest,
            action=_RenamedFlag,
            new=new,
            nargs=0,
            const=True,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    else:
        parser.add_argument(
            old,
            dest=dest,
            action=_RenamedFlag,
            new=new,
            type=type,
            metavar=metavar,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
