"""Parsers from raw model text to structured answers, shared by the task modules.

Every parser takes ``(text, sample, lenient)`` and returns an answer or :class:`Invalid`; it
must never raise (``Task.parse`` also guards against bugs). Two levels, because a score must say
how generous its reading was:

- strict (default) accepts what a well-formed answer looks like, which includes every gold
  output form (``yes``, ``A``, ``B: positive``, ``B,A,C``, a JSON list), case-insensitive where
  case carries no meaning (yes/no) and exact where it does (option letters);
- ``lenient`` also digs the answer out of chatter: ``Answer: B.``, ``(B)``, ``Yes, it is.``,
  an option's text alone, ``B > A > C``, a JSON list inside a code fence or written as a
  Python literal.

The paper-mode readings of the reference evaluator are deliberately *not* here: they live in
``ecellm.evaluate.paper`` because they reproduce defects, not a format.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from ecellm.tasks.base import Invalid

_LEAD = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+|correct\s+|best\s+)?(?:answer|output|response|option|choice|label|ranking)"
    r"\s*(?:is|would be)?\s*[:\-=]?\s*",
    re.I,
)
# a capital standing alone (not next to another ASCII letter) is captured; longer runs and lone
# lower-case letters match without capturing, so findall yields "" for them (no look-arounds: faster)
_LONE_CAPITAL = re.compile(r"[A-Za-z]{2,}|([A-Z])|[a-z]")
_RANKING = re.compile(r"[A-Z](?:\s*,\s*[A-Z])*")
MAX_LITERAL_CHARS = 20_000  # Python's parser is slow on long text; real AVE answers are < 2 kB
MAX_DEPTH = 64  # deeper answers are invalid: no task answer nests, and scorers recurse


def valid_unicode(text: str) -> str:
    """``text`` with lone surrogates (JSON ``"\\ud800"`` escapes) replaced by U+FFFD, so tokenizers and
    encoders downstream never see a string they cannot encode; pairs become the real character."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _unfence(text: str) -> str:
    """The body of a markdown code fence (```json ... ```), else ``text``; linear time, unlike
    the lazy regex it replaces (quadratic on long whitespace runs)."""
    if len(text) < 6 or not (text.startswith("```") and text.endswith("```")):
        return text
    body = text[3:-3]
    i = 0
    while i < len(body) and body[i].isascii() and body[i].isalpha():
        i += 1
    return body[i:].strip()


def _ws(text: str) -> str:
    """Lower-case and collapse whitespace, for comparing option texts."""
    return " ".join(text.lower().split())


def _clean(text: str, lenient: bool) -> str:
    """Strip, and in lenient mode peel a leading "Answer:" and surrounding quotes or markdown."""
    t = text.strip()
    if lenient:
        t = _unfence(t)
        t = _LEAD.sub("", t, count=1).strip().strip("*\"'`").strip()
    return t


def _short(text: str) -> str:
    return repr(text.strip()[:40])


def parse_yes_no(text: str, sample: Any, lenient: bool) -> str | Invalid:
    """``yes`` or ``no`` (any case). Lenient: a leading yes/no word, e.g. ``Yes, it is.``."""
    t = _clean(text, lenient).lower()
    if t in ("yes", "no"):
        return t
    if lenient:
        m = re.match(r"^(yes|no)\b", t)
        if m:
            return m.group(1)
    return Invalid(f"expected 'yes' or 'no', got {_short(text)}")


def option_map(
    sample: Any, default_options: tuple[str, ...], default_letters: tuple[str, ...]
) -> dict[str, str]:
    """Letter -> option description for this sample (sample options win over the task's)."""
    opts = list(getattr(sample, "options", None) or []) or list(default_options)
    out: dict[str, str] = {}
    for o in opts:
        letter, _, desc = str(o).partition(":")
        letter = letter.strip()
        if len(letter) == 1:
            out[letter] = desc.strip()
    if not out:
        out = dict.fromkeys(default_letters, "")
    return out


