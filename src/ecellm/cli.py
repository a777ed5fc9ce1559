"""Command-line interface: a thin layer over the Python API.

Each area registers its own commands (``register(app)`` in ``ecellm.<area>.commands``) so the
CLI stays one place to look and every command's logic lives next to its API.
"""

from __future__ import annotations

import errno
import importlib
import sys
from typing import Annotated

import typer

from ecellm import __version__
from ecellm.errors import EXIT_ENVIRONMENT, EXIT_USER, EnvironmentProblem, InputError

app = typer.Typer(
    name="ecellm",
    help="Build ECInstruct, tune any LLM on it, run it fast, and score it honestly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Areas that contribute commands; each module exposes ``register(app: typer.Typer)``.
COMMAND_MODULES = (
    "ecellm.evaluate.commands",
    "ecellm.report.commands",
    "ecellm.data.commands",
    "ecellm.infer.commands",
    "ecellm.train.commands",
    "ecellm.serve.commands",
    "ecellm.quickstart",
    "ecellm.experiment.commands",
    "ecellm.hub",
    "ecellm.tasks.commands",
)


@app.callback()
def _global_options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug lines and library warnings too.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Errors only: no progress, no log lines.")
    ] = False,
) -> None:
    """Logging for every command (see ecellm.log)."""
    from ecellm import log

    log.setup(log.QUIET if quiet else log.VERBOSE if verbose else log.DEFAULT)


@app.command()
def version() -> None:
    """Print the ecellm version."""
    typer.echo(__version__)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # area not built yet
                continue
            raise
        mod.register(app)


_register_all()


# errno values that mean "this path cannot be used as given": the user's to fix (exit 2);
# any other OSError (disk full, I/O error) is the machine's (exit 3).
_USER_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR, errno.ENOENT, errno.EEXIST}
)


def _one_line(text: object) -> str:
    """A message on one line: servers and libraries put newlines in theirs."""
    return " ".join(str(text).split())


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code an exception maps to, or ``None`` for a bug (which keeps its traceback).

    0 ok, 1 validation failure (commands exit 1 themselves), 2 user error, 3 environment.
    """
    if isinstance(exc, EnvironmentProblem):
        return EXIT_ENVIRONMENT
    if isinstance(exc, ImportError) and (
        isinstance(exc, InputError) or not (exc.name or "ecellm").startswith("ecellm")
    ):
        return EXIT_ENVIRONMENT  # an optional extra is missing (a broken ecellm import is a bug)
    if isinstance(exc, InputError | KeyError):
        return EXIT_USER
    if isinstance(exc, OSError):
        return EXIT_USER if exc.errno in _USER_ERRNOS else EXIT_ENVIRONMENT
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a dependency
        return None
    if isinstance(exc, httpx.TransportError):  # an unreachable server
        return EXIT_ENVIRONMENT
    return None


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError):  # unknown task names and the like
        return _one_line(exc.args[0] if exc.args else exc)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"optional package {exc.name!r} is not installed ({_one_line(exc)})"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return _one_line(exc)


def _is_usage_error(exc: BaseException) -> bool:
    """A command-line error click reports itself. Recent typer releases carry their own copy of
    click, whose exceptions are not click's classes: both are recognised."""
    import click

    if isinstance(exc, click.exceptions.ClickException):
        return True
    return isinstance(exc, typer.TyperException) and hasattr(exc, "show") and hasattr(exc, "exit_code")


def main() -> None:
    """Entry point: run the app and turn expected failures into one line and an exit code.

    Exit codes: 0 ok, 1 validation failure, 2 user error, 3 environment (see docs/reliability.md).
    """
    try:
        code = app(standalone_mode=False)  # click returns a typer.Exit code instead of raising it
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        from ecellm.cli_options import ChoiceError

        if isinstance(exc, ChoiceError):  # one line, as every other bad input
            typer.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        if _is_usage_error(exc):  # click's own lines (usage, the bad option), exit 2
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        code = exit_code_for(exc)
        if code is None:
            raise
        typer.echo(f"error: {_message(exc)}", err=True)
        sys.exit(code)


if __name__ == "__main__":
    main()
