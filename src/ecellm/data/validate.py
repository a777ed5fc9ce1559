"""``ecellm data validate``: check a build folder before anyone trains or scores on it.

Checks: every JSONL line is a valid :class:`Sample` whose task/setting/split match its file;
every gold output is a valid answer of its task (the task parser accepts it); ids are unique
across the build; no val/test input (normalized as in the pipeline's leakage step) occurs in the
same task's train split; QPR rankings agree with ``meta["labels"]``; counts agree with the
manifest. Every problem names the file, the line and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ecellm.data.schema import Sample
from ecellm.errors import InputError
from ecellm.io import read_json
from ecellm.tasks import Invalid, get_task
from ecellm.tasks.qpr import LABEL_ORDER, LETTERS


@dataclass(frozen=True)
class Problem:
    """One validation failure; ``str()`` gives the one-line message."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        return str(
            InputError(
                self.message,
                file=self.file,
                record=f"line {self.line}" if self.line else None,
                field=self.field,
            )
        )


def qpr_problem(sample: Sample) -> tuple[str, str] | None:
    """(field, message) when a QPR sample's labels and output disagree, else None."""
    labels = sample.meta.get("labels")
    try:
        products = json.loads(sample.input)["product list"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return "input", "QPR input must be a JSON object with a 'product list'"
    if not isinstance(labels, list) or len(labels) != len(products):
        return "meta.labels", f"expected one ESCI label per listed product ({len(products)}), got {labels!r}"
    if any(lab not in LABEL_ORDER for lab in labels) or len(set(labels)) != len(labels):
        return "meta.labels", f"labels must be pairwise distinct ESCI labels {LABEL_ORDER}, got {labels}"
    order = sorted(range(len(labels)), key=lambda i: LABEL_ORDER.index(labels[i]))
    gold = ",".join(LETTERS[i] for i in order)
    if sample.output != gold:
        return "output", f"ranking {sample.output!r} does not match labels {labels} (expected {gold!r})"
    return None


def _sample(rec: dict[str, Any], file: str, line: int, problems: list[Problem]) -> Sample | None:
    try:
        return Sample(**rec)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or None
        problems.append(Problem(file, line, field, err["msg"]))
        return None


def _read(path: Path, problems: list[Problem]) -> list[tuple[int, Sample]]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.append(Problem(str(path), line, None, f"malformed JSON: {exc.msg}"))
                continue
            if not isinstance(rec, dict):
                problems.append(Problem(str(path), line, None, "expected a JSON object"))
                continue
            s = _sample(rec, str(path), line, problems)
            if s is not None:
                out.append((line, s))
    return out


def validate_build(path: str | Path) -> list[Problem]:
    """Every problem found in the build folder ``path`` (empty list: the build is valid)."""
    from ecellm.data.quality import normalize_key

    root = Path(path)
    if not (root / "jsonl").is_dir():
        raise InputError("not a build folder (no jsonl/ inside)", file=str(root))
    problems: list[Problem] = []
    seen_ids: dict[str, str] = {}
    train_keys: dict[tuple[str, str], str] = {}
    held_out: list[tuple[str, int, Sample]] = []
    counts: dict[tuple[str, str, str], int] = {}
    for f in sorted((root / "jsonl").rglob("*.jsonl")):
        rel = f.relative_to(root / "jsonl").parts
        expect = (rel[0], rel[1], Path(rel[2]).stem) if len(rel) == 3 else None
        for line, s in _read(f, problems):
            where = f"{f}:{line}"
            got = (s.task, s.setting, s.split)
            if expect and got != expect:
                field = ("task", "setting", "split")[next(i for i in range(3) if got[i] != expect[i])]
                problems.append(Problem(str(f), line, field, f"{got} does not match the file's {expect}"))
            counts[got] = counts.get(got, 0) + 1
            if s.id in seen_ids:
                problems.append(
                    Problem(str(f), line, "id", f"duplicate id {s.id!r} (first at {seen_ids[s.id]})")
                )
            seen_ids.setdefault(s.id, where)
            task = get_task(s.task)
            if isinstance(task.parse(s.output, s), Invalid):
                problems.append(
                    Problem(str(f), line, "output", f"gold output is not a valid {s.task} answer")
                )
            if task.answer_kind == "option" and s.output not in (s.options or list(task.options)):
                problems.append(Problem(str(f), line, "output", "gold output is not one of the options"))
            if s.task == "QPR" and (bad := qpr_problem(s)):
                problems.append(Problem(str(f), line, *bad))
            if s.split == "train":
                train_keys.setdefault((s.task, normalize_key(s.input)), where)
            else:
                held_out.append((str(f), line, s))
    for file, line, s in held_out:
        hit = train_keys.get((s.task, normalize_key(s.input)))
        if hit:
            problems.append(
                Problem(file, line, "input", f"train/{s.split} leak: the same input is in train at {hit}")
            )
    problems.sort(key=lambda p: (p.file, p.line or 0))
    problems.extend(_check_manifest(root, counts))
    return problems


def _check_manifest(root: Path, counts: dict[tuple[str, str, str], int]) -> list[Problem]:
    mpath = root / "manifest.json"
    if not mpath.exists():
        return [Problem(str(mpath), None, None, "manifest.json is missing")]
    manifest = read_json(mpath)
    declared = {
        (t, st, sp): n
        for t, per in (manifest.get("counts") or {}).items()
        for st, per_split in per.items()
        for sp, n in per_split.items()
    }
    out = []
    for key in sorted(set(declared) | set(counts)):
        if declared.get(key, 0) != counts.get(key, 0):
            out.append(
                Problem(
                    str(mpath),
                    None,
                    f"counts.{'.'.join(key)}",
                    f"manifest says {declared.get(key, 0)}, files hold {counts.get(key, 0)}",
                )
            )
    return out
