"""One constraint spec, three backends: the hf grammar, the vLLM regex and the llama.cpp GBNF
grammar accept and refuse the same strings.

For every constrained task of the registry, each fixture sample's spec is checked on answers
generated from the spec and on near misses (a character deleted, repeated, inserted or replaced,
a label repeated, the end cut). The GBNF side parses the emitted grammar *text* with
:mod:`ecellm.infer.gbnf`, independently of the code that printed it. A new constrained task
needs samples in the fixture (the test fails otherwise).
"""

from __future__ import annotations

import itertools
import random
import re
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import FIXTURES as FIXTURE_DIR

from ecellm.data.loaders import load_samples
from ecellm.errors import InputError
from ecellm.infer import gbnf
from ecellm.infer.grammars import accepts, grammar_for
from ecellm.infer.structured import to_gbnf, to_regex
from ecellm.tasks import all_tasks, get_task
from ecellm.tasks.constraints import (
    NONE,
    AttributeValues,
    NumberList,
    OneOf,
    Ranking,
    value_char_ok,
)

FIXTURES = [
    FIXTURE_DIR / "samples_mixed.jsonl",
    FIXTURE_DIR / "shopbench" / "dev.jsonl",
    FIXTURE_DIR / "shopbench" / "mixed" / "development.json",
]
# characters that stress the boundaries: separators, quotes, escapes, spaces of every kind,
# controls, letters of "None", digits, non-ASCII that is and is not allowed in a value
TRICKY = [*',"\\ Noe ABZ019{}[]:\n\t', "\xa0", "\x85", "\u200b", "\u3000", "\ufeff", "\u2010", *"éü中½"]


@cache
def forms(spec):
    """The three backend forms of a spec (hf grammar, compiled regex, parsed GBNF rules)."""
    return grammar_for(spec), re.compile(to_regex(spec)), gbnf.parse(to_gbnf(spec))


def verdicts(spec, text: str) -> tuple[bool, bool, bool]:
    grammar, regex, rules = forms(spec)
    return accepts(grammar, text), regex.fullmatch(text) is not None, gbnf.fullmatch(rules, text)


def assert_agree(spec, text: str) -> bool:
    hf, rx, gb = verdicts(spec, text)
    assert hf == rx == gb, f"{spec!r} on {text!r}: hf={hf} regex={rx} gbnf={gb}"
    return hf


# -- strings from a spec ---------------------------------------------------------------------
VALUE_CHARS = st.sampled_from([*"abcXYZ 09-/.,:%'&N", "é", "中", "½", "\u2010"])


@st.composite
def answers(draw, spec):
    """A string the spec allows."""
    if isinstance(spec, OneOf):
        return draw(st.sampled_from(spec.options))
    if isinstance(spec, Ranking):
        order = draw(st.permutations(spec.labels))
        return ",".join(order[: spec.length])
    if isinstance(spec, NumberList):
        digits = st.text(alphabet="0123456789", min_size=1, max_size=spec.max_digits)
        return ",".join(draw(st.lists(digits, min_size=1, max_size=spec.max_items)))
    items = []
    for attr in spec.attributes:
        free = st.text(VALUE_CHARS, min_size=1, max_size=spec.max_value).filter(lambda v: v[0] != " ")
        value = draw(st.one_of(st.just(NONE), free))
        sources = spec.sources if value != NONE and spec.sources else (NONE,)
        source = draw(st.sampled_from(sources))
        items.append(f'{{"attribute": "{attr}", "value": "{value}", "source": "{source}"}}')
    return "[" + ", ".join(items) + "]"


@st.composite
def near_misses(draw, spec):
    """An allowed string with one edit (most, not all, edits leave the language)."""
    text = draw(answers(spec))
    i = draw(st.integers(0, len(text)))
    ch = draw(st.sampled_from(TRICKY))
    kind = draw(st.sampled_from(["delete", "repeat", "insert", "replace", "cut", "append", "swap"]))
    if kind == "delete" and text:
        return text[: max(i - 1, 0)] + text[i:]
    if kind == "repeat" and i < len(text):
        return text[: i + 1] + text[i:]
    if kind == "replace" and i < len(text):
        return text[:i] + ch + text[i + 1 :]
    if kind == "cut":
        return text[:i]
    if kind == "append":
        return text + draw(
            st.sampled_from([",", ch, *getattr(spec, "labels", ()), *getattr(spec, "options", ())])
        )
    if kind == "swap" and i + 1 < len(text):
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + ch + text[i:]


# -- every constrained task of the registry --------------------------------------------------
def registry_specs() -> list[tuple[str, object]]:
    samples = [s for f in FIXTURES for s in load_samples(f)]
    out = []
    for task in all_tasks(None):  # every family
        if task.constraint is None:
            continue
        specs = {task.constraint(s) for s in samples if get_task(s.task) is task} - {None}
        assert specs, f"no fixture sample of constrained task {task.abbr} yields a constraint"
        out += [(task.abbr, spec) for spec in sorted(specs, key=repr)]
    return out


SPECS = registry_specs()


def test_the_registry_has_constrained_tasks() -> None:
    assert {abbr for abbr, _ in SPECS} >= {"QPR", "AVE", "SB-MC", "SB-RANK", "SB-RET"}


