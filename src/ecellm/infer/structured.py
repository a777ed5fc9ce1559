"""A constraint spec as a regular expression (vLLM) and as a GBNF grammar (llama.cpp).

Both texts are printed from one small pattern tree per spec (:func:`pattern`), so they describe
the same language by construction; the hf backend's character grammars
(:mod:`ecellm.infer.grammars`) are written separately for speed, and a property test checks all
three agree on sampled strings. The regex uses only what every structured-output engine reads
(literals, classes, ``|``, groups, ``? * + {m,n}``; no lookaround, no backreferences); the GBNF
uses llama.cpp's syntax (``{m,n}`` needs llama.cpp from mid-2024, i.e. llama-cpp-python 0.3).

A ranking's regex lists every order (about e * n! alternatives, fine for QPR's four letters);
GBNF shares each "labels used so far" state as a rule. :func:`to_regex` refuses patterns longer
than :data:`MAX_REGEX` characters, and :func:`vllm_structured` then hands vLLM the GBNF grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from ecellm.tasks.constraints import (
    NONE,
    SEP,
    VALUE_EXCLUDED,
    AttributeValues,
    Constraint,
    NumberList,
    OneOf,
    Ranking,
)

MAX_REGEX = 200_000


# -- pattern tree ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Chars:
    """One character in (or, ``negate``, outside) inclusive code-point ``ranges``."""

    ranges: tuple[tuple[int, int], ...]
    negate: bool = False


@dataclass(frozen=True)
class Seq:
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Alt:
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Rep:
    part: Any
    lo: int
    hi: int | None  # None: unbounded


@dataclass(frozen=True)
class Ref:
    """A named sub-pattern: a GBNF rule of its own, inlined in the regex."""

    name: str
    body: Any


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _value_char(*also_excluded: str) -> Chars:
    """A character an attribute value may hold, minus ``also_excluded``."""
    return Chars(_merge([*VALUE_EXCLUDED, *((ord(c), ord(c)) for c in also_excluded)]), negate=True)


@cache
def pattern(spec: Constraint) -> Any:
    """The pattern tree of a spec."""
    if isinstance(spec, OneOf):
        return Alt(tuple(Lit(o) for o in spec.options))
    if isinstance(spec, NumberList):
        number = Rep(Chars(((ord("0"), ord("9")),)), 1, spec.max_digits)
        if spec.max_items == 1:
            return number
        return Seq((number, Rep(Seq((Lit(SEP), number)), 0, spec.max_items - 1)))
    if isinstance(spec, Ranking):
        return _ranking(spec, (), spec.length, {})
    if isinstance(spec, AttributeValues):
        return _attribute_values(spec)
    raise TypeError(f"not a constraint spec: {spec!r}")


def _ranking(spec: Ranking, used: tuple[int, ...], left: int, memo: dict[Any, Any]) -> Any:
    """Labels still to list after those at indices ``used`` (``left`` of them); one shared node
    per set of used labels."""
    if used in memo:
        return memo[used]
    alts = []
    for i, label in enumerate(spec.labels):
        if i in used:
            continue
        if left == 1:
            alts.append(Lit(label))
            continue
        now = tuple(sorted((*used, i)))
        rest = Ref("after-" + "-".join(map(str, now)), _ranking(spec, now, left - 1, memo))
        alts.append(Seq((Lit(label + SEP), rest)))
    memo[used] = Alt(tuple(alts))
    return memo[used]


def _attribute_values(spec: AttributeValues) -> Any:
    if not spec.attributes:
        return Lit("[]")
    char, first = _value_char(), _value_char(" ")
    mv = spec.max_value
    # a value other than "None": any length but four, or four characters that differ from it
    not_none = [Seq((first, Rep(char, 0, 2)))]
    if mv >= 5:
        not_none.append(Seq((first, Rep(char, 4, mv - 1))))
    not_none += [
        Seq((_value_char(" ", "N"), Rep(char, 3, 3))),
        Seq((Lit("N"), _value_char("o"), Rep(char, 2, 2))),
        Seq((Lit("No"), _value_char("n"), char)),
        Seq((Lit("Non"), _value_char("e"))),
    ]
    then_source = Lit('", "source": "')
    if spec.sources:
        body = Alt(
            (
                Lit(f'{NONE}", "source": "{NONE}'),
                Seq((Ref("value", Alt(tuple(not_none))), then_source, Alt(tuple(map(Lit, spec.sources))))),
            )
        )
    else:  # no field names: every source is None
        body = Seq((Ref("value", Seq((first, Rep(char, 0, mv - 1)))), Lit(f'", "source": "{NONE}')))
    value_and_source = Ref("value-and-source", body)
    parts: list[Any] = [Lit("[")]
    for k, attr in enumerate(spec.attributes):
        lead = ", " if k else ""
        parts += [Lit(f'{lead}{{"attribute": "{attr}", "value": "'), value_and_source, Lit('"}')]
    parts.append(Lit("]"))
    return Seq(tuple(parts))


# -- regex ----------------------------------------------------------------------------------
_RE_META = set(".^$*+?()[]{}|\\/")


def _re_char(c: str, in_class: bool) -> str:
    o = ord(c)
    if o <= 0xFF and not c.isprintable():
        return f"\\x{o:02x}"
    if in_class and c in "\\]-[^":
        return "\\" + c
    if not in_class and c in _RE_META:
        return "\\" + c
    return c


def _re_class(ch: Chars) -> str:
    body = "".join(
        _re_char(chr(lo), True) if lo == hi else f"{_re_char(chr(lo), True)}-{_re_char(chr(hi), True)}"
        for lo, hi in ch.ranges
    )
    return "[" + ("^" if ch.negate else "") + body + "]"


def _quant(lo: int, hi: int | None) -> str:
    if (lo, hi) == (0, 1):
        return "?"
    if hi is None:
        return "*" if lo == 0 else "+" if lo == 1 else f"{{{lo},}}"
    return f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"


def _regex(node: Any) -> str:
    if isinstance(node, Ref):
        return _regex(node.body)
    if isinstance(node, Lit):
        return "".join(_re_char(c, False) for c in node.text)
    if isinstance(node, Chars):
        return _re_class(node)
    if isinstance(node, Seq):
        return "".join(_re_group(p) if isinstance(_unref(p), Alt) else _regex(p) for p in node.parts)
    if isinstance(node, Alt):
        return "|".join(_regex(p) for p in node.parts)
    if isinstance(node, Rep):
        inner = _unref(node.part)
        atom = _regex(inner)
        if not (isinstance(inner, Chars) or (isinstance(inner, Lit) and len(inner.text) == 1)):
            atom = f"({atom})"
        return atom + _quant(node.lo, node.hi)
    raise TypeError(node)


def _unref(node: Any) -> Any:
    while isinstance(node, Ref):
        node = node.body
    return node


def _re_group(node: Any) -> str:
    return f"({_regex(node)})"


@cache
def to_regex(spec: Constraint) -> str:
    """A regex whose full matches are exactly the answers ``spec`` allows (Python ``re`` syntax,
    which vLLM's structured-output engines read)."""
    longest = max(map(len, spec.labels)) if isinstance(spec, Ranking) else 0
    if isinstance(spec, Ranking) and _orders(len(spec.labels), spec.length) * (longest + 3) > MAX_REGEX:
        raise ValueError(f"a ranking of {len(spec.labels)} labels has too many orders for a regex")
    text = _regex(pattern(spec))
    if len(text) > MAX_REGEX:
        raise ValueError(f"{type(spec).__name__} needs a {len(text):,}-character regex; use the GBNF grammar")
    return text


def _orders(n: int, k: int) -> int:
    """Alternatives in a ranking's regex: the orders of 1..k of n labels."""
    total, term = 0, 1
    for i in range(k):
        term *= n - i
        total += term
    return total


# -- GBNF -----------------------------------------------------------------------------------
def _gbnf_char(c: str, in_class: bool) -> str:
    o = ord(c)
    if not c.isprintable():
        return f"\\x{o:02X}" if o <= 0xFF else f"\\u{o:04X}" if o <= 0xFFFF else f"\\U{o:08X}"
    if c in '"\\' or (in_class and c in "[]"):
        return "\\" + c
    if in_class and c in "-^":  # llama.cpp knows no "\-": spell them as hex
        return f"\\x{o:02X}"
    return c


def _gbnf(node: Any, rules: dict[str, str]) -> str:
    if isinstance(node, Ref):
        if node.name not in rules:
            rules[node.name] = ""  # reserve the name (and its place in the output order)
            rules[node.name] = _gbnf(node.body, rules)
        return node.name
    if isinstance(node, Lit):
        return '"' + "".join(_gbnf_char(c, False) for c in node.text) + '"'
    if isinstance(node, Chars):
        body = "".join(
            _gbnf_char(chr(lo), True) + ("" if lo == hi else "-" + _gbnf_char(chr(hi), True))
            for lo, hi in node.ranges
        )
        return "[" + ("^" if node.negate else "") + body + "]"
    if isinstance(node, Seq):
        return " ".join(_gbnf_atom(p, rules) for p in node.parts)
    if isinstance(node, Alt):
        return " | ".join(_gbnf(p, rules) for p in node.parts)
    if isinstance(node, Rep):
        return _gbnf_atom(node.part, rules) + _quant(node.lo, node.hi)
    raise TypeError(node)


def _gbnf_atom(node: Any, rules: dict[str, str]) -> str:
    text = _gbnf(node, rules)
    return f"({text})" if isinstance(node, Seq | Alt) else text


@cache
def to_gbnf(spec: Constraint) -> str:
    """A llama.cpp GBNF grammar (start rule ``root``, one rule per line) for ``spec``."""
    rules: dict[str, str] = {}
    root = _gbnf(pattern(spec), rules)
    return "\n".join([f"root ::= {root}", *(f"{name} ::= {body}" for name, body in rules.items())]) + "\n"


def vllm_structured(spec: Constraint) -> dict[str, str]:
    """vLLM's structured-output argument: ``{"regex": ...}``, or ``{"grammar": gbnf}`` when the
    regex would be too long (a ranking of many labels)."""
    try:
        return {"regex": to_regex(spec)}
    except ValueError:
        return {"grammar": to_gbnf(spec)}
