"""The CLI as one surface: one declaration style, ``--out`` for every output, choices refused
before anything loads, and command options named as the Python API names them."""

from __future__ import annotations

import inspect
import sys
from typing import Any

import pytest
from typer.main import get_command
from typer.models import ParameterInfo
from typer.testing import CliRunner

from ecellm import cli

runner = CliRunner()
ROOT = get_command(cli.app)

# Commands allowed to declare options as defaults (``x: T = typer.Option(...)``): none.
PENDING_STYLE: set[str] = set()

# Every command that writes an output (a file or a folder) names it with --out.
WRITES_OUTPUT = {
    "data build", "data export", "data fetch", "predict", "evaluate", "shopbench score",
    "shopbench compare", "report", "train", "export", "recipes cp", "quickstart", "experiment",
}


def _commands(group: Any = ROOT, prefix: str = "") -> dict[str, Any]:
    """Every leaf command by its full name (typer may carry its own copy of click: duck-typed)."""
    out: dict[str, Any] = {}
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        if hasattr(cmd, "commands"):
            out.update(_commands(cmd, full + " "))
        else:
            out[full] = cmd
    return out


COMMANDS = _commands()


def test_every_command_is_declared_one_way():
    for name, cmd in sorted(COMMANDS.items()):
        if name in PENDING_STYLE:
            continue
        # declared by a decorator inside its module's register(app) (cli.py's own: version)
        assert "register.<locals>." in cmd.callback.__qualname__ or name == "version", name
        for pname, p in inspect.signature(cmd.callback).parameters.items():
            # the typer.Option/Argument lives in Annotated[...]; the default is the plain value
            assert not isinstance(p.default, ParameterInfo), f"{name}: {pname} declared as a default"
    assert set(COMMANDS) >= PENDING_STYLE  # a renamed command must leave this list too


def test_every_output_is_named_with_out_and_old_names_are_hidden():
    assert set(COMMANDS) >= WRITES_OUTPUT
    for name, cmd in COMMANDS.items():
        visible = [o for p in cmd.params if not getattr(p, "hidden", False) for o in p.opts]
        assert "--output" not in visible and "--dest" not in visible, name
        if name in WRITES_OUTPUT:
            assert "--out" in visible, name


# {m}: a model/adapter/data path that does not exist; {o}: an output path under tmp_path
PREDICT = "predict --model {m} --data {m} --out {o}"
EVALUATE, COMPARE = "ecellm.evaluate.run:evaluate_files", "ecellm.evaluate.run:compare_files"
WRONG_CHOICES = [
    (f"{PREDICT} --mode fast", "--mode", "ecellm.infer.predict:predict"),
    (f"{PREDICT} --backend torch", "--backend", "ecellm.infer.predict:predict"),
    (f"{PREDICT} --template llama", "--template", "ecellm.infer.predict:predict"),
    (f"{PREDICT} --dtype int8", "--dtype", "ecellm.infer.predict:predict"),
    (f"{PREDICT} --decoding beam", "--decoding", "ecellm.infer.predict:predict"),
    ("evaluate --data {m} --predictions {m} --out {o} --mode loose", "--mode", EVALUATE),
    ("shopbench score --data {m} --predictions {m} --mode paper!", "--mode", EVALUATE),
    ("shopbench compare --data {m} --base {m} --tuned {m} --mode x", "--mode", COMPARE),
    ("serve --model {m} --template llama", "--template", "ecellm.serve.run:serve"),
    ("serve --model {m} --engine tgi", "--engine", "ecellm.serve.run:serve"),
    ("serve --model {m} --batching yes", "--batching", "ecellm.serve.run:serve"),
    ("export {m} --out {o} --format onnx", "--format", "ecellm.train.export:export"),
    ("export {m} --out {o} --format gguf --dtype q4", "--dtype", "ecellm.train.export:export"),
    ("export {m} --out {o} --template llama", "--template", "ecellm.train.export:export"),
    ("data export {m} --out {o} --format csv", "--format", "ecellm.data.export:export_build"),
    ("data export {m} --out {o} -f lm-eval --template chat", "--template", "ecellm.data.export:export_build"),
    ("data build --raw-dir {m} --out {o} --family books", "--family", "ecellm.data.pipeline:build_dataset"),
    ("tasks --family books", "--family", "ecellm.tasks.describe:describe_tasks"),
]


