"""Generic instruction/output records (JSONL, JSON, parquet, CSV) read as ShopBench training rows."""

from __future__ import annotations

import csv
import json

import pytest

from ecellm.data.loaders import load_samples
from ecellm.errors import InputError
from ecellm.tasks.registry import format_reader
from ecellm.tasks.shopbench import instructions


def _csv(path, header, rows):
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_csv_of_prompts_and_answers_loads_as_training_rows(tmp_path):
    path = _csv(tmp_path / "kdd.csv", ["instruction", "input", "output"],
                [["Name the brand.", "Query: cadbury buttons", "cadbury"], ["Say hi.", "", "hi, there"]])
    assert format_reader(path) is instructions
    samples = load_samples(path)
    assert [s.instruction for s in samples] == ["Name the brand.\nQuery: cadbury buttons", "Say hi."]
    assert [s.output for s in samples] == ["cadbury", "hi, there"]
    assert {s.split for s in samples} == {"train"} and samples[0].id == "kdd-000000"
    assert samples[0].meta["format"] == "instruction"


def test_shopbench_style_columns_jsonl_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"input_field": "Q1\nAnswer: ", "output_field": "2"}, {"input_field": "Q2", "output_field": "x"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "val.parquet")
    samples = load_samples(tmp_path / "val.parquet")
    assert [s.instruction for s in samples] == ["Q1\nAnswer: ", "Q2"]
    assert {s.split for s in samples} == {"val"}
    lines = [json.dumps({"id": f"r{i}", "instruction": f"I{i}", "output": "o"}) for i in range(3)]
    (tmp_path / "mix.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert [s.id for s in load_samples(tmp_path / "mix.jsonl")] == ["r0", "r1", "r2"]


def test_ecinstruct_rows_and_shopbench_records_are_not_claimed(tmp_path):
    eci = tmp_path / "eci.jsonl"
    eci.write_text(json.dumps({"task": "SA", "instruction": "i", "output": "o"}) + "\n", encoding="utf-8")
    assert not instructions.claims(eci)
    ref = tmp_path / "test.json"  # a reference-layout split file: instruction, input, options, output
    row = {"instruction": "i", "input": "x", "options": [], "output": "o"}
    ref.write_text(json.dumps([row]), encoding="utf-8")
    assert not instructions.claims(ref)
    shop = tmp_path / "dev.jsonl"
    shop.write_text(json.dumps({"input_field": "q", "output_field": 1, "metric": "accuracy",
                                "task_type": "multiple-choice"}) + "\n", encoding="utf-8")
    assert format_reader(shop) is not instructions


def test_missing_answer_names_file_line_and_field(tmp_path):
    path = _csv(tmp_path / "bad.csv", ["instruction", "output"], [["ok", "yes"], ["no answer", ""]])
    with pytest.raises(InputError) as e:
        load_samples(path)
    assert "bad.csv" in str(e.value) and "line 3" in str(e.value) and "output" in str(e.value)