def allowed_letters(sample: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    """The option letters a sample allows (its own options, else the task's letters)."""
    return tuple(option_map(sample, (), default))


def parse_letter(
    text: str, sample: Any, lenient: bool, letters: tuple[str, ...], options: tuple[str, ...] = ()
) -> str | Invalid:
    """One option letter.

    Strict: ``B``, ``B:`` or ``B: <text>`` where ``<text>`` is a prefix of option B's text (so
    ``B: positive`` and MPC's short ``A: exact`` pass, ``B: negative`` does not). Lenient also
    takes ``(B)``, ``B.``, ``B) positive``, ``Answer: B`` and an option's text on its own.
    """
    omap = option_map(sample, options, letters)
    t = _clean(text, lenient)
    m = re.match(r"^([A-Z])\s*(?::\s*(.*))?$", t, re.S)
    if m:
        letter, rest = m.group(1), m.group(2)
        if letter not in omap:
            return Invalid(f"letter {letter!r} is not an option ({''.join(omap)})")
        if not rest or not omap[letter] or _ws(omap[letter]).startswith(_ws(rest)) or lenient:
            return letter
        return Invalid(f"text after {letter}: does not match option {letter}: {_short(rest)}")
    if lenient:
        m = re.match(r"^[(\[]?([A-Z])(?:$|[\s:.)\],])", t)
        if m and m.group(1) in omap:
            return m.group(1)
        said = _ws(t.rstrip("."))
        hits = [k for k, v in omap.items() if v and _ws(v) == said]
        if len(hits) == 1:
            return hits[0]
    return Invalid(f"expected one option letter, got {_short(text)}")


def parse_ranking(text: str, sample: Any, lenient: bool, letters: tuple[str, ...]) -> list[str] | Invalid:
    """Letters best first joined by commas, e.g. ``B,A,C`` (spaces allowed around commas).

    Unknown or repeated letters are returned as written: deciding what they are worth is the
    scorer's job (strict mode ignores unknown letters and keeps the first of each duplicate).
    Lenient also reads ``B > A > C``, ``B A C`` and ``1. B 2. A``.
    """
    t = _clean(text, lenient)
    if "A" <= t[-1:] <= "Z" and _RANKING.fullmatch(t):  # the cheap test spares long non-answers
        return [p.strip() for p in t.split(",")]
    if lenient:
        found = list(filter(None, _LONE_CAPITAL.findall(t)))
        if found:
            return found
    return Invalid(f"expected letters joined by ',', got {_short(text)}")


def _json_safe(value: Any) -> Any | Invalid:
    """A parsed answer as JSON types (Python literals may hold sets, tuples, bytes and non-string
    keys), or :class:`Invalid` when it nests deeper than :data:`MAX_DEPTH`. Iterative, so no
    input can exhaust the stack; sets are sorted by their JSON text so the result is
    deterministic."""
    root: list[Any] = [None]
    stack: list[tuple[Any, list[Any] | dict[str, Any], Any, int]] = [(value, root, 0, 0)]
    pending_sets: list[list[Any]] = []
    while stack:
        val, parent, key, depth = stack.pop()
        if depth > MAX_DEPTH:
            return Invalid(f"answer nests deeper than {MAX_DEPTH} levels")
        if isinstance(val, dict):
            out: Any = {}
            for k, v in val.items():
                name = (
                    k
                    if isinstance(k, str)
                    else json.dumps(k)
                    if isinstance(k, int | float | bool)
                    else str(k)
                )
                out[name] = None
                stack.append((v, out, name, depth + 1))
        elif isinstance(val, list | tuple | set | frozenset):
            out = [None] * len(val)
            for i, v in enumerate(val):
                stack.append((v, out, i, depth + 1))
            if isinstance(val, set | frozenset):
                pending_sets.append(out)
        elif isinstance(val, bytes):
            out = val.decode("utf-8", "replace")
        elif isinstance(val, complex):
            out = str(val)
        else:
            out = val
        parent[key] = out
    for items in reversed(pending_sets):  # innermost first: their members are final by then
        items.sort(key=lambda v: json.dumps(v, sort_keys=True))
    return root[0]


def parse_json_list(text: str, sample: Any, lenient: bool) -> list[Any] | Invalid:
    """A JSON list (AVE). Items are returned as parsed, even non-objects, so that a strict scorer
    can count them as wrong predictions. Lenient also accepts a code fence, the span from the
    first ``[`` to the last ``]``, a single object and a Python literal (converted to JSON types,
    up to :data:`MAX_LITERAL_CHARS`). Linear time in the text; answers nested deeper than
    :data:`MAX_DEPTH` are invalid."""
    t = text.strip()
    candidates = [t]
    if lenient:
        t2 = _unfence(t)
        candidates.append(t2)
        start, end = t2.find("["), t2.rfind("]")
        if 0 <= start < end:
            candidates.append(t2[start : end + 1])
    loaders = (json.loads, ast.literal_eval) if lenient else (json.loads,)
    for c in dict.fromkeys(candidates):
        for loader in loaders:
            if loader is ast.literal_eval and len(c) > MAX_LITERAL_CHARS:
                continue  # JSON of any length is read; a Python literal only up to the cap
            try:
                val = loader(c)
            except Exception:  # SyntaxError, ValueError, RecursionError, MemoryError
                continue
            if lenient and isinstance(val, dict):
                val = [val]
            if isinstance(val, list):
                return _json_safe(val)
    return Invalid("not a JSON list")


def braceless(output: str) -> str:
    """An AVE answer without ``{``/``}``: the Flan-T5 target (T5's vocabulary has no braces, so a
    JSON target would teach it to emit unknown tokens that decode to nothing). Items stay
    separated by ``, "attribute"``, which :func:`parse_braceless` splits on."""
    return output.replace("{", "").replace("}", "")


def parse_braceless(text: str, sample: Any = None, lenient: bool = False) -> list[Any] | Invalid:
    """Read a braceless AVE answer (``["attribute": "color", "value": "red", "source": ...]``)
    back into a list of objects; a proper JSON list is returned as it is. Every item is kept (the
    reference's T5 evaluator kept only the last one, a defect not reproduced here)."""
    t = text.strip()
    try:
        val = json.loads(t)
        if isinstance(val, list):
            return val
    except json.JSONDecodeError:
        pass
    body = t.removeprefix("[").removesuffix("]").strip()
    items = []
    for piece in re.split(r',\s*(?="attribute")', body):
        piece = piece.strip().strip(",").strip()
        if not piece:
            continue
        try:
            items.append(json.loads("{" + piece + "}"))
        except json.JSONDecodeError:
            continue
    return items if items else Invalid("not a braceless attribute list")


def restore_braces(text: str) -> str:
    """A braceless AVE answer as the JSON list the evaluators read (unchanged when unreadable)."""
    got = parse_braceless(text)
    return json.dumps(got, ensure_ascii=False) if isinstance(got, list) else text


def parse_text(text: str, sample: Any, lenient: bool) -> str | Invalid:
    """Free text (AG): anything non-empty. Lenient peels a leading "Answer:"."""
    t = _clean(text, lenient)
    return t if t else Invalid("empty answer")


def render_answer(answer: Any, answer_kind: str) -> str:
    """Write a parsed answer back in its gold form (``B``, ``B,A``, JSON), so lenient extraction
    can feed the paper-mode scorers, which read text."""
    if answer_kind == "ranking":
        return ",".join(answer)
    if answer_kind == "attribute_values":
        return json.dumps(answer, ensure_ascii=False)
    return str(answer)