@pytest.mark.parametrize(("line", "option", "entry"), WRONG_CHOICES)
def test_a_wrong_choice_exits_2_before_anything_loads(monkeypatch, tmp_path, line, option, entry):
    """The model, adapter and data paths do not exist: had anything been opened first, the error
    would name them. Neither the API function nor the sample loader may be reached."""
    import importlib

    def reached(*_a, **_k):
        raise AssertionError(f"{entry} was called")

    module, _, attr = entry.partition(":")
    monkeypatch.setattr(importlib.import_module(module), attr, reached)
    monkeypatch.setattr(importlib.import_module("ecellm.data.loaders"), "load_samples", reached)
    work = tmp_path / "work"
    work.mkdir()
    args = [a.format(m=tmp_path / "no-such-model", o=work / "out") for a in line.split()]
    res = runner.invoke(cli.app, args)
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{option}'" in res.output and "; choose one of" in res.output
    assert "no-such-model" not in res.output and not any(work.iterdir())


def test_wrong_choice_through_main_is_one_usage_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", ["ecellm", "predict", "--model", str(tmp_path / "none"), "--data",
                                      str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "p.jsonl"),
                                      "--mode", "fast"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    want = "unknown mode 'fast'; choose one of auto, generate, choice, constrained"
    assert err == f"error: Invalid value for '--mode': {want}\n"
    assert not (tmp_path / "p.jsonl").exists()


# Options that only the command line has: how to print, and the deprecated aliases.
CLI_ONLY = {"as_json", "no_progress", "output", "dest", "max_problems"}
# CLI names for what the API takes under another name (a positional path, a negated flag...)
RENAMED = {
    "no_offsets": "offsets", "split": "splits", "vllm_arg": "vllm_args", "message": "commit_message",
    "public": "private",
}
API_NAMES = [
    # command, the API functions it calls, its options passed positionally or as a selector
    ("predict", ["ecellm.infer.predict:predict", "ecellm.data.loaders:load_samples",
                 "ecellm.infer.backends.openai:OpenAIBackend", "ecellm.infer.backends.hf:HFBackend.open"],
     {"data"}),
    ("evaluate", ["ecellm.evaluate.run:evaluate_files"], set()),
    ("shopbench score", ["ecellm.evaluate.run:evaluate_files"], set()),
    ("shopbench compare", ["ecellm.evaluate.run:compare_files"], set()),
    ("data build", ["ecellm.data.pipeline:build_dataset", "ecellm.data.shopping:build_shopping"],
     {"raw_dir", "out", "family"}),
    ("data export", ["ecellm.data.export:export_build"], set()),
    ("data fetch", ["ecellm.data.fetch:fetch"], set()),
    ("data stats", ["ecellm.data.stats:build_stats"], {"build_dir"}),
    ("data validate", ["ecellm.data.validate:validate_build"], {"build_dir"}),
    ("export", ["ecellm.train.export:export"], set()),
    ("recipes cp", ["ecellm.train.recipes:copy_recipe"], set()),
    ("serve", ["ecellm.serve.run:serve", "ecellm.serve.app:create_app",
               "ecellm.serve.vllm_engine:serve_vllm"], {"model", "engine"}),
    ("push", ["ecellm.hub:push"], set()),
    ("tasks", ["ecellm.tasks.describe:describe_tasks"], set()),
]


@pytest.mark.parametrize(("command", "api", "positional"), API_NAMES)
def test_options_carry_the_python_api_names(command, api, positional):
    """A command option is a keyword of the function it calls, so the CLI and the API do not
    drift apart; the exceptions are listed above, each for a reason."""
    import importlib

    names: set[str] = set()
    for ref in api:
        module, _, attr = ref.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        names |= set(inspect.signature(obj).parameters)
    cli_names = {p.name for p in COMMANDS[command].params} - CLI_ONLY - positional
    drift = {n for n in cli_names if n not in names and RENAMED.get(n) not in names}
    assert not drift, f"{command}: options not named as in {api}: {sorted(drift)}"


def test_tasks_lists_eval_modes_and_settings_without_cutting_cells():
    from ecellm.tasks import all_tasks

    res = runner.invoke(cli.app, ["tasks"], terminal_width=100)
    assert res.exit_code == 0, res.output
    assert "…" not in res.output  # wrapped, never cut
    for t in all_tasks(None):
        assert t.name in res.output
    assert "paper, strict" in res.output and "official," in res.output


def test_shared_option_declarations_keep_each_commands_defaults():
    """The Annotated aliases shared by evaluate and the shopbench commands (--out, --mode...)
    keep each command's own default."""
    evaluate = {p.name: p for p in COMMANDS["evaluate"].params}
    compare = {p.name: p for p in COMMANDS["shopbench compare"].params}
    assert evaluate["mode"].default == "paper" and compare["mode"].default == "official"
    assert evaluate["out"].default is None and compare["out"].opts == ["--out", "-o"]
