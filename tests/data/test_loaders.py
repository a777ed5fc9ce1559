"""load_samples on every ECInstruct distribution, built here from the reference-layout fixture."""

from __future__ import annotations

import json

import pytest
from tests.conftest import FIXTURES

from ecellm.data.loaders import load_samples, normalize_options
from ecellm.errors import InputError
from ecellm.io import write_json, write_jsonl

FX = FIXTURES / "reference_layout"
REF_NAMES = {  # the reference's task spellings, typos included
    "PRP": "Product_Relation_Predicition",
    "PSI": "Product_Substitue_Identification",
}


@pytest.fixture(scope="module")
def ref_samples():
    return load_samples(FX)


def _ningLab_rows(samples):
    """Rows shaped like the HF export: task spelled as the reference, options as a string, no id."""
    rows = []
    for s in samples:
        opts = "" if not s.options else (repr(s.options) if s.task == "SR" else json.dumps(s.options))
        rows.append(
            {
                "instruction": s.instruction,
                "input": s.input,
                "options": opts,
                "output": s.output,
                "task": REF_NAMES.get(s.task, s.task),
                "setting": s.setting,
                "split": "validation" if s.split == "val" else s.split,
                "few_shot_example": "",
            }
        )
    return rows


def test_reference_layout(ref_samples):
    assert len(ref_samples) == 42
    by_id = {s.id: s for s in ref_samples}
    assert len(by_id) == 42
    s = by_id["PRP-IND_Diverse_Instruction-test-000003"]
    assert s.task == "PRP" and s.output == "C" and s.options[0].startswith("A: ")
    sr = by_id["SR-IND_Diverse_Instruction-test-000001"]  # options were a Python-repr string
    assert len(sr.options) == 20 and sr.options[19] == "T: item 1-t"
    q = [x for x in ref_samples if x.task == "QPR"]
    assert [x.meta["labels"] for x in q][5] == ["C", "S", "E"]
    assert {x.split for x in ref_samples} == {"train", "test"}


def test_reference_filters_are_alias_aware_and_ids_do_not_depend_on_them():
    got = load_samples(FX, tasks=["Product_Substitue_Identification", "sa"], splits="test")
    assert {s.task for s in got} == {"PSI", "SA"}
    only_ood = load_samples(FX, tasks="AVE", settings="OOD_Diverse_Instruction")
    assert [s.id for s in only_ood] == [
        "AVE-OOD_Diverse_Instruction-test-000000",
        "AVE-OOD_Diverse_Instruction-test-000001",
    ]
    assert load_samples(FX, tasks="PM", splits="train")[0].output == "no"
    single = load_samples(FX / "ECInstruct" / "Product_Matching" / "IND_Diverse_Instruction" / "test.json")
    assert [s.id for s in single] == [f"PM-IND_Diverse_Instruction-test-{i:06d}" for i in range(5)]


def test_hf_style_exports_json_jsonl_parquet(ref_samples, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _ningLab_rows(ref_samples)
    write_json(tmp_path / "ec.json", rows)
    write_jsonl(tmp_path / "ec.jsonl", rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "ec.parquet")
    for name in ("ec.json", "ec.jsonl", "ec.parquet"):
        got = load_samples(tmp_path / name)
        assert [s.id for s in got] == [s.id for s in ref_samples], name
        assert [(s.task, s.options, s.output) for s in got] == [
            (s.task, s.options, s.output) for s in ref_samples
        ]
    sub = load_samples(tmp_path / "ec.parquet", tasks="SR", splits="test")
    assert [s.id for s in sub] == [f"SR-IND_Diverse_Instruction-test-{i:06d}" for i in range(3)]


def test_datasets_save_to_disk_folder(ref_samples, tmp_path):
    import datasets

    rows = _ningLab_rows(ref_samples)
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "hf"))
    got = load_samples(tmp_path / "hf", tasks="QPR")
    assert len(got) == 7 and "labels" not in got[0].meta
    with_labels = load_samples(
        tmp_path / "hf",
        tasks="QPR",
        qpr_labels=FX / "ECInstruct" / "Query_Product_Ranking" / "IND_Diverse_Instruction" / "label.json",
    )
    assert with_labels[6].meta["labels"] == ["E", "S", "C", "I"]


