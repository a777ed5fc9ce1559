"""MAVE attribute records: real rows and bad offsets."""

from __future__ import annotations

import json
import shutil

import pytest
from tests.conftest import FIXTURES

from ecellm.data.readers.mave import mave_files, read_mave
from ecellm.errors import InputError

FIX = FIXTURES / "raw_a"


def test_real_mave(raw_dir):
    pos, neg = mave_files(raw_dir)
    positives, negatives = list(read_mave(pos)), list(read_mave(neg))
    assert (len(positives), len(negatives)) == (9811, 1942)
    assert all(not a["evidences"] for r in negatives for a in r["attributes"])
    assert len({r["id"] for r in positives} | {r["id"] for r in negatives}) == 1943
    ev = positives[0]["attributes"][0]["evidences"][0]
    text = positives[0]["paragraphs"][ev["pid"]]["text"]
    assert text[ev["begin"] : ev["end"]] == ev["value"] == "Ellie Shoes"


def test_mave_bad_offsets(tmp_path):
    src = FIX / "mave"
    shutil.copytree(src, tmp_path / "mave")
    bad = json.loads((src / "mave_positives.jsonl").read_text().splitlines()[0])
    bad["attributes"][0]["evidences"][0]["pid"] = 5
    with (tmp_path / "mave" / "mave_positives.jsonl").open("a") as fh:
        fh.write(json.dumps(bad) + "\n")
    with pytest.raises(InputError, match=r"mave_positives.jsonl, record 4, field 'evidences.pid'"):
        list(read_mave(mave_files(tmp_path)[0]))
