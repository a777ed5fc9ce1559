"""Character-level grammars for constrained decoding, one per constraint spec type.

Tasks declare *what* an answer looks like as a spec (:mod:`ecellm.tasks.constraints`); this
module is the hf backend's form of it: :func:`grammar_for` builds the grammar of a spec. A
grammar is a tiny state machine over characters. Constrained decoding (see
:mod:`ecellm.infer.constrained`) feeds each candidate token's text through :meth:`Grammar.step`
and keeps the token only when every character is accepted, so the model can never leave the
language. Each grammar also knows the shortest text that completes any state
(:meth:`Grammar.finish`): when the token budget runs low the decoder forces that text, which is
what guarantees a parseable answer even when the model would ramble.

States are immutable tuples so one state can be shared by many candidate checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from ecellm.tasks.constraints import (
    NONE,
    SEP,
    AttributeValues,
    Constraint,
    NumberList,
    OneOf,
    Ranking,
    value_char_ok,
)


class Grammar(Protocol):
    def start(self) -> Any: ...

    def step(self, state: Any, ch: str) -> Any | None:
        """The state after ``ch``, or ``None`` if ``ch`` is not allowed here."""
        ...

    def accepting(self, state: Any) -> bool:
        """True when the text so far is a complete answer (end-of-sequence allowed)."""
        ...

    def final(self, state: Any) -> bool:
        """True when the answer is complete and nothing may follow (end-of-sequence forced)."""
        ...

    def finish(self, state: Any) -> str:
        """The shortest text that turns ``state`` into a complete answer."""
        ...

    def forced(self, state: Any) -> str:
        """Text every continuation of ``state`` starts with (``""`` when the model has a say).
        The decoder types it with as few tokens as possible instead of asking the model."""
        ...


def feed(grammar: Grammar, state: Any, text: str) -> Any | None:
    """Run every character of ``text`` through the grammar; ``None`` as soon as one is refused."""
    for ch in text:
        state = grammar.step(state, ch)
        if state is None:
            return None
    return state


def accepts(grammar: Grammar, text: str) -> bool:
    """Whether ``text`` is a complete sentence of the grammar."""
    state = feed(grammar, grammar.start(), text)
    return state is not None and grammar.accepting(state)


@dataclass(frozen=True)
class RankingGrammar:
    """:class:`~ecellm.tasks.constraints.Ranking`: distinct labels joined by commas, no spaces.

    State: (labels closed by a comma so far, text of the label being typed). Labels may be
    several characters, so ``buf`` can be a complete label that another one extends (``1`` of
    ``10``).
    """

    spec: Ranking
    # each prefix of a label -> the labels that start with it (``step`` is the hot path)
    _by_prefix: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _labels: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_prefix: dict[str, list[str]] = {}
        for x in self.spec.labels:
            for k in range(1, len(x) + 1):
                by_prefix.setdefault(x[:k], []).append(x)
        object.__setattr__(self, "_by_prefix", {k: tuple(v) for k, v in by_prefix.items()})
        object.__setattr__(self, "_labels", frozenset(self.spec.labels))

    def start(self) -> tuple[tuple[str, ...], str]:
        return ((), "")

    def _open(self, used: tuple[str, ...]) -> list[str]:
        return [x for x in self.spec.labels if x not in used]

    def _complete(self, used: tuple[str, ...], buf: str) -> bool:
        return buf in self._labels and buf not in used

    def step(self, state: tuple[tuple[str, ...], str], ch: str) -> tuple[tuple[str, ...], str] | None:
        used, buf = state
        if ch == SEP:
            if buf in self._labels and buf not in used and len(used) + 1 < self.spec.length:
                return (used + (buf,), "")
            return None
        cand = buf + ch
        for x in self._by_prefix.get(cand, ()):
            if x not in used:
                return (used, cand)
        return None

    def accepting(self, state: tuple[tuple[str, ...], str]) -> bool:
        used, buf = state
        return self._complete(used, buf) and len(used) + 1 == self.spec.length

    def final(self, state: tuple[tuple[str, ...], str]) -> bool:
        used, buf = state
        return self.accepting(state) and not any(x != buf and x.startswith(buf) for x in self._open(used))

    def finish(self, state: tuple[tuple[str, ...], str]) -> str:
        used, buf = state
        open_ = self._open(used)
        if self._complete(used, buf):
            current, head = buf, ""
        else:  # finish the label being typed with its shortest completion
            current = min((x for x in open_ if x.startswith(buf)), key=len)
            head = current[len(buf) :]
        need = self.spec.length - len(used) - 1
        rest = sorted((x for x in open_ if x != current), key=len)[:need]  # stable: label order
        return head + "".join(SEP + x for x in rest)

    def forced(self, state: tuple[tuple[str, ...], str]) -> str:
        used, buf = state
        options = [x[len(buf) :] for x in self._open(used) if x.startswith(buf) and x != buf]
        if self._complete(used, buf):
            options.append(SEP if len(used) + 1 < self.spec.length else "")
        return os.path.commonprefix(options) if options else ""


@dataclass(frozen=True)
class NumberListGrammar:
    """:class:`~ecellm.tasks.constraints.NumberList`. State: (numbers started, digits in the
    current one)."""

    spec: NumberList

    def start(self) -> tuple[int, int]:
        return (1, 0)

    def step(self, state: tuple[int, int], ch: str) -> tuple[int, int] | None:
        items, digits = state
        if "0" <= ch <= "9":
            return (items, digits + 1) if digits < self.spec.max_digits else None
        if ch == SEP and digits and items < self.spec.max_items:
            return (items + 1, 0)
        return None

    def accepting(self, state: tuple[int, int]) -> bool:
        return state[1] > 0

    def final(self, state: tuple[int, int]) -> bool:
        return state == (self.spec.max_items, self.spec.max_digits)

    def finish(self, state: tuple[int, int]) -> str:
        return "" if state[1] else "0"

    def forced(self, state: tuple[int, int]) -> str:
        return ""


@dataclass(frozen=True)
class OneOfGrammar:
    """:class:`~ecellm.tasks.constraints.OneOf`: exactly one of a fixed set of strings."""

    spec: OneOf

    def start(self) -> str:
        return ""

    def step(self, state: str, ch: str) -> str | None:
        text = state + ch
        return text if any(a.startswith(text) for a in self.spec.options) else None

    def accepting(self, state: str) -> bool:
        return state in self.spec.options

    def final(self, state: str) -> bool:
        others = (a for a in self.spec.options if a != state)
        return self.accepting(state) and not any(a.startswith(state) for a in others)

    def finish(self, state: str) -> str:
        if self.accepting(state):
            return ""
        return min((a for a in self.spec.options if a.startswith(state)), key=len)[len(state) :]

    def forced(self, state: str) -> str:
        return os.path.commonprefix([a[len(state) :] for a in self.spec.options if a.startswith(state)])


# AVE ---------------------------------------------------------------------------------------
# The output is exactly the gold layout (json.dumps with default separators):
#   [{"attribute": "a", "value": "v", "source": "s"}, {"attribute": ...}]
# One item per target attribute, in target order (the list closes after the last one). Gold
# data may give an attribute two values; a grammar that allows repeats lets a small model loop
# on one attribute until the budget runs out, which costs far more than the rare second value.
_ITEM_OPEN = '{"attribute": "'
_AFTER_ATTR = ', "value": "'
_AFTER_VALUE = ', "source": "'
_AFTER_SOURCE = "}"
_NEXT = ", " + _ITEM_OPEN
_NONE = NONE


State = tuple[str, str, int, bool, str]


@dataclass(frozen=True)
class AttributeValuesGrammar:
    """:class:`~ecellm.tasks.constraints.AttributeValues`: a JSON list of {attribute, value,
    source} with the sample's target attributes and field names.

    State: ``(node, buf, idx, value_is_none, next)``. ``node`` is ``lit`` (``buf`` = literal text
    still to type, then go to slot ``next``) or a slot: ``attr``, ``value``, ``src``, ``sep``
    (``, {...`` or ``]``), ``end``; ``buf`` holds the slot text so far and ``idx`` the index of
    the last target attribute that has an item. Values are 1..``max_value`` characters
    allowed by :func:`~ecellm.tasks.constraints.value_char_ok`, not starting with a space; a
    ``None`` value forces source ``None`` as in the gold data.
    """

    spec: AttributeValues

    @property
    def attributes(self) -> tuple[str, ...]:
        return self.spec.attributes

    @property
    def sources(self) -> tuple[str, ...]:
        return self.spec.sources

    def start(self) -> State:
        if not self.attributes:
            return ("lit", "[]", -1, False, "end")
        return ("lit", "[" + _ITEM_OPEN, -1, False, "attr")

    def _attr_options(self, idx: int) -> list[str]:
        return [self.attributes[idx + 1]] if idx + 1 < len(self.attributes) else []

    def _src_options(self, none: bool) -> list[str]:
        return [_NONE] if none or not self.sources else list(self.sources)

    def _sep_options(self, idx: int) -> list[str]:
        return ["]"] if idx == len(self.attributes) - 1 else [_NEXT]

    def step(self, state: State, ch: str) -> State | None:
        node, buf, idx, none, nxt = state
        if node == "lit":
            if not buf.startswith(ch):
                return None
            return ("lit", buf[1:], idx, none, nxt) if len(buf) > 1 else (nxt, "", idx, none, "")
        if node == "attr":
            opts = self._attr_options(idx)
            if ch == '"':
                if buf not in opts:
                    return None
                return ("lit", _AFTER_ATTR, idx + 1, False, "value")
            return ("attr", buf + ch, idx, none, "") if any(o.startswith(buf + ch) for o in opts) else None
        if node == "value":
            if ch == '"':
                return ("lit", _AFTER_VALUE, idx, buf == _NONE, "src") if buf else None
            if (ch == "\\" if " " <= ch <= "~" else not value_char_ok(ch)) or len(buf) >= self.spec.max_value:
                return None
            if not buf and ch == " ":
                return None
            return ("value", buf + ch, idx, none, "")
        if node == "src":
            opts = self._src_options(none)
            if ch == '"':
                return ("lit", _AFTER_SOURCE, idx, none, "sep") if buf in opts else None
            return ("src", buf + ch, idx, none, "") if any(o.startswith(buf + ch) for o in opts) else None
        if node == "sep":
            cand = buf + ch
            for o in self._sep_options(idx):
                if o == cand:
                    return ("attr", "", idx, False, "") if o == _NEXT else ("end", "", idx, False, "")
                if o.startswith(cand):
                    return ("sep", cand, idx, none, "")
            return None
        return None  # "end": nothing may follow

    def accepting(self, state: State) -> bool:
        return state[0] == "end"

    def final(self, state: State) -> bool:
        return state[0] == "end"

    def forced(self, state: State) -> str:
        node, buf, idx, none, _ = state
        if node == "lit":
            return buf
        if node == "attr":  # one item per attribute in target order: the name is known
            return self.attributes[idx + 1][len(buf) :] + '"'
        if node == "src":  # what the field names still possible share (all of one, and its quote)
            rests = [o[len(buf) :] + '"' for o in self._src_options(none) if o.startswith(buf)]
            return os.path.commonprefix(rests)
        if node == "sep":
            return self._sep_options(idx)[0][len(buf) :]
        return ""

    def finish(self, state: State) -> str:
        node, buf, idx, none, nxt = state
        if node == "lit":
            return buf + self.finish((nxt, "", idx, none, ""))
        if node == "attr":
            best = self.attributes[idx + 1]
            return (
                best[len(buf) :]
                + '"'
                + _AFTER_ATTR
                + _NONE
                + '"'
                + _AFTER_VALUE
                + _NONE
                + '"'
                + self._tail(idx + 1)
            )
        if node == "value":
            if buf.strip():
                src = _NONE if buf == _NONE else min(self._src_options(False), key=len)
                return '"' + _AFTER_VALUE + src + '"' + self._tail(idx)
            return _NONE + '"' + _AFTER_VALUE + _NONE + '"' + self._tail(idx)
        if node == "src":
            best = min((o for o in self._src_options(none) if o.startswith(buf)), key=len)
            return best[len(buf) :] + '"' + self._tail(idx)
        if node == "sep":
            if idx == len(self.attributes) - 1:
                return "]"[len(buf) :]
            return _NEXT[len(buf) :] + self._items_from(idx + 1)
        return ""

    def _item(self, attr: str) -> str:
        """The rest of an item whose opening ``{"attribute": "`` is typed: a None item."""
        return attr + '"' + _AFTER_ATTR + _NONE + '"' + _AFTER_VALUE + _NONE + '"' + _AFTER_SOURCE

    def _items_from(self, i: int) -> str:
        """None items for attributes ``i..`` (item ``i`` already opened), then ``]``."""
        return _NEXT.join(self._item(a) for a in self.attributes[i:]) + "]"

    def _tail(self, idx: int) -> str:
        """After an item's source quote: close it, None items for the rest, close the list."""
        if idx + 1 >= len(self.attributes):
            return _AFTER_SOURCE + "]"
        return _AFTER_SOURCE + _NEXT + self._items_from(idx + 1)


_GRAMMARS: dict[type, Any] = {
    Ranking: RankingGrammar,
    NumberList: NumberListGrammar,
    OneOf: OneOfGrammar,
    AttributeValues: AttributeValuesGrammar,
}


def grammar_for(spec: Constraint) -> Grammar:
    """The character grammar of a constraint spec (what the hf backend decodes with)."""
    try:
        return _GRAMMARS[type(spec)](spec)
    except KeyError:
        raise TypeError(f"not a constraint spec: {spec!r}") from None
