"""Character-level grammars for constrained decoding: rankings, AVE JSON lists, digit lists, item picks.

A grammar is a tiny state machine over characters. Constrained decoding (see
:mod:`ecellm.infer.constrained`) feeds each candidate token's text through :meth:`Grammar.step`
and keeps the token only when every character is accepted, so the model can never leave the
language. Each grammar also knows the shortest text that completes any state
(:meth:`Grammar.finish`): when the token budget runs low the decoder forces that text, which is
what guarantees a parseable answer even when the model would ramble.

States are immutable tuples so one state can be shared by many candidate checks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Grammar(Protocol):
    def start(self) -> Any: ...

    def step(self, state: Any, ch: str) -> Any | None:
        """The state after ``ch``, or ``None`` if ``ch`` is not allowed here."""
        ...

    def accepting(self, state: Any) -> bool:
        """True when the text so far is a complete answer (end-of-sequence allowed)."""
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
class Ranking:
    """Every letter exactly once, joined by commas, no spaces: ``B,A,C``.

    State: (letters used so far, whether a letter is expected next).
    """

    letters: tuple[str, ...]

    def start(self) -> tuple[tuple[str, ...], bool]:
        return ((), True)

    def step(self, state: tuple[tuple[str, ...], bool], ch: str) -> tuple[tuple[str, ...], bool] | None:
        used, want_letter = state
        if want_letter:
            return (used + (ch,), False) if ch in self.letters and ch not in used else None
        if ch == "," and len(used) < len(self.letters):
            return (used, True)
        return None

    def accepting(self, state: tuple[tuple[str, ...], bool]) -> bool:
        used, want_letter = state
        return not want_letter and len(used) == len(self.letters)

    def finish(self, state: tuple[tuple[str, ...], bool]) -> str:
        used, want_letter = state
        rest = [x for x in self.letters if x not in used]
        if not rest:
            return ""
        return ("" if want_letter else ",") + ",".join(rest)

    def forced(self, state: tuple[tuple[str, ...], bool]) -> str:
        used, want_letter = state
        rest = [x for x in self.letters if x not in used]
        if not rest:
            return ""
        if not want_letter:
            return ","
        return rest[0] if len(rest) == 1 else ""


@dataclass(frozen=True)
class DigitsCommas:
    """Non-empty numbers joined by commas (ShopBench-style ``3,1,2``); at most ``max_chars``."""

    max_chars: int = 64

    def start(self) -> str:
        return ""

    def step(self, state: str, ch: str) -> str | None:
        if len(state) >= self.max_chars:
            return None
        if ch.isascii() and ch.isdigit():
            return state + ch
        if ch == "," and state and state[-1] != ",":
            return state + ch
        return None

    def accepting(self, state: str) -> bool:
        return bool(state) and state[-1] != ","

    def finish(self, state: str) -> str:
        return "" if self.accepting(state) else "0"

    def forced(self, state: str) -> str:
        return ""


@dataclass(frozen=True)
class Items:
    """``count`` distinct items of a listed set joined by commas, no spaces (ShopBench retrieval:
    three of the 15 listed numbers, ``6,9,15``). Items may be several characters long and one
    may be a prefix of another (``1`` and ``15``).

    State: (items already written, the item being typed).
    """

    items: tuple[str, ...]
    count: int

    def start(self) -> tuple[tuple[str, ...], str]:
        return ((), "")

    def _free(self, used: tuple[str, ...]) -> list[str]:
        return [i for i in self.items if i not in used]

    def step(self, state: tuple[tuple[str, ...], str], ch: str) -> tuple[tuple[str, ...], str] | None:
        used, buf = state
        if ch == ",":
            done = buf in self._free(used)
            return (used + (buf,), "") if done and len(used) + 1 < self.count else None
        cand = buf + ch
        return (used, cand) if any(i.startswith(cand) for i in self._free(used)) else None

    def accepting(self, state: tuple[tuple[str, ...], str]) -> bool:
        used, buf = state
        return len(used) + 1 == self.count and buf in self._free(used)

    def finish(self, state: tuple[tuple[str, ...], str]) -> str:
        used, buf = state
        if self.accepting(state):
            return ""
        free = self._free(used)
        if buf in free:  # complete item, more to come
            rest = [i for i in free if i != buf]
            return "," + ",".join(sorted(rest, key=len)[: self.count - len(used) - 1])
        here = min((i for i in free if i.startswith(buf)), key=len)
        rest = sorted((i for i in free if i != here), key=len)[: self.count - len(used) - 1]
        return here[len(buf) :] + "".join("," + r for r in rest)

    def forced(self, state: tuple[tuple[str, ...], str]) -> str:
        return ""


@dataclass(frozen=True)
class OneOf:
    """Exactly one of a fixed set of strings (ShopBench multiple choice: an option number).

    An empty set falls back to a single number of up to 4 digits.
    """

    allowed: tuple[str, ...]

    def start(self) -> str:
        return ""

    def _ok(self, text: str) -> bool:
        if self.allowed:
            return any(a.startswith(text) for a in self.allowed)
        return len(text) <= 4 and text.isascii() and text.isdigit()

    def step(self, state: str, ch: str) -> str | None:
        return state + ch if self._ok(state + ch) else None

    def accepting(self, state: str) -> bool:
        return state in self.allowed if self.allowed else bool(state)

    def finish(self, state: str) -> str:
        if self.accepting(state):
            return ""
        if not self.allowed:
            return "0"
        return min((a for a in self.allowed if a.startswith(state)), key=len)[len(state) :]

    def forced(self, state: str) -> str:
        rest = [a[len(state) :] for a in self.allowed if a.startswith(state)]
        return rest[0] if len(rest) == 1 else ""


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
_NONE = "None"


State = tuple[str, str, int, bool, str]


@dataclass(frozen=True)
class AveJson:
    """JSON list of {attribute, value, source} with attributes and sources from the sample.

    State: ``(node, buf, idx, value_is_none, next)``. ``node`` is ``lit`` (``buf`` = literal text
    still to type, then go to slot ``next``) or a slot: ``attr``, ``value``, ``src``, ``sep``
    (``, {...`` or ``]``), ``end``; ``buf`` holds the slot text so far and ``idx`` the index of
    the last target attribute that has an item. Values are free text without quotes,
    backslashes or control characters, 1..``max_value`` characters; a ``None`` value forces
    source ``None`` as in the gold data.
    """

    attributes: tuple[str, ...]
    sources: tuple[str, ...]
    max_value: int = 48

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
                return ("lit", _AFTER_VALUE, idx, buf == _NONE, "src") if buf.strip() else None
            if ch == "\\" or not ch.isprintable() or len(buf) >= self.max_value or (not buf and ch == " "):
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

    def forced(self, state: State) -> str:
        node, buf, idx, none, _ = state
        if node == "lit":
            return buf
        if node == "attr":  # one item per attribute in target order: the name is known
            return self.attributes[idx + 1][len(buf) :] + '"'
        if node == "src" and (none or not self.sources):
            return _NONE[len(buf) :] + '"'
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


def ave_arguments(sample_input: str, meta: dict[str, Any] | None = None) -> dict[str, list[str]] | None:
    """Target attributes and source field names of an AVE sample, or ``None`` if unreadable.

    The input is a JSON object of text fields plus ``"target attributes"`` (``"a and b"``);
    builders also keep the list in ``meta["target_attributes"]``. Attributes are lower-cased as
    gold outputs are.
    """
    try:
        payload = json.loads(sample_input)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(payload, dict):
        return None
    targets: Sequence[str] | None = (meta or {}).get("target_attributes")
    if not targets:
        raw = payload.get("target attributes") or payload.get("target attribute")
        if not isinstance(raw, str) or not raw.strip():
            return None
        targets = [t.strip() for part in raw.split(" and ") for t in part.split(",") if t.strip()]
    attrs = list(dict.fromkeys(str(t).strip().lower() for t in targets if str(t).strip()))
    attrs = [a for a in attrs if '"' not in a and "\\" not in a]
    sources = sorted(
        k for k in payload if isinstance(k, str) and not k.startswith("target attribute") and '"' not in k
    )
    if not attrs:
        return None
    return {"attributes": attrs, "sources": sources}


def make_grammar(name: str, args: dict[str, Any]) -> Grammar:
    """The grammar a request's ``constraint`` names, built from its ``constraint_args``."""
    if name == "ranking":
        return Ranking(tuple(args["letters"]))
    if name == "digits_commas":
        return DigitsCommas(int(args.get("max_chars", 64)))
    if name == "items":
        items = tuple(str(i) for i in args["items"])
        return Items(items, max(1, min(int(args.get("count", len(items))), len(items))))
    if name in ("digits", "one_of"):
        return OneOf(tuple(str(a) for a in args.get("allowed", ())))
    if name == "ave_json":
        return AveJson(
            tuple(args["attributes"]), tuple(args.get("sources", ())), int(args.get("max_value", 48))
        )
    raise ValueError(f"unknown constraint {name!r} (ranking, ave_json, digits_commas, digits, one_of, items)")
