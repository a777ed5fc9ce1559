"""Reader for the Leipzig Amazon-GoogleProducts entity-resolution benchmark.

Official files: ``Amazon.csv`` (id, title, description, manufacturer, price),
``GoogleProducts.csv`` (id, name, description, manufacturer, price) and the perfect mapping
``Amzon_GoogleProducts_perfectMapping.csv`` (idAmazon, idGoogleBase; the misspelling is
official). The files are small (a few thousand rows), so the stdlib ``csv`` module suffices; the
original release is Windows-1252 while cleaned copies are UTF-8, so both decodings are tried.
Missing values come back as ``None`` -- never NaN, which is what broke the reference's JSON.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from ecellm.errors import InputError

SUBDIR = "amazon_google"
AMAZON = "Amazon.csv"
GOOGLE = "GoogleProducts.csv"
MAPPING = "Amzon_GoogleProducts_perfectMapping.csv"
MAPPING_ALIASES = (MAPPING, "Amazon_GoogleProducts_perfectMapping.csv")


def _base(raw_dir: Path) -> Path:
    raw_dir = Path(raw_dir)
    for base in (raw_dir / SUBDIR, raw_dir):
        if (base / AMAZON).exists():
            return base
    raise InputError(f"{AMAZON} not found", file=str(raw_dir / SUBDIR))


def _rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """``(line, row)`` pairs of a quoted CSV; the header must hold ``required`` columns."""
    if not path.exists():
        raise InputError("file not found", file=str(path))
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    for col in required:
        if col not in header:
            raise InputError("missing column", file=str(path), record=1, field=col)
    out = []
    for row in reader:
        line = reader.line_num
        if None in row:  # more cells than header columns
            raise InputError("row has more fields than the header", file=str(path), record=line)
        out.append((line, row))
    if not out:  # a header-only file would build PM from nothing, or without a single match
        raise InputError("no rows in the file (empty source)", file=str(path))
    return out


def _opt(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def parse_price(value: str | None) -> float | str | None:
    """A price as a float when numeric ("38.99"), the cleaned string otherwise ("13.99 gbp"), or None."""
    value = _opt(value)
    if value is None:
        return None
    try:
        num = float(value.replace(",", "").lstrip("$"))
    except ValueError:
        return value
    return num if math.isfinite(num) else None


def _products(path: Path, title_col: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line, row in _rows(path, ("id", title_col, "description", "manufacturer", "price")):
        pid = _opt(row["id"])
        if pid is None:
            raise InputError("missing value", file=str(path), record=line, field="id")
        if pid in out:
            raise InputError(f"duplicate id {pid!r}", file=str(path), record=line, field="id")
        out[pid] = {
            "id": pid,
            "title": row[title_col] or "",
            "description": _opt(row["description"]),
            "manufacturer": _opt(row["manufacturer"]),
            "price": parse_price(row["price"]),
            "line": line,
        }
    return out


def read_amazon(raw_dir: Path) -> dict[str, dict[str, Any]]:
    """Amazon products by id: ``{id, title, description, manufacturer, price, line}``."""
    return _products(_base(raw_dir) / AMAZON, "title")


def read_google(raw_dir: Path) -> dict[str, dict[str, Any]]:
    """Google products by id, with ``name`` exposed as ``title`` like the Amazon side."""
    return _products(_base(raw_dir) / GOOGLE, "name")


def read_mapping(raw_dir: Path) -> list[tuple[str, str]]:
    """The perfect mapping as sorted, de-duplicated ``(idAmazon, idGoogleBase)`` pairs."""
    base = _base(raw_dir)
    path = next((base / n for n in MAPPING_ALIASES if (base / n).exists()), base / MAPPING)
    pairs = set()
    for line, row in _rows(path, ("idAmazon", "idGoogleBase")):
        a, g = _opt(row["idAmazon"]), _opt(row["idGoogleBase"])
        if a is None or g is None:
            raise InputError(
                "missing value",
                file=str(path),
                record=line,
                field="idAmazon" if a is None else "idGoogleBase",
            )
        pairs.add((a, g))
    return sorted(pairs)


def source_files(raw_dir: Path) -> list[Path]:
    """The three files read (for checksums in the manifest)."""
    base = _base(raw_dir)
    mapping = next((base / n for n in MAPPING_ALIASES if (base / n).exists()), base / MAPPING)
    return [base / AMAZON, base / GOOGLE, mapping]
