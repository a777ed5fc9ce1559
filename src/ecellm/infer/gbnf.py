"""A small GBNF recogniser: does a grammar text accept a string?

Why: the llama.cpp backend sends GBNF text (:func:`ecellm.infer.structured.to_gbnf`) to
llama.cpp, which is an optional extra that compiles for minutes. This module reads the grammar
*text* itself, independently of the code that printed it, so tests can check what llama.cpp
would enforce without it. It covers the llama.cpp syntax ecellm emits and a little more: rules
``name ::= ...`` (a rule ends at a newline outside parentheses), ``#`` comments, string literals,
character classes (``[a-z]``, ``[^"\\\\]``) with llama.cpp's escapes (``\\xHH \\uHHHH \\UHHHHHHHH
\\t \\r \\n \\\\ \\" \\[ \\]``), ``.``, rule references, groups, alternatives and the
quantifiers ``? * + {m} {m,} {m,n}``. Start rule: ``root``.

Matching computes, for a node and a start position, the set of positions where a match can end
(memoised per rule and position), so ambiguity costs no backtracking. Left-recursive rules are
not supported (ecellm emits none).
"""

from __future__ import annotations

from typing import Any

from ecellm.errors import InputError

_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "[": "[", "]": "]"}
_HEX = {"x": 2, "u": 4, "U": 8}


def _word(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "-")


class _Parser:
    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0

    def fail(self, what: str) -> InputError:
        line = self.s.count("\n", 0, self.i) + 1
        return InputError(f"GBNF: {what} at offset {self.i}", record=f"line {line}", field="grammar")

    def space(self, newlines: bool) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
            elif c in " \t" or (newlines and c in "\r\n"):
                self.i += 1
            else:
                return

    def name(self) -> str:
        start = self.i
        while self.i < len(self.s) and _word(self.s[self.i]):
            self.i += 1
        if start == self.i:
            raise self.fail("expected a rule name")
        return self.s[start : self.i]

    def char(self) -> str:
        if self.i >= len(self.s):
            raise self.fail("unexpected end of grammar")
        c = self.s[self.i]
        if c != "\\":
            self.i += 1
            return c
        e = self.s[self.i + 1 : self.i + 2]
        if e in _HEX:
            digits = self.s[self.i + 2 : self.i + 2 + _HEX[e]]
            if len(digits) != _HEX[e] or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.fail("bad hex escape")
            self.i += 2 + _HEX[e]
            return chr(int(digits, 16))
        if e in _ESCAPES:
            self.i += 2
            return _ESCAPES[e]
        raise self.fail(f"unknown escape \\{e}")

    def grammar(self) -> dict[str, Any]:
        rules: dict[str, Any] = {}
        self.space(True)
        while self.i < len(self.s):
            name = self.name()
            self.space(False)
            if not self.s.startswith("::=", self.i):
                raise self.fail("expected '::='")
            self.i += 3
            self.space(False)
            rules[name] = self.alternatives(nested=False)
            self.space(True)
        if "root" not in rules:
            raise self.fail("no root rule")
        for body in rules.values():
            _check_refs(body, rules, self)
        return rules

    def alternatives(self, nested: bool) -> Any:
        alts = [self.sequence(nested)]
        while self.i < len(self.s) and self.s[self.i] == "|":
            self.i += 1
            self.space(True)
            alts.append(self.sequence(nested))
        return ("alt", tuple(alts)) if len(alts) > 1 else alts[0]

    def sequence(self, nested: bool) -> Any:
        items = []
        while self.i < len(self.s) and self.s[self.i] not in "|)\r\n":
            items.append(self.quantified(self.primary()))
            self.space(nested)
        if nested:  # inside parentheses a newline is plain space
            self.space(True)
        return ("seq", tuple(items))

    def primary(self) -> Any:
        c = self.s[self.i]
        if c == '"':
            self.i += 1
            out = []
            while self.i < len(self.s) and self.s[self.i] != '"':
                out.append(self.char())
            if self.i >= len(self.s):
                raise self.fail("unterminated string")
            self.i += 1
            return ("lit", "".join(out))
        if c == "[":
            self.i += 1
            negate = self.s.startswith("^", self.i)
            self.i += negate
            ranges = []
            while self.i < len(self.s) and self.s[self.i] != "]":
                lo = self.char()
                hi = lo
                if self.s.startswith("-", self.i) and not self.s.startswith("-]", self.i):
                    self.i += 1
                    hi = self.char()
                ranges.append((ord(lo), ord(hi)))
            if self.i >= len(self.s):
                raise self.fail("unterminated character class")
            self.i += 1
            return ("cls", negate, tuple(ranges))
        if c == "(":
            self.i += 1
            self.space(True)
            inner = self.alternatives(nested=True)
            if not self.s.startswith(")", self.i):
                raise self.fail("expected ')'")
            self.i += 1
            return inner
        if c == ".":
            self.i += 1
            return ("cls", True, ())
        if _word(c):
            return ("ref", self.name())
        raise self.fail(f"unexpected {c!r}")

    def quantified(self, node: Any) -> Any:
        c = self.s[self.i : self.i + 1]
        if c in ("?", "*", "+"):
            self.i += 1
            return ("rep", node, 0 if c != "+" else 1, 1 if c == "?" else None)
        if c == "{":
            end = self.s.find("}", self.i)
            if end < 0:
                raise self.fail("unterminated '{'")
            body = self.s[self.i + 1 : end].replace(" ", "")
            lo_s, comma, hi_s = body.partition(",")
            if not lo_s.isdigit() or (hi_s and not hi_s.isdigit()):
                raise self.fail("bad repetition")
            self.i = end + 1
            lo = int(lo_s)
            hi = (int(hi_s) if hi_s else None) if comma else lo
            return ("rep", node, lo, hi)
        return node


