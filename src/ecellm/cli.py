"""Command-line interface: a thin layer over the Python API.

Each area registers its own commands (``register(app)`` in ``ecellm.<area>.commands``) so the
CLI stays one place to look and every command's logic lives next to its API.
"""

from __future__ import annotations

import importlib
import sys

import typer

from ecellm import __version__
from ecellm.errors import InputError

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
)


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


def main() -> None:
    """Entry point: run the app and turn user-input errors into one line and exit code 2."""
    try:
        code = app(standalone_mode=False)  # click returns a typer.Exit code instead of raising it
        if isinstance(code, int) and code:
            sys.exit(code)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyError as exc:  # unknown task names and the like
        typer.echo(f"error: {exc.args[0] if exc.args else exc}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