@pytest.mark.parametrize(("abbr", "spec"), SPECS, ids=[f"{a}-{i}" for i, (a, _) in enumerate(SPECS)])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_backends_agree_on_task_answers(abbr: str, spec: object, data: st.DataObject) -> None:
    assert assert_agree(spec, data.draw(answers(spec)))  # valid: all three accept
    assert_agree(spec, data.draw(near_misses(spec)))


def edits(text: str, seed: int = 0, positions: int = 12) -> list[str]:
    """Single-character edits of ``text`` at a few seeded positions: deletions, repeats,
    insertions and replacements by every :data:`TRICKY` character, adjacent swaps."""
    rng = random.Random(seed)
    out = []
    for i in sorted(rng.sample(range(len(text) + 1), min(positions, len(text) + 1))):
        out += [text[:i] + text[i + 1 :], text[:i] + text[i : i + 1] * 2 + text[i + 1 :], text[:i]]
        out += [text[:i] + c + text[i:] for c in TRICKY] + [text[:i] + c + text[i + 1 :] for c in TRICKY]
        out.append(text[:i] + text[i + 1 : i + 2] + text[i : i + 1] + text[i + 2 :])
    return out


@pytest.mark.parametrize(("abbr", "spec"), SPECS, ids=[f"{a}-{i}" for i, (a, _) in enumerate(SPECS)])
def test_backends_agree_on_edits_of_an_answer(abbr: str, spec: object) -> None:
    """Deterministic near misses of the shortest answer; most must be refused, else agreement
    would prove little."""
    grammar = grammar_for(spec)
    shortest = grammar.finish(grammar.start())
    assert assert_agree(spec, shortest)
    variants = [v for v in edits(shortest) if v != shortest]
    refused = sum(not assert_agree(spec, v) for v in variants)
    assert refused >= 0.8 * len(variants)


def test_qpr_repeated_letters_are_refused_by_all_three() -> None:
    spec = next(s for a, s in SPECS if a == "QPR")
    first = spec.labels[0]
    for bad in (
        f"{first},{first}",
        f"{first},{first},{','.join(spec.labels[1:])}",
        ",".join(spec.labels) + ",",
    ):
        assert verdicts(spec, bad) == (False, False, False), bad
    assert verdicts(spec, ",".join(spec.labels)) == (True, True, True)


# -- any spec, including shapes the registry does not use yet ---------------------------------
labels = st.lists(st.text(alphabet="ABC012x", min_size=1, max_size=2), min_size=1, max_size=5, unique=True)


@st.composite
def specs(draw):
    kind = draw(st.sampled_from(["one_of", "ranking", "numbers", "attributes"]))
    if kind == "one_of":
        return OneOf(tuple(draw(labels)))
    if kind == "ranking":
        ls = tuple(draw(labels))
        return Ranking(ls, draw(st.one_of(st.none(), st.integers(1, len(ls)))))
    if kind == "numbers":
        return NumberList(draw(st.integers(1, 4)), draw(st.integers(1, 3)))
    names = st.text(alphabet="ab c-é", min_size=1, max_size=6).filter(lambda n: n.strip())
    return AttributeValues(
        tuple(draw(st.lists(names, max_size=3, unique=True))),
        tuple(draw(st.lists(names, max_size=2, unique=True))),
        draw(st.integers(4, 10)),
    )


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_backends_agree_on_any_spec(data: st.DataObject) -> None:
    spec = data.draw(specs())
    assert assert_agree(spec, data.draw(answers(spec)))
    assert_agree(spec, data.draw(near_misses(spec)))


def test_small_rankings_agree_on_every_string_of_their_alphabet() -> None:
    """Exhaustive, not sampled: every string up to 5 characters over the labels and a comma."""
    cases = [(Ranking(("A", "B", "C")), "ABC,", 6), (Ranking(("1", "12", "2"), count=2), "12,", 6)]
    cases.append((OneOf(("1", "10", "2")), "012,", 3))
    for spec, alphabet, n_accepted in cases:
        accepted = 0
        for n in range(6):
            for chars in itertools.product(alphabet, repeat=n):
                accepted += assert_agree(spec, "".join(chars))
        assert accepted == n_accepted, spec


def test_value_characters_match_the_declared_class() -> None:
    spec = AttributeValues(("color",), ("title",))
    for ch in TRICKY + ["\x7f", "\x1f", "\u2028", "\ufffe", "\U0001f600"]:
        text = f'[{{"attribute": "color", "value": "x{ch}", "source": "title"}}]'
        assert assert_agree(spec, text) == value_char_ok(ch), repr(ch)


# -- the recogniser itself ---------------------------------------------------------------------
def test_gbnf_recogniser_reads_the_llama_cpp_syntax() -> None:
    g = gbnf.parse(
        'root ::= item ("," item){0,2} tail?  # a comment\n'
        'item ::= [a-c] | "\\x7A" | [^\\x00-\\x2F\\x5B-\\uFFFF]+\n'
        'tail ::= (\n  "!" | "?"\n)*\n'
    )
    for ok in ("a", "a,z,b", "b!!?", "ABC,a", "a,b,c"):
        assert gbnf.fullmatch(g, ok), ok
    for bad in ("", "a,", "a,b,c,a", "d", "a!x", "é", ","):
        assert not gbnf.fullmatch(g, bad), bad
    for broken in ('root ::= "a', "root ::= [a-", "item ::= x", "root ::= undefined", 'root ::= "\\q"'):
        with pytest.raises(InputError):
            gbnf.parse(broken)
