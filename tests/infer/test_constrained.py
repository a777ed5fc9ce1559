"""The grammar processor on a toy vocabulary: a complete answer that may go on (a number list
after its first number) ends only where the model prefers end-of-sequence."""

from __future__ import annotations

import pytest
import torch

from ecellm.infer.constrained import GrammarProcessor, token_strings
from ecellm.infer.grammars import grammar_for
from ecellm.tasks.constraints import NumberList, Ranking

VOCAB = ["<eos>", "a", "1", "2", "3", ",", "12", " "]


class ToyTokenizer:
    """Just what :func:`ecellm.infer.constrained.token_strings` reads."""

    eos_token_id = 0
    all_special_ids = [0]

    def __len__(self) -> int:
        return len(VOCAB)

    def tokenize(self, text: str) -> list[str]:
        return [text]

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        return [VOCAB.index(t) for t in tokens]

    def decode(self, ids: list[int]) -> str:
        return "".join(VOCAB[i] for i in ids)

    def batch_decode(self, rows: list[list[int]], clean_up_tokenization_spaces: bool = False) -> list[str]:
        return [self.decode(r) for r in rows]


def greedy(spec, preferences: list[list[str]], budget: int = 20) -> str:
    """Decode one row; at step k the model ranks tokens as ``preferences[k]`` (best first)."""
    proc = GrammarProcessor(ToyTokenizer(), [grammar_for(spec)], 0, budget)
    count = 0
    while not proc.done[0] and count < budget:
        row = torch.zeros(len(VOCAB))
        for rank, text in enumerate(reversed(preferences[min(count, len(preferences) - 1)])):
            row[VOCAB.index(text)] = rank + 1.0
        count += len(proc.step_row(0, row, count))
    return proc.texts[0]


def test_a_number_list_goes_on_while_the_model_prefers_it() -> None:
    spec = NumberList(max_items=3, max_digits=2)
    prefs = [["1", "<eos>"], [",", "<eos>"], ["2"], ["<eos>", ","]]
    assert greedy(spec, prefs) == "1,2"  # used to stop after "1", the first complete answer
    assert greedy(spec, [["3", ","], ["<eos>", ","]]) == "3"
    # the grammar ends the list once it is full: three numbers of two digits
    assert greedy(spec, [["12", ","]]) == "12,12,12"


def test_a_ranking_ends_when_every_label_is_listed() -> None:
    spec = Ranking(("1", "2", "3"))
    prefs = [["2", "<eos>"], [",", "<eos>"], ["3", "<eos>"], [",", "<eos>"], ["<eos>"]]
    assert greedy(spec, prefs) == "2,3,1"


@pytest.mark.slow
def test_token_texts_from_the_rust_tokenizer_equal_batch_decode(smollm2) -> None:
    """The fast path (the backend tokenizer's decode_batch) reads what batch_decode would."""
    from ecellm.infer import constrained

    tok = smollm2.tokenizer
    constrained._TOKEN_CACHE.clear()
    fast_texts, fast_first = token_strings(tok)
    constrained._TOKEN_CACHE.clear()

    class Slow:  # the same tokenizer without its backend attribute
        def __getattr__(self, name):
            if name == "backend_tokenizer":
                raise AttributeError(name)
            return getattr(tok, name)

        def __len__(self) -> int:
            return len(tok)

    slow_texts, slow_first = token_strings(Slow())
    constrained._TOKEN_CACHE.clear()
    assert fast_texts == slow_texts and fast_first == slow_first
    assert fast_texts[tok.convert_tokens_to_ids("Ġthe")] == " the"