def test_build_folder_and_ecellm_jsonl(ref_samples, tmp_path):
    build = tmp_path / "build"
    write_json(build / "manifest.json", {"kind": "build"})
    for s in ref_samples:
        if s.task in ("PM", "SA"):
            f = build / "jsonl" / s.task / s.setting / f"{s.split}.jsonl"
            with f.open("a") if f.exists() else _new(f) as fh:
                fh.write(json.dumps(s.to_record()) + "\n")
    got = load_samples(build, splits="test")
    assert sorted(s.id for s in got) == sorted(
        s.id for s in ref_samples if s.task in ("PM", "SA") and s.split == "test"
    )
    one = load_samples(build / "jsonl" / "SA" / "IND_Diverse_Instruction" / "test.jsonl")
    assert one[0] == next(s for s in ref_samples if s.task == "SA")


def _new(f):
    f.parent.mkdir(parents=True, exist_ok=True)
    return f.open("w")


def test_normalize_options():
    assert normalize_options('["A: x", "B: y"]') == ["A: x", "B: y"]
    assert normalize_options("['A: it''s', 'B: y']") == ["A: its", "B: y"]
    assert normalize_options("") == [] and normalize_options(None) == []
    with pytest.raises(ValueError):
        normalize_options("A: x, B: y")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            '{"id": "a", "task": "PM", "instruction": "i", "input": "x", "output": "yes"}\n{bad\n',
            ["record 2", "malformed"],
        ),
        (
            '{"id": "a", "task": "Teleportation", "instruction": "i", "input": "x", "output": "y"}\n',
            ["record 1", "field 'task'", "unknown task"],
        ),
        ('{"id": "a", "task": "PM", "instruction": "i", "input": "x"}\n', ["record 1", "field 'output'"]),
        (
            '{"id": "a", "task": "PM", "split": "dev", "instruction": "i", "input": "x", "output": "y"}\n',
            ["record 1", "field 'split'"],
        ),
        (
            '{"id": "a", "task": "PM", "instruction": "i", "input": "x", "output": "y"}\n'
            '{"id": "a", "task": "PM", "instruction": "i", "input": "x", "output": "y"}\n',
            ["duplicate sample id"],
        ),
    ],
)
def test_errors_name_file_record_field(tmp_path, content, words):
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(InputError) as exc:
        load_samples(p)
    msg = str(exc.value)
    assert "bad.jsonl" in msg
    for w in words:
        assert w in msg, (w, msg)


def test_json_list_and_parquet_records_count_from_one(tmp_path):
    """The docs promise 1-based records; list items and parquet rows used to count from 0."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = {"id": "a", "task": "PM", "instruction": "i", "input": "x", "output": "yes"}
    bad = {**good, "id": "b", "task": "Teleportation"}
    (tmp_path / "s.json").write_text(json.dumps([good, bad]))
    with pytest.raises(InputError, match=r"s.json, record 2, field 'task'"):
        load_samples(tmp_path / "s.json")
    (tmp_path / "l.json").write_text(json.dumps([good, good, "not an object"]))
    with pytest.raises(InputError, match=r"l.json, record 3: expected a JSON object"):
        load_samples(tmp_path / "l.json")
    pq.write_table(pa.Table.from_pylist([good, {**good, "id": "c"}, bad]), tmp_path / "s.parquet")
    with pytest.raises(InputError, match=r"s.parquet, record 3, field 'task'"):
        load_samples(tmp_path / "s.parquet")


def test_missing_path_and_unreachable_hub_id(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="file not found"):
        load_samples(tmp_path / "nothing.jsonl")
    with pytest.raises(InputError, match="not a dataset folder"):
        load_samples(tmp_path)
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at import time, so also patch the loaded constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError, match="cannot load dataset"):
        load_samples("ecellm-tests/definitely-not-cached")
