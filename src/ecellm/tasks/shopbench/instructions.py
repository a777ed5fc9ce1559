"""Generic instruction/output records (JSONL, JSON array, parquet, CSV) as training rows.

The follow-up system trains on a CSV of prompts and answers beside ShopBench-style data, and
other instruction sets come as ``instruction`` / ``input`` / ``output`` records. Such a record
has no benchmark task and no metric, so it is read as a ShopBench *generation* row: the prompt
is the instruction (then the input on its own line when there is one) and the answer is the
output; at training time it is rendered exactly as a ShopBench question is (the system prompt,
the tokenizer's chat template when it has one). Columns ``input_field`` / ``output_field`` are
accepted as the prompt and the answer too, for CSV exports of ShopBench-style data (values are
text there, so they are not scored). Rows have no truth for scoring: they are training data.

Splits: a file named ``train``/``val``/``validation``/``test`` gives its rows that split; any
other file is training data. Ids are ``<file stem>-<0-based row, 6 digits>`` unless the file
has an ``id`` column. Errors name the file, the row (CSV and JSONL: the line) and the field.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ecellm.errors import InputError
from ecellm.io import iter_jsonl, read_json
from ecellm.tasks.shopbench import generation

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
SPLIT_OF_STEM = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_PAIRS = (("instruction", "output"), ("input_field", "output_field"))


def _columns(path: Path) -> list[str] | None:
    """The field names of the file's first record (JSON) or header (CSV, parquet)."""
    try:
        if path.suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as fh:
                return next(csv.reader(fh), None)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with path.open(encoding="utf-8") as fh:
            head = fh.read(1 << 16).lstrip()
        if head.startswith("["):
            data = read_json(path)
            first = data[0] if isinstance(data, list) and data else None
        else:
            first = json.loads(head.split("\n", 1)[0])
        return list(first) if isinstance(first, Mapping) else None
    except (OSError, UnicodeDecodeError, ValueError, InputError, StopIteration):
        return None
    except Exception:  # an unreadable parquet file is not ours to claim
        return None


def claims(path: Path) -> bool:
    """A file of prompt/answer records that is not ECInstruct: ECInstruct rows carry ``task`` (exports)
    or ``options`` (the reference layout's split files), generic instruction data carries neither."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        return False
    cols = _columns(path)
    if not cols or "task" in cols or "options" in cols:
        return False
    return any(a in cols and b in cols for a, b in _PAIRS)


def _records(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                yield f"line {reader.line_num}", row
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield f"row {i}", row
    elif path.read_text(encoding="utf-8").lstrip()[:1] == "[":
        for i, row in enumerate(read_json(path), start=1):
            yield f"record {i}", row
    else:
        for n, row in iter_jsonl(path):
            yield f"line {n}", row


def _text(row: Mapping[str, Any], key: str, file: str, loc: str, required: bool) -> str:
    value = row.get(key)
    if value is None or value == "":
        if required:
            raise InputError("missing or empty", file=file, record=loc, field=key)
        return ""
    if not isinstance(value, str):
        raise InputError(f"expected text, got {type(value).__name__}", file=file, record=loc, field=key)
    return value


def read_rows(path: str | Path) -> list[tuple[dict[str, Any], str, str]]:
    """``(row, file, record locator)`` per record, as the loaders' rows (see the module docstring)."""
    p = Path(path)
    file, split = str(p), SPLIT_OF_STEM.get(p.stem, "train")
    out = []
    for index, (loc, row) in enumerate(_records(p)):
        if not isinstance(row, Mapping):
            raise InputError("expected an object", file=file, record=loc)
        if "instruction" in row:
            prompt = _text(row, "instruction", file, loc, True)
            extra = _text(row, "input", file, loc, False)
            prompt = f"{prompt}\n{extra}" if extra else prompt
            answer = _text(row, "output", file, loc, True)
        else:
            prompt = _text(row, "input_field", file, loc, True)
            answer = _text(row, "output_field", file, loc, True)
        rid = row.get("id")
        out.append(
            (
                {
                    "id": str(rid) if rid not in (None, "") else f"{p.stem}-{index:06d}",
                    "task": generation.TASK.abbr,
                    "setting": "instruction",
                    "split": split,
                    "instruction": prompt,
                    "input": "",
                    "options": [],
                    "output": answer,
                    "meta": {"format": "instruction", "source": p.name},
                },
                file,
                loc,
            )
        )
    return out
