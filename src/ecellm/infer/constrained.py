"""Constrained greedy decoding: a transformers ``LogitsProcessor`` driven by a character grammar.

Why not mask the whole vocabulary each step: with greedy decoding only the best *allowed* token
matters, so the processor walks the tokens in descending score order and stops at the first one
whose text the grammar accepts (usually within the first few). That gives exactly the result of
full masking at a fraction of the cost, and works for any tokenizer because the check is on the
decoded token text, not on token ids.

Text the grammar fixes (JSON keys and punctuation, the next attribute name) is typed with the
longest matching tokens without consulting the model's preference: it cannot change the answer
and it saves decode steps, each of which costs a full forward pass.

Budget guarantee: before accepting a free token the processor checks that the grammar's shortest
completion still fits in the remaining new tokens (one character per token is always possible
with a byte-level or byte-fallback vocabulary); otherwise it forces that completion. So every
constrained output is a complete sentence of its grammar, hence parses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecellm.infer.grammars import Grammar, feed

_TOKEN_CACHE: dict[int, tuple[Any, list[str], dict[str, int]]] = {}


def token_strings(tokenizer: Any) -> tuple[list[str], dict[str, int]]:
    """Each token id's text as it appears inside a sequence, and text -> first id.

    A token is decoded after an anchor token and the anchor's text removed, so tokenizers that
    drop a leading space when a token is decoded alone (SentencePiece) still report it. Special
    tokens and pieces of multi-byte characters (decoded as U+FFFD) map to ``""``: constrained
    outputs never use them.
    """
    key = id(tokenizer)
    hit = _TOKEN_CACHE.get(key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1], hit[2]
    vocab_size = len(tokenizer)
    anchor = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("a"))[-1]
    anchor_text = tokenizer.decode([anchor])
    pairs = [[anchor, i] for i in range(vocab_size)]
    fast = getattr(tokenizer, "backend_tokenizer", None)  # the Rust tokenizer of a fast tokenizer
    if fast is not None:  # what batch_decode returns, without its per-id Python conversions (10x)
        texts = fast.decode_batch(pairs, skip_special_tokens=False)
    else:
        texts = tokenizer.batch_decode(pairs, clean_up_tokenization_spaces=False)
    special = set(tokenizer.all_special_ids)
    out: list[str] = []
    for i, t in enumerate(texts):
        t = t[len(anchor_text) :] if t.startswith(anchor_text) else ""
        out.append("" if i in special or "\ufffd" in t else t)
    first: dict[str, int] = {}
    for i, t in enumerate(out):
        if t and t not in first:
            first[t] = i
    _TOKEN_CACHE[key] = (tokenizer, out, first)
    return out, first


class GrammarProcessor:
    """Per-row grammar state for one batch of ``generate`` (left-padded, so all rows share
    ``prompt_len``). After generation :attr:`texts` holds each row's constrained text."""

    def __init__(
        self, tokenizer: Any, grammars: list[Grammar], prompt_len: int, max_new_tokens: int | list[int]
    ) -> None:
        self.tok_text, self.text_to_id = token_strings(tokenizer)
        self.grammars = grammars
        self.prompt_len = prompt_len
        # per-row budgets: rows of one batch may come from samples with different budgets
        budgets = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(grammars)
        self.max_new = budgets
        self.eos = _first_eos(tokenizer)
        self.states = [g.start() for g in grammars]
        self.texts = [""] * len(grammars)
        self.done = [False] * len(grammars)
        self.forced = [0] * len(grammars)  # tokens chosen by the budget rule, for diagnostics

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        step = input_ids.shape[1] - self.prompt_len
        if step > 0:
            self._advance(input_ids[:, -1].tolist())
        out = torch.full_like(scores, float("-inf"))
        for b, g in enumerate(self.grammars):
            choice = self.eos if self.done[b] else self._choose(b, g, scores[b], self.max_new[b] - step)
            out[b, choice] = 0.0
        return out

    def _advance(self, last: list[int]) -> None:
        for b, tid in enumerate(last):
            self.push(b, tid)

    def push(self, b: int, tid: int) -> None:
        """Row ``b`` emitted ``tid``: advance its grammar state (EOS finishes the row)."""
        if self.done[b]:
            return
        if tid == self.eos:
            self.done[b] = True
            return
        text = self.tok_text[tid]
        self.states[b] = feed(self.grammars[b], self.states[b], text)
        self.texts[b] += text

    def step_row(self, b: int, row: Any, count: int) -> list[int]:
        """Jump-forward step for row ``b`` after ``count`` tokens: the token greedy constrained
        decoding picks from ``row`` (the scores), then every following token the grammar fixes
        without the model (JSON keys and punctuation; EOS once complete). All are pushed.

        The tokens are exactly those one-token-per-step decoding with :meth:`__call__` emits:
        the chain stops wherever that would consult scores (free text, or the budget rule).
        """
        out: list[int] = []
        tid = self._choose(b, self.grammars[b], row, self.max_new[b] - count)
        while True:
            out.append(tid)
            self.push(b, tid)
            if self.done[b]:
                return out
            g, state = self.grammars[b], self.states[b]
            finish = g.finish(state)
            if not finish:
                if not g.final(state):
                    return out  # complete, but the model may go on: its choice
                tid = self.eos
                continue
            if self.max_new[b] - count - len(out) <= len(finish) + 1:
                return out
            fixed = g.forced(state)
            nxt = self._longest(fixed) if fixed else None
            if nxt is None:
                return out
            tid = nxt

    def admissible(self, b: int, guess: list[int]) -> list[int]:
        """The guessed tokens row ``b``'s grammar accepts from its current state, up to where the
        grammar fixes the next text itself (those tokens are the processor's to emit)."""
        g, state = self.grammars[b], self.states[b]
        out: list[int] = []
        for t in guess:
            text = self.tok_text[t] if t < len(self.tok_text) else ""
            nxt = feed(g, state, text) if text else None
            if nxt is None:
                break
            out.append(t)
            state = nxt
            if g.forced(state) or g.final(state):
                break
        return out

    def _choose(self, b: int, g: Grammar, row: Any, remaining: int) -> int:
        state = self.states[b]
        finish = g.finish(state)
        if not finish and (remaining <= 1 or g.final(state)):
            return self.eos  # complete, and nothing may (or fits to) follow
        if finish and remaining <= len(finish) + 1:
            return self._forced(b, finish, row)
        fixed = g.forced(state)
        if fixed:  # deterministic text (JSON keys, known attribute names): fewest tokens
            tid = self._longest(fixed)
            if tid is not None:
                return tid
        for tid in _by_score(row):
            if tid == self.eos:
                if not finish:  # a complete answer the model chooses to end here
                    return tid
                continue
            text = self.tok_text[tid] if tid < len(self.tok_text) else ""
            if not text:
                continue
            nxt = feed(g, state, text)
            if nxt is None:
                continue
            if len(g.finish(nxt)) + 1 <= remaining - 1:
                return tid
            break
        return self._forced(b, finish, row) if finish else self.eos

    def _longest(self, text: str) -> int | None:
        """The token typing the longest prefix of ``text``."""
        for k in range(min(len(text), 48), 0, -1):
            tid = self.text_to_id.get(text[:k])
            if tid is not None:
                return tid
        return None

    def _forced(self, b: int, finish: str, row: Any) -> int:
        """The best-scoring token that types a prefix of the shortest completion."""
        self.forced[b] += 1
        best, best_score = -1, float("-inf")
        for k in range(1, min(len(finish), 48) + 1):
            tid = self.text_to_id.get(finish[:k])
            if tid is not None and float(row[tid]) > best_score:
                best, best_score = tid, float(row[tid])
        if best < 0:
            raise RuntimeError(f"tokenizer cannot type {finish[:1]!r}; constrained decoding impossible")
        return best


def _by_score(row: Any, first: int = 64) -> Iterator[int]:
    """Token ids in descending score order, lazily: the ``first`` best from ``topk``, then the
    rest from a full sort only if the grammar refused all of those. The accepted token is almost
    always among the first few, and sorting all 49k scores cost ~2.5 ms per row and step."""
    k = min(first, row.shape[-1])
    top = row.topk(k).indices.tolist()
    yield from top
    if k < row.shape[-1]:
        seen = set(top)
        yield from (t for t in row.argsort(descending=True).tolist() if t not in seen)


def _first_eos(tokenizer: Any) -> int:
    eos = tokenizer.eos_token_id
    if isinstance(eos, list):
        eos = eos[0]
    if eos is None:
        raise ValueError("constrained decoding needs a tokenizer with an end-of-sequence token")
    return int(eos)
