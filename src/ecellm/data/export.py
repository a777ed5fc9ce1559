"""``ecellm data export``: hand an ECInstruct build to the tools people already use.

Formats (``--format``):

- ``lm-eval``: an lm-evaluation-harness task folder (``lm_eval --include_path DIR``). One task
  per (task, setting), named ``ecellm_<task>_<setting>`` in lower case and tagged ``ecellm``.
  Closed-answer tasks are ``multiple_choice`` (log-likelihood of each allowed answer after the
  prompt, the texts ecellm's own choice scoring uses); the others are ``generate_until`` with
  ecellm's stop strings and token budgets, scored by ecellm's evaluator (strict and paper) through
  the folder's ``utils.py``, which imports ecellm. Data files sit in the folder, so it can move.
- ``llamafactory``: a LLaMA-Factory dataset folder: ``dataset_info.json`` plus one alpaca JSON
  per split whose ``instruction`` is the whole prompt ecellm trains on (``input`` empty, so
  LLaMA-Factory's ``empty`` template adds nothing) and ``output`` the gold answer.
- ``messages``: TRL-style chat JSONL per split, ``{"messages": [user, assistant], ...}``; the
  user turn is what ecellm's ``chat`` template sends (preamble and sections, no markers).

Everything about a task (choices, budgets, prompts) is asked of the task registry, the request
builder and the prompt renderer, so an 11th task exports without a change here. The folder is
written next to ``out`` and renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ecellm.data.schema import SETTINGS, SPLITS, Sample
from ecellm.errors import InputError
from ecellm.io import write_json, write_jsonl
from ecellm.manifest import write_output_manifest
from ecellm.prompts import PREAMBLE, STOP_STRINGS, TEMPLATES, render_body, render_prompt, render_target
from ecellm.tasks import all_tasks, get_task

FORMATS = ("lm-eval", "llamafactory", "messages")
# templates whose prompt is plain text (no tokenizer needed): all but chat
TEXT_TEMPLATES = tuple(t for t in TEMPLATES if t != "chat")
MARKER = "ecellm_export.json"


class _Fn(str):
    """A ``!function module.name`` reference in an lm-eval task YAML."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Fn, lambda d, v: d.represent_scalar("!function", str(v)))


def lm_eval_task_name(abbr: str, setting: str) -> str:
    return f"ecellm_{abbr}_{setting}".lower()


def _order(samples: Sequence[Sample]) -> list[tuple[str, str]]:
    rank = {t.abbr: i for i, t in enumerate(all_tasks())}
    keys = {(s.task, s.setting) for s in samples}
    return sorted(keys, key=lambda k: (rank.get(k[0], 99), SETTINGS.index(k[1]) if k[1] in SETTINGS else 99))


def _choice_doc(sample: Sample, template: str) -> dict[str, Any] | None:
    """A multiple-choice doc (prompt, scored texts, gold index), or None when the sample's task
    has no closed answer set under ecellm's request builder."""
    from ecellm.infer.requests import build_request

    req = build_request(sample, mode="choice", template=template)
    if req.mode != "choice" or not req.choices:
        return None
    task = get_task(sample.task)
    gold = task.parse(sample.output, sample)
    idx = [i for i, c in enumerate(req.choices) if task.parse(c, sample) == gold]
    if len(idx) != 1:
        raise InputError(
            f"gold answer matches {len(idx)} of the allowed answers {req.choices}", record=sample.id,
            field="output",
        )
    texts = list(req.score_texts or req.choices)
    return {"id": sample.id, "prompt": req.prompt, "choices": texts, "gold": idx[0]}


def _generation_doc(sample: Sample, template: str) -> dict[str, Any]:
    return {
        "id": sample.id,
        "prompt": render_prompt(sample, template),
        "target": sample.output,
        "sample": json.dumps(sample.to_record(), ensure_ascii=False, sort_keys=True),
    }


