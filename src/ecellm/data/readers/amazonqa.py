"""Reader for the official AmazonQA release (``{train,val,test}-qar.jsonl``, optionally gzipped).

One question per line: questionText, questionType ("yesno" / "descriptive"), review_snippets
(list of strings), answers (list of {answerText, helpful}), is_answerable, category, asin.
``helpful`` is ``[up_votes, total_votes]`` in the release; a bare number is accepted too.
The files are large (train is ~ 1 GB), so lines are streamed and validated one at a time.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecellm.errors import InputError

SPLIT_FILES = {"train": "train-qar.jsonl", "val": "val-qar.jsonl", "test": "test-qar.jsonl"}


@dataclass(frozen=True)
class QAItem:
    """One validated AmazonQA question; ``line`` is its 1-based line in ``file``."""

    file: str
    line: int
    split: str
    asin: str
    category: str
    question: str
    question_type: str
    snippets: tuple[str, ...]
    answers: tuple[tuple[str, int], ...]  # (answerText, helpful up-votes)
    is_answerable: bool

    def best_answer(self, min_votes: int = 0) -> str | None:
        """The most up-voted non-empty answer with at least ``min_votes`` up-votes (ties: first in
        file order), or None."""
        best: tuple[str, int] | None = None
        for text, votes in self.answers:
            if text.strip() and votes >= min_votes and (best is None or votes > best[1]):
                best = (text, votes)
        return best[0] if best else None


def amazonqa_files(raw_dir: Path) -> dict[str, Path]:
    """Split -> file for the AmazonQA files present under ``raw_dir/amazonqa`` (``.jsonl[.gz]``)."""
    base = Path(raw_dir) / "amazonqa"
    out: dict[str, Path] = {}
    for split, name in SPLIT_FILES.items():
        for cand in (base / name, base / f"{name}.gz"):
            if cand.exists():
                out[split] = cand
                break
    return out


def _votes(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, list) and value and isinstance(value[0], int) and not isinstance(value[0], bool):
        return value[0]
    if value is None or value == []:
        return 0
    return None


def _item(rec: Any, file: str, line: int, split: str) -> QAItem:
    def bad(field: str, msg: str) -> InputError:
        return InputError(msg, file=file, record=f"line {line}", field=field)

    if not isinstance(rec, dict):
        raise InputError("expected a JSON object", file=file, record=f"line {line}")
    for key in ("questionText", "category", "asin"):
        if not isinstance(rec.get(key), str):
            raise bad(key, "missing or not a string")
    snippets = rec.get("review_snippets", [])
    if not isinstance(snippets, list) or not all(isinstance(s, str) for s in snippets):
        raise bad("review_snippets", "must be a list of strings")
    answers_raw = rec.get("answers", [])
    if not isinstance(answers_raw, list):
        raise bad("answers", "must be a list")
    answers = []
    for i, ans in enumerate(answers_raw):
        if not isinstance(ans, dict) or not isinstance(ans.get("answerText"), str):
            raise bad(f"answers[{i}].answerText", "missing or not a string")
        votes = _votes(ans.get("helpful"))
        if votes is None:
            raise bad(f"answers[{i}].helpful", "must be [up_votes, total_votes] or an integer")
        answers.append((ans["answerText"], votes))
    qtype = rec.get("questionType")
    if qtype is not None and not isinstance(qtype, str):
        raise bad("questionType", "must be a string")
    ans_flag = rec.get("is_answerable")
    if not isinstance(ans_flag, bool | int) or ans_flag not in (0, 1):
        raise bad("is_answerable", "must be true/false (or 1/0)")
    return QAItem(
        file=file,
        line=line,
        split=split,
        asin=rec["asin"],
        category=rec["category"],
        question=rec["questionText"],
        question_type=qtype or "",
        snippets=tuple(snippets),
        answers=tuple(answers),
        is_answerable=bool(ans_flag),
    )


def iter_amazonqa(path: Path, split: str) -> Iterator[QAItem]:
    """Stream validated items from one ``*-qar.jsonl[.gz]`` file; a file without items is an error
    (it is present, so the tasks reading it expect its questions)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    n = 0
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"malformed JSON: {exc.msg}", file=str(path), record=f"line {line_no}"
                    ) from exc
                n += 1
                yield _item(rec, str(path), line_no, split)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", file=str(path)) from exc
    if n == 0:
        raise InputError("no questions in the file (empty source)", file=str(path))


def read_amazonqa(raw_dir: Path) -> list[QAItem]:
    """Every item of every split file present, in (split, line) order; empty when absent."""
    return [item for split, path in amazonqa_files(raw_dir).items() for item in iter_amazonqa(path, split)]
