"""Pieces every command declaration shares, so the CLI has one way of saying each thing.

- Choices (``--mode``, ``--backend``, ``--template``, ``--dtype``, ...) are checked by
  :func:`one_of` while the command line is parsed: a wrong value exits 2 with click's usage
  line before the command body runs, so nothing (model, data, server) is loaded first. The
  allowed values are read from the Python API's own constants, lazily (importing them would slow
  every ``ecellm`` start), so the CLI never keeps a second list that could drift.
- ``--out`` names every output. A flag that used to name one (``--output``, ``--dest``) stays as
  a hidden alias, declared with :func:`deprecated` and merged with :func:`pick_out`, so old
  scripts keep working and say which flag to use now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import typer

T = TypeVar("T")


class ChoiceError(typer.BadParameter):
    """A value outside an option's choices: a usage error (exit 2) that ``ecellm.cli.main``
    prints as one line, in the words the Python API uses for the same mistake."""


def one_of(
    allowed: Callable[[], Iterable[str]], *, none_ok: bool = True
) -> Callable[[typer.Context, typer.CallbackParam, Any], Any]:
    """A typer ``callback`` refusing any value not in ``allowed()`` (a list value: each item).

    ``allowed`` is called only when the option is parsed, so its import happens then.
    """

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if (value is None and none_ok) or ctx.resilient_parsing:
            return value
        known = tuple(allowed())
        name = (param.opts[0] if param.opts else str(param.name)).lstrip("-")
        for item in value if isinstance(value, list | tuple) else [value]:
            if item not in known:
                raise ChoiceError(f"unknown {name} {item!r}; choose one of {', '.join(known)}")
        return value

    return check


def deprecated(new: str) -> Callable[[typer.Context, typer.CallbackParam, Any], Any]:
    """A typer ``callback`` for a hidden old flag: it still works and warns (stderr) once used."""

    def warn(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is not None and not ctx.resilient_parsing:
            old = param.opts[0] if param.opts else param.name
            typer.echo(f"warning: {old} is deprecated, use {new}", err=True)
        return value

    return warn


def pick_out(out: T | None, old: T | None, *, old_flag: str = "--output", required: bool = False) -> T | None:
    """The output path given with ``--out`` or with its deprecated alias ``old_flag``.

    Both at once with different values is a usage error (exit 2); ``required``: one of them must
    be given.
    """
    if out is not None and old is not None and out != old:
        raise typer.BadParameter(f"give --out only ({old_flag} is its deprecated alias)", param_hint="--out")
    value = out if out is not None else old
    if required and value is None:
        raise typer.BadParameter("missing option", param_hint="--out")
    return value