def _check_refs(node: Any, rules: dict[str, Any], parser: _Parser) -> None:
    kind = node[0]
    if kind == "ref" and node[1] not in rules:
        raise parser.fail(f"undefined rule {node[1]!r}")
    if kind in ("alt", "seq"):
        for part in node[1]:
            _check_refs(part, rules, parser)
    if kind == "rep":
        _check_refs(node[1], rules, parser)


def parse(text: str) -> dict[str, Any]:
    """The rules of a GBNF grammar (name -> node); :class:`InputError` on a syntax error."""
    return _Parser(text).grammar()


def fullmatch(grammar: str | dict[str, Any], text: str) -> bool:
    """Whether the grammar's ``root`` rule derives exactly ``text``."""
    rules = parse(grammar) if isinstance(grammar, str) else grammar
    memo: dict[tuple[str, int], frozenset[int]] = {}

    def ends(node: Any, pos: int) -> frozenset[int]:
        kind = node[0]
        if kind == "lit":
            return frozenset({pos + len(node[1])}) if text.startswith(node[1], pos) else frozenset()
        if kind == "cls":
            if pos >= len(text):
                return frozenset()
            o = ord(text[pos])
            inside = any(lo <= o <= hi for lo, hi in node[2])
            return frozenset({pos + 1}) if inside != node[1] else frozenset()
        if kind == "ref":
            key = (node[1], pos)
            if key not in memo:
                memo[key] = frozenset()  # guards against (unsupported) left recursion
                memo[key] = ends(rules[node[1]], pos)
            return memo[key]
        if kind == "alt":
            return frozenset().union(*(ends(p, pos) for p in node[1]))
        if kind == "seq":
            here = frozenset({pos})
            for part in node[1]:
                here = frozenset().union(*(ends(part, p) for p in here))
                if not here:
                    break
            return here
        if kind == "rep":
            _, part, lo, hi = node
            out = frozenset({pos}) if lo == 0 else frozenset()
            here, seen, n = frozenset({pos}), set(), 0
            while here and (hi is None or n < hi):
                here = frozenset().union(*(ends(part, p) for p in here))
                n += 1
                if hi is None and n >= lo:
                    here = here - seen  # an unbounded loop only needs new positions
                    seen |= here
                if n >= lo:
                    out |= here
            return out
        raise AssertionError(kind)

    return len(text) in ends(("ref", "root"), 0)
