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


def read_reviews(path: Path) -> Iterator[dict[str, Any]]:
    """Reviews with the fields builders need, typed and validated.

    ``overall`` becomes an int 1-5, ``unixReviewTime`` an int, missing ``reviewText`` /
    ``summary`` become ``""``. ``line`` is kept for provenance and error messages.
    """
    for line, obj in iter_json_lines(path):
        for field in ("reviewerID", "asin", "overall", "unixReviewTime"):
            if obj.get(field) in (None, ""):
                raise InputError("missing value", file=str(path), record=line, field=field)
        try:
            rating = float(obj["overall"])
            when = int(obj["unixReviewTime"])
        except (TypeError, ValueError) as exc:
            bad = "overall" if not isinstance(obj["overall"], int | float) else "unixReviewTime"
            raise InputError(f"not a number: {exc}", file=str(path), record=line, field=bad) from exc
        if rating not in (1.0, 2.0, 3.0, 4.0, 5.0):
            raise InputError(
                f"rating must be 1-5, got {obj['overall']!r}", file=str(path), record=line, field="overall"
            )
        yield {
            "reviewerID": str(obj["reviewerID"]),
            "asin": str(obj["asin"]),
            "overall": int(rating),
            "reviewText": obj.get("reviewText") or "",
            "summary": obj.get("summary") or "",
            "unixReviewTime": when,
            "line": line,
        }


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


def read_meta(path: Path) -> Iterator[dict[str, Any]]:
    """Product metadata rows with the fields builders need.

    List fields (``category``, ``description``, relations) default to ``[]``; ``similar_item``
    is parsed into a list of ASINs by :func:`parse_similar_item`. Titles are returned raw: the
    builders clean them (many Magazine titles are bare HTML fragments).
    """
    for line, obj in iter_json_lines(path):
        asin = obj.get("asin")
        if not isinstance(asin, str) or not asin:
            raise InputError("missing value", file=str(path), record=line, field="asin")
        cats = obj.get("category") or []
        desc = obj.get("description") or []
        if isinstance(desc, str):
            desc = [desc]
        if not isinstance(cats, list):
            raise InputError("expected a list", file=str(path), record=line, field="category")
        yield {
            "asin": asin,
            "title": obj.get("title") or "",
            "brand": obj.get("brand") or "",
            "category": [str(c) for c in cats],
            "description": [str(d) for d in desc],
            "price": obj.get("price") or "",
            "also_buy": _asin_list(obj.get("also_buy"), path, line, "also_buy"),
            "also_view": _asin_list(obj.get("also_view"), path, line, "also_view"),
            "similar_item": parse_similar_item(obj.get("similar_item")),
            "line": line,
        }


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
