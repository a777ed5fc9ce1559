"""Text cleaning and the named quality-control steps every build runs.

Why a module of its own: the reference cleaned text ad hoc per notebook and used an unseeded
language detector, so the same raw data gave different datasets. Here cleaning is one function
(:func:`clean_text`) shared by all readers and builders, and quality control is a fixed, ordered
list of named steps (:data:`QUALITY_STEPS`), each returning the rows it kept and how many it
dropped, so the manifest and the quality report can say exactly what was removed and why.

Configuration is the ``quality:`` section of the build YAML; each step reads the sub-section with
its own name (``quality.near_duplicates.threshold`` ...), may be switched off with
``enabled: false`` and may be overridden per task with ``per_task: {SA: {...}}`` (per-task settings
win over step-level ones). Defaults are in :data:`DEFAULT_QUALITY`.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ecellm.data.builders.base import Draft

# ---------------------------------------------------------------------------------------------
# Cleaning
# ---------------------------------------------------------------------------------------------

# A tag starts with a letter, "/" or "!" right after "<" (so "a < b" survives); an unterminated
# tag runs to the end of the string -- the Magazine meta titles are such fragments
# ('<span class="a-size-medium a-color-secondary"'), which must clean to "".
_SCRIPT_RE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[A-Za-z/!][^<>]*(?:>|$)")
_WS_RE = re.compile(r"\s+")
_CONTROL_RE = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u200b-\u200d\ufeff]")


def clean_text(s: str | None) -> str:
    """Remove HTML tags and entities, apply unicode NFKC and collapse whitespace.

    ``None`` (a missing field) becomes ``""`` so callers can test emptiness once. Entities are
    unescaped twice because Amazon meta often double-escapes (``&amp;#39;``); tags revealed by
    unescaping (``&lt;b&gt;``) are removed as well. Idempotent: ``clean_text(clean_text(s)) ==
    clean_text(s)``, which lets the ``normalize_text`` step re-clean built drafts safely.
    """
    if s is None:
        return ""
    if not isinstance(s, str):
        s = str(s)
    for _ in range(3):  # entities can hide tags and further entities; stop when stable
        before = s
        s = _SCRIPT_RE.sub(" ", s)
        s = _TAG_RE.sub(" ", s)
        s = html.unescape(s)
        if s == before:
            break
    s = unicodedata.normalize("NFKC", s)
    s = _CONTROL_RE.sub("", s)
    return _WS_RE.sub(" ", s).strip()


_NON_ALNUM_RE = re.compile(r"[\W_]+", re.UNICODE)


def normalize_key(s: str | None) -> str:
    """Matching key for duplicate and leakage checks: cleaned, case-folded, punctuation-free."""
    return _NON_ALNUM_RE.sub(" ", clean_text(s).casefold()).strip()


def truncate_words(s: str, n: int) -> str:
    """The first ``n`` whitespace-separated words of ``s`` (builders cut descriptions and items)."""
    words = s.split()
    return s if len(words) <= n else " ".join(words[:n])


# ---------------------------------------------------------------------------------------------
# Draft text access
# ---------------------------------------------------------------------------------------------


def _parse_input(draft: Draft) -> Any:
    """The input as JSON when it is a JSON object/list (most tasks), else the raw string (SA)."""
    text = draft.input
    if text[:1] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _leaves(obj: Any) -> Iterator[str]:
    """Every string value in a parsed input (keys excluded: they are fixed field names)."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v)


def draft_texts(draft: Draft) -> list[str]:
    """The natural-language strings of a draft's input (JSON leaves, or the raw text)."""
    return list(_leaves(_parse_input(draft)))


def draft_key(draft: Draft) -> str:
    """Normalized identity of a draft for de-duplication: input and options, not the output.

    Two drafts with the same input but different outputs are contradictory, not distinct, so
    the output is left out on purpose.
    """
    return normalize_key(draft.input) + " || " + normalize_key(" | ".join(draft.options))


# ---------------------------------------------------------------------------------------------
# Step configuration
# ---------------------------------------------------------------------------------------------

DEFAULT_QUALITY: dict[str, dict[str, Any]] = {
    "normalize_text": {"enabled": True},
    "english_only": {
        "enabled": True,
        # language id is unreliable on short strings (gift-card titles such as "Maggiano's Gift Card"
        # score 1.0 Italian), so only fields with at least this many words are judged
        "min_words": 10,
        "min_confidence": 0.9,
        "languages": ["en"],
        "max_chars": 1000,
    },
    "length_limits": {
        "enabled": True,
        "min_input_chars": 1,
        "max_input_chars": 6000,
        "min_output_chars": 1,
        "max_output_chars": 2000,
    },
    "near_duplicates": {
        "enabled": True,
        "method": "exact",  # "exact" (normalized hash) or "shingles" (MinHash + Jaccard check)
        "threshold": 0.9,
        "shingle_words": 3,
    },
    "min_information": {
        "enabled": True,
        "min_alnum_chars": 2,
        # dotted paths into the JSON input that must be non-empty after cleaning; "*" = whole input
        # (each task declares its own in ``Task.quality``)
        "required": ["*"],
    },
}


def step_config(name: str, cfg: dict[str, Any] | None, task: str) -> dict[str, Any]:
    """Effective settings of step ``name`` for ``task``.

    Accepts either the whole ``quality:`` section (the step's sub-dict is picked) or the step's
    own sub-dict, so callers need not know which one they hold.
    """
    defaults = dict(DEFAULT_QUALITY.get(name, {}))
    user = cfg or {}
    if isinstance(user.get(name), dict):
        user = user[name]
    elif any(k in DEFAULT_QUALITY for k in user):  # whole section without this step: defaults
        user = {}
    user = dict(user)
    # the more specific setting wins: step-level defaults < user step-level < the task's own
    # (``Task.quality``) < user per-task (a config repeating ``enabled: true`` must not re-enable
    # a task's opt-out)
    out = {k: v for k, v in defaults.items() if k != "per_task"}
    out.update({k: v for k, v in user.items() if k != "per_task"})
    out.update(_task_quality(task).get(name, {}))
    out.update((user.get("per_task") or {}).get(task, {}))
    return out


def _task_quality(abbr: str) -> dict[str, dict[str, Any]]:
    """The quality settings a task declares (none for a name the registry does not know)."""
    from ecellm.tasks import get_task

    try:
        task = get_task(abbr)
    except KeyError:
        return {}
    # only the task of exactly this name: the registry also resolves aliases, and a build's own
    # task name (e.g. the shopping family's "query-product-ranking") may read as another
    # task's alias (QPR's "query product ranking") without being that task
    return task.quality if task.abbr == abbr else {}


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------


def _clean_leaves(obj: Any) -> Any:
    if isinstance(obj, str):
        return clean_text(obj)
    if isinstance(obj, dict):
        return {k: _clean_leaves(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean_leaves(v) for v in obj]
    return obj


def normalize_text(drafts: list[Draft], task: str, cfg: dict[str, Any]) -> tuple[list[Draft], int]:
    """HTML/entity removal and NFKC on every input string and option; drops nothing.

    Builders already clean their fields; this step guarantees it for any builder (including
    third-party ones) and is a no-op on clean drafts. JSON inputs are re-serialized only when a
    value actually changed, so builder formatting is preserved byte for byte otherwise.
    """
    c = step_config("normalize_text", cfg, task)
    if not c.get("enabled", True):
        return list(drafts), 0
    out = []
    for d in drafts:
        parsed = _parse_input(d)
        if isinstance(parsed, str):
            new_input = clean_text(parsed)
        else:
            cleaned = _clean_leaves(parsed)
            new_input = d.input if cleaned == parsed else json.dumps(cleaned, ensure_ascii=False)
        new_options = [clean_text(o) for o in d.options]
        if new_input != d.input or new_options != d.options:
            d = Draft(input=new_input, output=d.output, options=new_options, meta=d.meta)
        out.append(d)
    return out, 0


@functools.lru_cache(maxsize=1)
def _identifier() -> Any:
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """(language, normalized confidence) from langid's bundled model, deterministically.

    Same model and result as ``langid.classify`` but with a sparse dot product: langid's dense
    uint32 x float32 product copies its 7480x97 matrix on every call and is ~15x slower.
    """
    li = _identifier()
    fv = li.instance2fv(text)
    nz = np.flatnonzero(fv)
    pd = fv[nz].astype(np.float64) @ li.nb_ptc[nz].astype(np.float64) + li.nb_pc
    probs = li.norm_probs(pd)
    i = int(np.argmax(probs))
    return str(li.nb_classes[i]), float(probs[i])


def english_only(drafts: list[Draft], task: str, cfg: dict[str, Any]) -> tuple[list[Draft], int]:
    """Drop drafts whose long text fields are confidently not in an allowed language.

    Only fields with at least ``min_words`` words are judged (joined, cut to ``max_chars``);
    a draft with none is kept, because short titles and brand names fool any identifier.
    """
    c = step_config("english_only", cfg, task)
    if not c.get("enabled", True):
        return list(drafts), 0
    allowed = set(c["languages"])
    kept = []
    for d in drafts:
        long_fields = [t for t in draft_texts(d) if len(t.split()) >= c["min_words"]]
        if long_fields:
            lang, conf = detect_language(" ".join(long_fields)[: c["max_chars"]])
            if lang not in allowed and conf >= c["min_confidence"]:
                continue
        kept.append(d)
    return kept, len(drafts) - len(kept)


def length_limits(drafts: list[Draft], task: str, cfg: dict[str, Any]) -> tuple[list[Draft], int]:
    """Drop drafts whose input or output length (characters) is outside the configured bounds.

    Over-long inputs would be truncated by the 2,048-token training cutoff and lose the part
    the answer depends on; empty ones carry no task.
    """
    c = step_config("length_limits", cfg, task)
    if not c.get("enabled", True):
        return list(drafts), 0
    kept = [
        d
        for d in drafts
        if c["min_input_chars"] <= len(d.input) <= c["max_input_chars"]
        and c["min_output_chars"] <= len(d.output) <= c["max_output_chars"]
    ]
    return kept, len(drafts) - len(kept)


_MERSENNE = (1 << 61) - 1
_N_PERM = 32
_BANDS = 8


@functools.lru_cache(maxsize=1)
def _permutations() -> tuple[np.ndarray, np.ndarray]:
    """Fixed MinHash permutation parameters (seeded, so signatures never change between runs)."""
    rng = np.random.default_rng(20240131)
    a = rng.integers(1, 1 << 31, size=_N_PERM, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, size=_N_PERM, dtype=np.uint64)
    return a, b


def _shingles(text: str, k: int) -> set[str]:
    words = text.split()
    if len(words) <= k:
        return {" ".join(words)}
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


def _minhash(shingles: Iterable[str]) -> np.ndarray:
    # 31-bit stable hashes (blake2b, never Python's salted hash()) so products stay below 2**62
    h = np.array(
        [
            int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little") >> 1
            for s in shingles
        ],
        dtype=np.uint64,
    )
    a, b = _permutations()
    return ((a[:, None] * h[None, :] + b[:, None]) % np.uint64(_MERSENNE)).min(axis=1)


def near_duplicates(drafts: list[Draft], task: str, cfg: dict[str, Any]) -> tuple[list[Draft], int]:
    """Keep the first of each group of (near-)duplicate drafts, in input order.

    ``method: exact`` compares normalized input+options (:func:`draft_key`); ``method:
    shingles`` additionally drops a draft whose word-shingle Jaccard similarity with an earlier
    kept draft reaches ``threshold`` (MinHash banding proposes candidates, the exact Jaccard
    decides), which catches reviews that differ only by a word or punctuation.
    """
    c = step_config("near_duplicates", cfg, task)
    if not c.get("enabled", True):
        return list(drafts), 0
    seen: set[str] = set()
    kept: list[Draft] = []
    shingle_mode = c["method"] == "shingles"
    if c["method"] not in ("exact", "shingles"):
        raise ValueError(f"quality.near_duplicates.method must be 'exact' or 'shingles', got {c['method']!r}")
    buckets: dict[tuple[int, bytes], list[int]] = {}
    kept_shingles: list[set[str]] = []
    rows = _N_PERM // _BANDS
    for d in drafts:
        key = draft_key(d)
        if key in seen:
            continue
        if shingle_mode:
            sh = _shingles(key, int(c["shingle_words"]))
            sig = _minhash(sh)
            bands = [(i, sig[i * rows : (i + 1) * rows].tobytes()) for i in range(_BANDS)]
            candidates = sorted({j for band in bands for j in buckets.get(band, [])})
            if any(_jaccard(sh, kept_shingles[j]) >= c["threshold"] for j in candidates):
                continue
            for band in bands:
                buckets.setdefault(band, []).append(len(kept_shingles))
            kept_shingles.append(sh)
        seen.add(key)
        kept.append(d)
    return kept, len(drafts) - len(kept)


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _lookup(obj: Any, path: str) -> Any:
    if path == "*":
        return obj
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _informative(value: Any, min_alnum: int) -> bool:
    if value is None:
        return False
    if isinstance(value, list):
        return any(_informative(v, min_alnum) for v in value)
    if isinstance(value, dict):
        return any(_informative(v, min_alnum) for v in value.values())
    return sum(ch.isalnum() for ch in clean_text(str(value))) >= min_alnum


def min_information(drafts: list[Draft], task: str, cfg: dict[str, Any]) -> tuple[list[Draft], int]:
    """Drop drafts whose required fields are empty after cleaning (e.g. an HTML-fragment title).

    A field counts as informative when its cleaned text has at least ``min_alnum_chars``
    letters or digits; lists (QPR product list, AP documents) need one informative element.
    """
    c = step_config("min_information", cfg, task)
    if not c.get("enabled", True):
        return list(drafts), 0
    paths = c["required"]
    if isinstance(paths, dict):  # {task: [paths]} given at step level
        paths = paths.get(task, ["*"])
    kept = []
    for d in drafts:
        parsed = _parse_input(d)
        ok = all(_informative(_lookup(parsed, p), c["min_alnum_chars"]) for p in paths)
        if ok and _informative(d.output, 1):
            kept.append(d)
    return kept, len(drafts) - len(kept)


QualityStep = Callable[[list[Draft], str, dict[str, Any]], tuple[list[Draft], int]]

#: The steps in the order the pipeline runs them on every (task, domain, split) group.
QUALITY_STEPS: dict[str, QualityStep] = {
    "normalize_text": normalize_text,
    "min_information": min_information,
    "length_limits": length_limits,
    "english_only": english_only,
    "near_duplicates": near_duplicates,
}


def run_quality(
    drafts: list[Draft], task: str, cfg: dict[str, Any] | None = None
) -> tuple[list[Draft], dict[str, int]]:
    """Run every step of :data:`QUALITY_STEPS` in order; returns kept drafts and drops per step."""
    dropped: dict[str, int] = {}
    for name, step in QUALITY_STEPS.items():
        drafts, n = step(drafts, task, cfg or {})
        dropped[name] = n
    return drafts, dropped


def leakage_check(train: list[Draft], others: list[Draft]) -> list[Draft]:
    """``others`` (val or test drafts) without those whose normalized input occurs in ``train``.

    Compares the input only (not options or output): a test question seen verbatim in training
    is a leak whatever the candidates are. The caller counts ``len(others) - len(result)``.
    """
    train_keys = {normalize_key(d.input) for d in train}
    return [d for d in others if normalize_key(d.input) not in train_keys]
