"""The shared option helpers: choices checked at parse time, ``--out`` and its old aliases."""

from __future__ import annotations

from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from ecellm.cli_options import deprecated, one_of, pick_out

calls: list[str] = []


def _allowed() -> tuple[str, ...]:
    calls.append("read")
    return ("a", "b")


app = typer.Typer()


@app.command()
def cmd(
    pick: Annotated[str | None, typer.Option("--pick", callback=one_of(_allowed))] = None,
    many: Annotated[list[str] | None, typer.Option("--many", callback=one_of(_allowed))] = None,
    out: Annotated[str | None, typer.Option("--out")] = None,
    output: Annotated[str | None, typer.Option("--output", hidden=True, callback=deprecated("--out"))] = None,
) -> None:
    typer.echo(f"ran pick={pick} many={many} out={pick_out(out, output)}")


def test_one_of_reads_the_allowed_values_only_when_parsing():
    calls.clear()
    res = CliRunner().invoke(app, ["--pick", "a", "--many", "a", "--many", "b"])
    assert res.exit_code == 0 and "ran pick=a many=['a', 'b']" in res.output
    assert calls  # read at parse time, not when the command was declared


@pytest.mark.parametrize("args", [["--pick", "c"], ["--many", "a", "--many", "z"]])
def test_one_of_refuses_with_exit_2_before_the_body(args):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "ran" not in res.output
    assert "; choose one of a, b" in res.output


def test_deprecated_alias_works_and_warns():
    res = CliRunner().invoke(app, ["--output", "x.json"])
    assert res.exit_code == 0 and "out=x.json" in res.output
    assert "warning: --output is deprecated, use --out" in res.output
    assert "--output" not in CliRunner().invoke(app, ["--help"]).output


def test_pick_out():
    assert pick_out("a", None) == "a" and pick_out(None, "b") == "b" and pick_out("a", "a") == "a"
    assert pick_out(None, None) is None
    with pytest.raises(typer.BadParameter, match="give --out only"):
        pick_out("a", "b")
    with pytest.raises(typer.BadParameter, match="missing"):
        pick_out(None, None, required=True)