def _lm_eval(samples: list[Sample], out: Path, template: str) -> dict[str, Any]:
    tasks = {}
    for abbr, setting in _order(samples):
        group = [s for s in samples if (s.task, s.setting) == (abbr, setting)]
        task = get_task(abbr)
        name = lm_eval_task_name(abbr, setting)
        docs = [_choice_doc(s, template) for s in group]
        mc = all(d is not None for d in docs)
        if not mc:
            docs = [_generation_doc(s, template) for s in group]
        rel = f"data/{name}.jsonl"
        write_jsonl(out / rel, docs)  # type: ignore[arg-type]
        cfg: dict[str, Any] = {
            "task": name,
            "tag": ["ecellm", f"ecellm_{setting.lower()}"],
            "custom_dataset": _Fn("utils.load_docs"),
            "dataset_kwargs": {"file": rel},
            "test_split": "test",
            "doc_to_text": "prompt",  # field names, not Jinja: prompts may contain braces
            "metadata": {"version": 1, "ecellm_task": abbr, "setting": setting, "template": template},
        }
        if mc:
            cfg.update(
                output_type="multiple_choice",
                doc_to_choice="choices",
                doc_to_target="gold",
                target_delimiter="",
                metric_list=[{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            )
        else:
            cfg.update(
                output_type="generate_until",
                doc_to_target="target",
                target_delimiter="",
                generation_kwargs={
                    "until": list(STOP_STRINGS),
                    "max_gen_toks": task.max_new_tokens,
                    "do_sample": False,
                },
                process_results=_Fn("utils.process_results"),
                metric_list=[
                    {"metric": m, "aggregation": _Fn(f"utils.{m}"), "higher_is_better": True}
                    for m in ("ecellm_strict", "ecellm_paper")
                ],
            )
        text = yaml.dump(cfg, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
        (out / f"{name}.yaml").write_text(text, encoding="utf-8")
        kind = "multiple_choice" if mc else "generate_until"
        tasks[name] = {"task": abbr, "setting": setting, "kind": kind, "docs": len(docs)}
    (out / "utils.py").write_text(LM_EVAL_UTILS, encoding="utf-8")
    return {"tasks": tasks}


LM_EVAL_UTILS = '''"""lm-evaluation-harness hooks of an ecellm export: load the folder's data files and score
generations with ecellm's own evaluator (needs `pip install ecellm` in the lm_eval environment)."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_docs(file, **_):
    import datasets

    rows = [json.loads(line) for line in (HERE / file).read_text(encoding="utf-8").splitlines() if line]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def process_results(doc, results):
    item = (doc["sample"], results[0])
    return {"ecellm_strict": item, "ecellm_paper": item}


def _score(items, mode):
    from ecellm.data.schema import Sample
    from ecellm.evaluate import evaluate

    samples = [Sample.model_validate(json.loads(s)) for s, _ in items]
    preds = {s.id: text for s, (_, text) in zip(samples, items)}
    rows = evaluate(samples, preds, mode=mode)["results"]
    total = sum(r["n"] for r in rows)
    return sum(r["score"] * r["n"] for r in rows) / total if total else 0.0


def ecellm_strict(items):
    return _score(items, "strict")


def ecellm_paper(items):
    return _score(items, "paper")
'''


def _text_template(template: str, fmt: str) -> None:
    if template not in TEXT_TEMPLATES:
        raise InputError(
            f"--format {fmt} writes plain-text prompts: use --template {', '.join(TEXT_TEMPLATES)} "
            "(for chat models export --format messages)",
            field="template",
        )


def _llamafactory(samples: list[Sample], out: Path, template: str) -> dict[str, Any]:
    info, counts = {}, {}
    for split in SPLITS:
        rows = [
            {
                "instruction": render_prompt(s, template),
                "input": "",
                "output": render_target(s, None, template),  # flan-t5-ref rewrites some targets
                "id": s.id,
                "task": s.task,
                "setting": s.setting,
            }
            for s in samples
            if s.split == split
        ]
        if not rows:
            continue
        name = f"ecellm_{split}"
        write_json(out / f"{name}.json", rows, indent=1)
        info[name] = {
            "file_name": f"{name}.json",
            "formatting": "alpaca",
            "columns": {"prompt": "instruction", "query": "input", "response": "output"},
        }
        counts[name] = len(rows)
    write_json(out / "dataset_info.json", info)
    return {"datasets": counts, "llamafactory_template": "empty"}


def chat_user_text(sample: Sample) -> str:
    """The user turn of ecellm's ``chat`` template (see ecellm.prompts.render_prompt)."""
    return f"{PREAMBLE}\n\n{render_body(sample)}"


def _messages(samples: list[Sample], out: Path) -> dict[str, Any]:
    counts = {}
    for split in SPLITS:
        rows = [
            {
                "id": s.id,
                "task": s.task,
                "setting": s.setting,
                "messages": [
                    {"role": "user", "content": chat_user_text(s)},
                    {"role": "assistant", "content": s.output},
                ],
            }
            for s in samples
            if s.split == split
        ]
        if rows:
            counts[split] = write_jsonl(out / f"{split}.jsonl", rows)
    return {"files": counts}


def _fingerprinted(source: Path) -> list[Path] | None:
    """What the export manifest hashes: a file itself, a build folder by its manifest (which hashes
    every file the build wrote); another folder or a hub id is named, not hashed."""
    if source.is_file():
        return [source]
    return [source / "manifest.json"] if (source / "manifest.json").is_file() else None


def export_build(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fmt: str,
    template: str = "alpaca",
    tasks: Sequence[str] | None = None,
    settings: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Export samples of ``source`` (anything ``load_samples`` reads) to ``out``; returns the
    summary also written to ``out/ecellm_export.json``. lm-eval exports the test split unless
    ``splits`` says otherwise; the other formats export every split present."""
    from ecellm.data.loaders import load_samples

    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})", field="format")
    if fmt != "messages":
        _text_template(template, fmt)
    if splits is None and fmt == "lm-eval":
        splits = ["test"]
    samples = load_samples(source, tasks=tasks or None, settings=settings or None, splits=splits or None)
    if not samples:
        raise InputError("no samples match the filters", file=str(source))
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise InputError("output folder exists, is not empty and is not an ecellm export", file=str(out))
    stage = out.parent / f".{out.name}.export-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        if fmt == "lm-eval":
            summary = _lm_eval(samples, stage, template)
        elif fmt == "llamafactory":
            summary = _llamafactory(samples, stage, template)
        else:
            summary = _messages(samples, stage)
        summary = {"format": fmt, "template": template if fmt != "messages" else "chat",
                   "source": str(source), "samples": len(samples), **summary}
        write_json(stage / MARKER, summary)
        write_output_manifest(
            stage,
            folder=True,
            kind="data-export",
            config={"format": fmt, "template": summary["template"], "tasks": tasks, "settings": settings,
                    "splits": splits},
            data=_fingerprinted(Path(source)),
        )
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            os.replace(out, old)
        os.replace(stage, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return summary
