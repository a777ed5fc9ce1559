"""Decoding constraints: what a well-formed answer looks like, declared once per task.

A task's ``constraint`` (see :class:`ecellm.tasks.base.Task`) maps a sample to one of the spec
values below, or to ``None`` when the sample lacks what the constraint needs (the request is then
generated freely and says so in its mode). A task with no ``constraint`` answers in free text.
Every backend derives its own form from the same value, so they cannot drift apart:

- hf: a character grammar driving the logits processor (:func:`ecellm.infer.grammars.grammar_for`);
- vLLM: a regular expression (:func:`ecellm.infer.structured.to_regex`);
- llama.cpp: a GBNF grammar (:func:`ecellm.infer.structured.to_gbnf`);
- OpenAI-compatible servers: the regex or the GBNF grammar, where the server takes one (opt-in).

``tests/infer/test_structured.py`` checks, for every constrained task of the registry, that the
three accept and refuse the same sampled strings.

Specs are frozen dataclasses of plain strings and numbers, so they are hashable (backends cache
what they derive) and comparable in tests. Each also says how many new tokens an answer needs
(``budget``), since the hf backend forces the shortest completion when the budget runs out and
the budget must leave room for it. Adding a spec type means one class here plus its forms in
:mod:`ecellm.infer.grammars` and :mod:`ecellm.infer.structured` (the property test then covers it
once its answer sampler knows it).
"""

from __future__ import annotations

from dataclasses import dataclass

# Characters an attribute value may not contain, as inclusive code-point ranges: the JSON quote
# and backslash (a value is written unescaped), control characters, every Unicode space but " ",
# line and paragraph separators, invisible format characters and non-characters.
# An explicit list rather than ``str.isprintable`` so that a regex and a GBNF character class can
# say exactly the same thing.
VALUE_EXCLUDED: tuple[tuple[int, int], ...] = (
    (0x00, 0x1F),
    (0x22, 0x22),  # "
    (0x5C, 0x5C),  # backslash
    (0x7F, 0xA0),
    (0xAD, 0xAD),
    (0x1680, 0x1680),
    (0x180E, 0x180E),
    (0x2000, 0x200F),
    (0x2028, 0x202F),
    (0x205F, 0x206F),
    (0x3000, 0x3000),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0xFFFE, 0xFFFF),
)
NONE = "None"  # the value and source of an attribute the text does not mention
SEP = ","  # joins ranked labels and listed numbers, without spaces


@dataclass(frozen=True)
class OneOf:
    """Exactly one of ``options`` (ShopBench multiple choice: one listed option number)."""

    options: tuple[str, ...]

    def __post_init__(self) -> None:
        _check(bool(self.options) and all(self.options), "OneOf needs non-empty option strings")

    def budget(self, minimum: int) -> int:
        return minimum


@dataclass(frozen=True)
class Ranking:
    """``count`` distinct ``labels`` joined by ``","``, no spaces; all of them when ``count`` is
    ``None`` (QPR: ``B,A,C``). Labels may be several characters (``"12"``)."""

    labels: tuple[str, ...]
    count: int | None = None

    def __post_init__(self) -> None:
        _check(bool(self.labels) and all(self.labels), "Ranking needs non-empty labels")
        _check(len(set(self.labels)) == len(self.labels), "Ranking labels must be distinct")
        _check(not any(SEP in x for x in self.labels), f"Ranking labels cannot contain {SEP!r}")
        _check(self.count is None or 1 <= self.count <= len(self.labels), "Ranking count out of range")

    @property
    def length(self) -> int:
        """How many labels an answer lists."""
        return len(self.labels) if self.count is None else self.count

    def budget(self, minimum: int) -> int:
        """Room for every label and comma, plus two tokens of slack."""
        shortest = sorted(len(x) for x in self.labels)[: self.length]
        return max(minimum, sum(shortest) + self.length + 1)


@dataclass(frozen=True)
class NumberList:
    """1 to ``max_items`` numbers of 1 to ``max_digits`` ASCII digits joined by ``","``
    (ShopBench ranking and retrieval as the reference runner's cleaning reads them)."""

    max_items: int = 16
    max_digits: int = 3

    def __post_init__(self) -> None:
        _check(self.max_items >= 1 and self.max_digits >= 1, "NumberList needs max_items, max_digits >= 1")

    def budget(self, minimum: int) -> int:
        return minimum


@dataclass(frozen=True)
class AttributeValues:
    """A JSON list with one ``{"attribute", "value", "source"}`` object per target attribute, in
    target order, laid out exactly as ``json.dumps`` writes gold answers (AVE).

    ``source`` is one of ``sources`` (the sample's field names), or ``"None"`` when the value is
    ``"None"`` or the sample names no fields. A value is 1 to ``max_value`` characters, does not
    start with a space and contains none of :data:`VALUE_EXCLUDED`. One item per attribute: a
    grammar that allows repeats lets a small model loop on one attribute until the budget runs
    out, which costs far more than the rare second gold value.
    """

    attributes: tuple[str, ...]
    sources: tuple[str, ...] = ()
    max_value: int = 48

    def __post_init__(self) -> None:
        for name in (*self.attributes, *self.sources):
            _check(name_ok(name), f"attribute or source name {name!r} is empty or needs JSON escapes")
        _check(self.max_value >= len(NONE), f"max_value must be at least {len(NONE)}")

    def budget(self, minimum: int) -> int:
        """Room for the all-``None`` answer (forced when the budget runs low) plus about eight
        tokens per value."""
        return max(minimum, len(self.shortest()) + 8 * len(self.attributes))

    def shortest(self) -> str:
        """The shortest answer: every attribute with value and source ``None``."""
        items = [f'{{"attribute": "{a}", "value": "{NONE}", "source": "{NONE}"}}' for a in self.attributes]
        return "[" + ", ".join(items) + "]"


Constraint = OneOf | Ranking | NumberList | AttributeValues


def value_char_ok(ch: str) -> bool:
    """Whether an attribute value may contain ``ch`` (the hf grammar's per-character test)."""
    if " " <= ch <= "~":  # printable ASCII: the common case, no table walk
        return ch != '"' and ch != "\\"
    return not _excluded(ch)


def name_ok(name: str) -> bool:
    """Whether an attribute or field name can appear in an answer as is (JSON needs no escape)."""
    return bool(name) and not any(c in '"\\' or c < " " for c in name)


def _excluded(ch: str) -> bool:
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in VALUE_EXCLUDED)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
