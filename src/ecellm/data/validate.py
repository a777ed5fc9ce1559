"""``ecellm data validate``: check a build folder before anyone trains or scores on it.

Checks: every JSONL line is a valid :class:`Sample` whose task/setting/split match its file;
every gold output is a valid answer of its task (the task parser accepts it); ids are unique
across the build; no val/test input (normalized as in the pipeline's leakage step) occurs in the
same task's train split; QPR rankings agree with ``meta["labels"]``; counts agree with the
manifest; every file the manifest lists exists; and the two other exports, ``ecinstruct.parquet``
and ``hf/``, hold exactly the JSONL samples (people train from whichever they load, so an export
that drifted is as bad as a broken JSONL line). Every problem names the file, the line (or
1-based row of an export) and the field.
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


@dataclass(frozen=True)
class Problem:
    """One validation failure; ``str()`` gives the one-line message."""

    file: str
    line: int | None
    field: str | None
    message: str
    unit: str = "line"  # "row" for the parquet and hf exports

    def __str__(self) -> str:
        return str(
            InputError(
                self.message,
                file=self.file,
                record=f"{self.unit} {self.line}" if self.line else None,
                field=self.field,
            )
        )


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
    exported: dict[str, tuple[str, dict[str, Any]]] = {}
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
            exported.setdefault(s.id, (where, export_row(s)))
            task = get_task(s.task)
            if isinstance(task.parse(s.output, s), Invalid):
                problems.append(
                    Problem(str(f), line, "output", f"gold output is not a valid {s.task} answer")
                )
            if task.answer_kind == "option" and s.output not in (s.options or list(task.options)):
                problems.append(Problem(str(f), line, "output", "gold output is not one of the options"))
            if task.check is not None and (bad := task.check(s)):
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
    problems.extend(_check_exports(root, exported))
    return problems


def export_row(s: Sample) -> dict[str, Any]:
    """A sample as the parquet and hf exports store it (meta as a JSON string)."""
    from ecellm.data.pipeline import COLUMNS, meta_json

    return {c: meta_json(s.meta) if c == "meta" else getattr(s, c) for c in COLUMNS}


def _compare_rows(
    file: str, rows: Any, expected: dict[str, tuple[str, dict[str, Any]]], split: str | None = None
) -> tuple[list[Problem], set[str]]:
    """Problems of one export's rows against the JSONL samples, and the ids it holds."""
    problems, ids = [], set()
    for i, row in enumerate(rows, start=1):
        rid = row.get("id")
        if rid in ids:
            problems.append(Problem(file, i, "id", f"duplicate id {rid!r}", "row"))
            continue
        ids.add(rid)
        if rid not in expected:
            problems.append(Problem(file, i, "id", f"id {rid!r} is in no JSONL file", "row"))
            continue
        where, want = expected[rid]
        if split is not None and want["split"] != split:
            problems.append(Problem(file, i, "split", f"a {want['split']!r} sample (see {where})", "row"))
            continue
        for col, value in want.items():
            got = row.get(col)
            if col == "options":
                got = list(got or [])
            if got != value:
                problems.append(Problem(file, i, col, f"differs from the JSONL sample at {where}", "row"))
                break
    return problems, ids


def _missing(file: str, expected: set[str], have: set[str]) -> list[Problem]:
    lost = sorted(expected - have)
    if not lost:
        return []
    return [Problem(file, None, "id", f"{len(lost)} JSONL sample(s) missing (first: {lost[0]!r})")]


def _check_exports(root: Path, expected: dict[str, tuple[str, dict[str, Any]]]) -> list[Problem]:
    """The parquet file and the hf DatasetDict against the JSONL samples."""
    out: list[Problem] = []
    pq_path = root / "ecinstruct.parquet"
    if not pq_path.is_file():
        out.append(Problem(str(pq_path), None, None, "the parquet export is missing"))
    else:
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(pq_path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a damaged file
            out.append(Problem(str(pq_path), None, None, f"unreadable parquet: {exc}"))
        else:
            found, ids = _compare_rows(str(pq_path), rows, expected)
            out += found + _missing(str(pq_path), set(expected), ids)
    hf = root / "hf"
    if not hf.is_dir():
        return [*out, Problem(str(hf), None, None, "the hf (datasets) export is missing")]
    import datasets

    try:
        dd = datasets.load_from_disk(str(hf))
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError, pyarrow errors...
        return [*out, Problem(str(hf), None, None, f"unreadable datasets folder: {exc}")]
    by_split: dict[str, set[str]] = {}
    for rid, (_, row) in expected.items():
        by_split.setdefault(row["split"], set()).add(rid)
    for split in sorted(set(by_split) | set(getattr(dd, "keys", lambda: [])())):
        file = f"{hf}[{split}]"
        if split not in dd:
            out.append(Problem(file, None, None, f"split {split!r} is missing"))
            continue
        found, ids = _compare_rows(file, dd[split].to_list(), expected, split)
        out += found + _missing(file, by_split.get(split, set()), ids)
    return out


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
    listed = manifest.get("files")
    if isinstance(listed, list):
        for rel in listed:
            if isinstance(rel, str) and not (root / rel).exists():
                out.append(Problem(str(mpath), None, "files", f"{rel} is listed but missing"))
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
