"""AmazonQA: the fixture, bad rows and malformed JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.conftest import FIXTURES

from ecellm.data.readers.amazonqa import iter_amazonqa, read_amazonqa
from ecellm.errors import InputError

FIX = FIXTURES / "raw_b"



def test_amazonqa_fixture() -> None:
    items = read_amazonqa(FIX)
    assert [i.split for i in items].count("train") == 6 and len(items) == 12
    blender = next(i for i in items if i.asin == "B000KTCH02")
    assert blender.best_answer() == "About as loud as a vacuum cleaner."  # 7 up-votes beat 2
    toaster = next(i for i in items if i.asin == "B000KTCH05")
    assert toaster.best_answer() == "About two minutes on a medium setting."  # empty answer skipped
    assert sum(i.is_answerable for i in items) == 9


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"asin": "B1", "category": "X", "questionText": "q", "is_answerable": "yes"}, "is_answerable"),
        (
            {
                "asin": "B1",
                "category": "X",
                "questionText": "q",
                "is_answerable": True,
                "answers": [{"x": 1}],
            },
            "answers[0].answerText",
        ),
        ({"asin": "B1", "category": "X", "is_answerable": True}, "questionText"),
    ],
)
def test_amazonqa_bad_rows_name_line_and_field(tmp_path: Path, line: dict, field: str) -> None:
    p = tmp_path / "train-qar.jsonl"
    good = {"asin": "B0", "category": "X", "questionText": "ok?", "is_answerable": False}
    p.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"record line 2.*field '{re.escape(field)}'"):
        list(iter_amazonqa(p, "train"))


def test_amazonqa_malformed_json(tmp_path: Path) -> None:
    p = tmp_path / "val-qar.jsonl"
    p.write_text('{"asin": \n', encoding="utf-8")
    with pytest.raises(InputError, match="record line 1.*malformed JSON"):
        list(iter_amazonqa(p, "val"))
