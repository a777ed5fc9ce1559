"""Reader for MAVE-format attribute value extraction data (positives and negatives jsonl).

One product-attribute per line: ``{"id", "category", "paragraphs": [{"text", "source"}],
"attributes": [{"key", "evidences": [{"value", "pid", "begin", "end"}]}]}``; negatives carry
``evidences: []``. The official positives file is several GB, so lines are streamed and
validated one by one; every schema error names the file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ecellm.data.readers.amazon2018 import iter_json_lines
from ecellm.errors import InputError

SUBDIR = "mave"
POSITIVES = "mave_positives.jsonl"
NEGATIVES = "mave_negatives.jsonl"


def mave_files(raw_dir: Path) -> tuple[Path, Path | None]:
    """The positives file and (when present) the negatives file."""
    raw_dir = Path(raw_dir)
    for base in (raw_dir / SUBDIR, raw_dir):
        if (base / POSITIVES).exists():
            neg = base / NEGATIVES
            return base / POSITIVES, neg if neg.exists() else None
    raise InputError(f"{POSITIVES} not found", file=str(raw_dir / SUBDIR))


def _need(cond: bool, msg: str, path: Path, line: int, field: str) -> None:
    if not cond:
        raise InputError(msg, file=str(path), record=line, field=field)


def read_mave(path: Path) -> Iterator[dict[str, Any]]:
    """Validated MAVE lines, each with an added ``line`` number for provenance.

    Evidence offsets are checked against their paragraph (``pid`` in range, ``0 <= begin <=
    end <= len(text)``); whether ``text[begin:end]`` equals ``value`` is left to the builder,
    which counts mismatches rather than failing on a single noisy annotation.
    """
    path = Path(path)
    n = 0
    for line, obj in iter_json_lines(path):
        _need(isinstance(obj.get("id"), str) and obj["id"] != "", "missing id", path, line, "id")
        _need(isinstance(obj.get("category"), str), "missing category", path, line, "category")
        paras = obj.get("paragraphs")
        _need(isinstance(paras, list) and bool(paras), "expected a non-empty list", path, line, "paragraphs")
        for p in paras:
            ok = isinstance(p, dict) and isinstance(p.get("text"), str) and isinstance(p.get("source"), str)
            _need(ok, "each paragraph needs text and source strings", path, line, "paragraphs")
        attrs = obj.get("attributes")
        _need(isinstance(attrs, list) and bool(attrs), "expected a non-empty list", path, line, "attributes")
        for a in attrs:
            _need(
                isinstance(a, dict) and isinstance(a.get("key"), str) and a["key"] != "",
                "missing key",
                path,
                line,
                "attributes.key",
            )
            evs = a.get("evidences")
            _need(isinstance(evs, list), "expected a list", path, line, "attributes.evidences")
            for ev in evs:
                fields_ok = (
                    isinstance(ev, dict)
                    and isinstance(ev.get("value"), str)
                    and all(_is_int(ev.get(k)) for k in ("pid", "begin", "end"))
                )
                _need(fields_ok, "evidence needs value, pid, begin, end", path, line, "attributes.evidences")
                _need(
                    0 <= ev["pid"] < len(paras), f"pid {ev['pid']} out of range", path, line, "evidences.pid"
                )
                text = paras[ev["pid"]]["text"]
                _need(
                    0 <= ev["begin"] <= ev["end"] <= len(text),
                    "offsets outside the paragraph",
                    path,
                    line,
                    "evidences.begin",
                )
        n += 1
        yield {**obj, "line": line}
    if n == 0:  # an empty positives (or negatives) file would build a one-sided task
        raise InputError("no product-attribute lines in the file (empty source)", file=str(path))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
