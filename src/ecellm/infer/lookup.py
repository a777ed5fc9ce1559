"""Draft tokens by lookup, for decode loops that verify several guesses in one pass.

Why: on a CPU a small model's decode pass costs mostly its fixed overhead, so the number of
passes, not the number of tokens, sets the time. Answers copy runs of their prompt (extracted
values, quoted reviews) or of themselves (a small model's repetition loops); when the last
tokens written occurred earlier in the row, the tokens that followed them there are a cheap
guess of what comes next. The decode loop feeds the guesses with the row's next pass and keeps
the longest prefix that greedy decoding would have chosen itself, so the text is the one of one
token per pass.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_NGRAM = 3


class Lookup:
    """One row's tokens (prompt, then what is written) and where each n-gram of 1..``max_ngram``
    tokens last occurred with a token after it."""

    def __init__(self, prompt: Sequence[int], max_ngram: int = MAX_NGRAM) -> None:
        self.max_ngram = max_ngram
        self.seq: list[int] = []
        self.prompt_len = len(prompt)
        self.after: dict[tuple[int, ...], int] = {}
        self._extend(prompt)

    def _extend(self, tokens: Sequence[int]) -> None:
        seq, after = self.seq, self.after
        for t in tokens:
            seq.append(t)
            end = len(seq) - 1  # the n-grams ending just before t are followed by t
            for n in range(1, min(self.max_ngram, end) + 1):
                after[tuple(seq[end - n : end])] = end

    def draft(self, written: Sequence[int], k: int) -> list[int]:
        """Up to ``k`` tokens that followed the longest n-gram ending the row's tokens (prompt
        plus ``written``, the tokens decoded so far) where it occurred before; ``[]`` when none
        did."""
        self._extend(written[len(self.seq) - self.prompt_len :])
        if k <= 0:
            return []
        seq = self.seq
        for n in range(min(self.max_ngram, len(seq)), 0, -1):
            at = self.after.get(tuple(seq[-n:]))
            if at is not None:
                return seq[at : at + k]
        return []
