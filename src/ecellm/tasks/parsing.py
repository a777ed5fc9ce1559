"""Parsers from raw model text to structured answers, shared by the task modules.

Every parser takes ``(text, sample, lenient)`` and returns an answer or :class:`Invalid`; it
must never raise. Strict extraction accepts only what a well-formed answer looks like;
``lenient`` also digs the answer out of chatter ("Answer: B.", "Yes, it is.").
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from ecellm.tasks.base import Invalid

_LEAD = re.compile(r"^\s*(?:the\s+)?(?:final\s+)?(?:answer|output|response|option|choice)\s*(?:is)?\s*[:\-]?\s*", re.I)


def _clean(text: str, lenient: bool) -> str:
    t = text.strip()
    if lenient:
        t = _LEAD.sub("", t).strip().strip("*\"'`").strip()
    return t


def parse_yes_no(text: str, sample: Any, lenient: bool) -> str | Invalid:
    t = _clean(text, lenient).lower()
    if t in ("yes", "no"):
        return t
    if lenient:
        m = re.match(r"^(yes|no)\b", t)
        if m:
            return m.group(1)
    return Invalid(f"expected 'yes' or 'no', got {text.strip()[:40]!r}")


def allowed_letters(sample: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    opts = getattr(sample, "options", None) or []
    if opts:
        return tuple(o.split(":", 1)[0].strip() for o in opts)
    return default


def parse_letter(text: str, sample: Any, lenient: bool, letters: tuple[str, ...]) -> str | Invalid:
    """One option letter: ``B``, ``B:``, ``B: positive`` or (lenient) ``(B)``, ``Answer: B.``."""
    allowed = allowed_letters(sample, letters)
    t = _clean(text, lenient)
    if lenient:
        t = t.lstrip("([").strip()
    m = re.match(r"^([A-Za-z])(?:$|[\s:.)\]])", t)
    if not m or m.group(1).upper() != m.group(1):
        return Invalid(f"expected one option letter, got {text.strip()[:40]!r}")
    letter = m.group(1)
    if letter not in allowed:
        return Invalid(f"letter {letter!r} is not an option ({''.join(allowed)})")
    return letter


def parse_ranking(text: str, sample: Any, lenient: bool, letters: tuple[str, ...]) -> list[str] | Invalid:
    """A comma-separated list of option letters, e.g. ``B,A,C``."""
    t = _clean(text, lenient)
    parts = [p.strip() for p in t.split(",")]
    out: list[str] = []
    for p in parts:
        m = re.match(r"^([A-Z])\b", p)
        if not m:
            return Invalid(f"ranking item {p[:20]!r} is not a letter")
        out.append(m.group(1))
    if not out:
        return Invalid("empty ranking")
    return out


def parse_json_list(text: str, sample: Any, lenient: bool) -> list[dict[str, Any]] | Invalid:
    """A JSON list of objects (AVE). Lenient mode also tries the first ``[...]`` span and Python repr."""
    t = text.strip()
    candidates = [t]
    if lenient:
        m = re.search(r"\[.*\]", t, re.S)
        if m:
            candidates.append(m.group(0))
    for c in candidates:
        for loader in (json.loads, ast.literal_eval) if lenient else (json.loads,):
            try:
                val = loader(c)
            except Exception:
                continue
            if isinstance(val, dict):
                val = [val]
            if isinstance(val, list) and all(isinstance(v, dict) for v in val):
                return val
    return Invalid("not a JSON list of objects")


def parse_text(text: str, sample: Any, lenient: bool) -> str | Invalid:
    t = text.strip()
    return t if t else Invalid("empty answer")
