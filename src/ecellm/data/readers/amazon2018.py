"""Reader for Amazon Review Data (2018): 5-core reviews and product metadata.

The official files are one JSON object per line, usually gzip-compressed, and reach tens of GB
per category, so they are streamed line by line and only the fields the builders use are kept.
Both ``.json.gz`` and plain ``.json`` are accepted. Layout (README of ../shared/raw):
``amazon_reviews_2018/reviews/{Category}_5.json[.gz]`` and
``amazon_reviews_2018/meta/meta_{Category}.json[.gz]``.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ecellm.errors import InputError

SUBDIR = "amazon_reviews_2018"

REVIEW_FIELDS = ("reviewerID", "asin", "overall", "reviewText", "summary", "unixReviewTime")
META_FIELDS = (
    "asin",
    "title",
    "brand",
    "category",
    "description",
    "price",
    "also_buy",
    "also_view",
    "similar_item",
)

_ASIN_RE = re.compile(r"/dp/([A-Z0-9]{10})")
_BARE_ASIN_RE = re.compile(r"\b([A-Z0-9]{10})\b")


def _find(raw_dir: Path, kind: str, name: str) -> Path:
    """The first existing ``name`` (.json.gz, then .json) under the known layouts of ``raw_dir``."""
    raw_dir = Path(raw_dir)
    for base in (raw_dir / SUBDIR / kind, raw_dir / kind, raw_dir):
        for ext in (".json.gz", ".json"):
            p = base / f"{name}{ext}"
            if p.exists():
                return p
    raise InputError(f"{name}.json[.gz] not found", file=str(raw_dir / SUBDIR / kind))


def reviews_path(raw_dir: Path, category: str) -> Path:
    """Path of the 5-core review file of ``category``."""
    return _find(raw_dir, "reviews", f"{category}_5")


def meta_path(raw_dir: Path, category: str) -> Path:
    """Path of the metadata file of ``category``."""
    return _find(raw_dir, "meta", f"meta_{category}")


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-empty line of a ``.json`` or ``.json.gz`` file."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"malformed JSON line: {exc.msg}", file=str(path), record=i) from exc
                if not isinstance(obj, dict):
                    raise InputError("expected a JSON object", file=str(path), record=i)
                yield i, obj
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", file=str(path)) from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(obj: dict[str, Any], field: str, path: Path, line: int) -> str:
    """An optional text field: a string, or missing/null for ``""``; any other type is an error
    (a list would otherwise reach training inputs as its Python repr)."""
    value = obj.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(
            f"expected a string, got {type(value).__name__}", file=str(path), record=line, field=field
        )
    return value


def _empty(path: Path, what: str) -> InputError:
    return InputError(f"no {what} in the file (empty source)", file=str(path))


def read_reviews(path: Path) -> Iterator[dict[str, Any]]:
    """Reviews with the fields builders need, typed and validated.

    ``overall`` (a number 1-5) becomes an int, ``unixReviewTime`` must be an integer, the ids
    strings; missing ``reviewText`` / ``summary`` become ``""`` and any other type is an error.
    ``line`` is kept for provenance and error messages. A file without reviews is an error: a
    configured category that contributes nothing would silently shrink the task.
    """
    n = 0
    for line, obj in iter_json_lines(path):
        for field in ("reviewerID", "asin", "overall", "unixReviewTime"):
            if obj.get(field) in (None, ""):
                raise InputError("missing value", file=str(path), record=line, field=field)
        for field in ("reviewerID", "asin"):
            if not isinstance(obj[field], str):
                raise InputError(
                    f"expected a string, got {type(obj[field]).__name__}",
                    file=str(path),
                    record=line,
                    field=field,
                )
        if not _is_number(obj["overall"]):
            raise InputError(
                f"not a number: {obj['overall']!r}", file=str(path), record=line, field="overall"
            )
        when = obj["unixReviewTime"]
        if isinstance(when, bool) or not isinstance(when, int):
            raise InputError(f"not an integer: {when!r}", file=str(path), record=line, field="unixReviewTime")
        rating = float(obj["overall"])
        if rating not in (1.0, 2.0, 3.0, 4.0, 5.0):
            raise InputError(
                f"rating must be 1-5, got {obj['overall']!r}", file=str(path), record=line, field="overall"
            )
        n += 1
        yield {
            "reviewerID": obj["reviewerID"],
            "asin": obj["asin"],
            "overall": int(rating),
            "reviewText": _text(obj, "reviewText", path, line),
            "summary": _text(obj, "summary", path, line),
            "unixReviewTime": when,
            "line": line,
        }
    if n == 0:
        raise _empty(path, "reviews")


def _asin_list(value: Any, path: Path, line: int, field: str) -> list[str]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("expected a list of ASIN strings", file=str(path), record=line, field=field)
    return value


def parse_similar_item(value: Any) -> list[str]:
    """ASINs of the ``similar_item`` field.

    The official 2018 meta stores it as the HTML of Amazon's comparison table (links
    ``/dp/<ASIN>``), or ``""``; some re-distributions use a list of ASINs or of objects with an
    ``asin`` key. All forms are accepted; order of first appearance, no duplicates.
    """
    found: list[str] = []
    if isinstance(value, list):
        for v in value:
            if isinstance(v, dict):
                v = v.get("asin", "")
            if isinstance(v, str) and v.strip():
                found.append(v.strip())
    elif isinstance(value, str) and value.strip():
        found = _ASIN_RE.findall(value) or ([] if "<" in value else _BARE_ASIN_RE.findall(value))
    return list(dict.fromkeys(found))


def _str_list(value: Any, path: Path, line: int, field: str, *, allow_str: bool = False) -> list[str]:
    if value in (None, ""):
        return []
    if allow_str and isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("expected a list of strings", file=str(path), record=line, field=field)
    return value


def read_meta(path: Path) -> Iterator[dict[str, Any]]:
    """Product metadata rows with the fields builders need.

    List fields (``category``, ``description``, relations) default to ``[]`` and must hold
    strings; ``title`` / ``brand`` must be strings, ``price`` a string or a number; ``similar_item``
    (a string or a list) is parsed into a list of ASINs by :func:`parse_similar_item`. Titles are
    returned raw: the builders clean them (many Magazine titles are bare HTML fragments). A file
    without rows is an error.
    """
    n = 0
    for line, obj in iter_json_lines(path):
        asin = obj.get("asin")
        if not isinstance(asin, str) or not asin:
            raise InputError("missing value", file=str(path), record=line, field="asin")
        price = obj.get("price")
        if price is not None and not isinstance(price, str) and not _is_number(price):
            raise InputError("expected a string or a number", file=str(path), record=line, field="price")
        similar = obj.get("similar_item")
        if similar is not None and not isinstance(similar, str | list):
            raise InputError(
                "expected HTML text or a list", file=str(path), record=line, field="similar_item"
            )
        n += 1
        yield {
            "asin": asin,
            "title": _text(obj, "title", path, line),
            "brand": _text(obj, "brand", path, line),
            "category": _str_list(obj.get("category"), path, line, "category"),
            "description": _str_list(obj.get("description"), path, line, "description", allow_str=True),
            "price": price if price is not None else "",
            "also_buy": _asin_list(obj.get("also_buy"), path, line, "also_buy"),
            "also_view": _asin_list(obj.get("also_view"), path, line, "also_view"),
            "similar_item": parse_similar_item(similar),
            "line": line,
        }
    if n == 0:
        raise _empty(path, "product rows")


def load_meta(path: Path, clean: Any = None) -> tuple[dict[str, dict[str, Any]], int]:
    """Metadata by ASIN and the number of duplicate rows merged.

    The Magazine meta repeats about a thousand ASINs; the first row whose title is non-empty
    after ``clean`` (default: kept as is) wins, else the first row, so the choice does not depend
    on anything but file content.
    """
    out: dict[str, dict[str, Any]] = {}
    dups = 0
    for row in read_meta(path):
        prev = out.get(row["asin"])
        if prev is None:
            out[row["asin"]] = row
            continue
        dups += 1
        if clean is not None and not clean(prev["title"]) and clean(row["title"]):
            out[row["asin"]] = row
    return out, dups


def meta_title(row: dict[str, Any], fallback_words: int = 0) -> tuple[str, str]:
    """``(cleaned title, where it came from)`` of a meta row: ``"title"``, ``"description"`` or ``""``.

    Most Magazine_Subscriptions titles are bare HTML fragments that clean to nothing; their
    description, however, nearly always opens with the magazine's name ("REASON is edited for
    ..."). With ``fallback_words > 0`` the first that many words of the cleaned description
    stand in for an empty title, so that category can still serve as an OOD domain. With 0
    (the brief's strict rule) an empty title stays empty and the builder drops the item.
    """
    from ecellm.data.quality import clean_text, truncate_words

    title = clean_text(row.get("title"))
    if title:
        return title, "title"
    if fallback_words > 0:
        desc = clean_text(" ".join(row.get("description") or []))
        if desc:
            return truncate_words(desc, fallback_words), "description"
    return "", ""
