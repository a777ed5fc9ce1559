"""The hf backend's greedy decode loop: several tokens per pass (fixed text, confirmed guesses),
the same tokens as one greedy choice per pass."""

from __future__ import annotations

import pytest
import torch

from ecellm.infer.decode_loop import GreedyProcessor, chunk_width, decode


class _Tok:
    eos_token_id = 0

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(ord("a") + i - 1) for i in ids)


def test_greedy_processor_stops_at_eos_a_stop_string_or_the_budget() -> None:
    proc = GreedyProcessor(_Tok(), [3, 10, 10], stop=("cd",))

    def pick(t: int) -> torch.Tensor:
        row = torch.zeros(8)
        row[t] = 1.0
        return row

    assert [proc.step_row(0, pick(t), 0)[0] for t in (1, 2, 5)] == [1, 2, 5] and proc.done[0]
    assert proc.step_row(1, pick(3), 0) == [3] and not proc.done[1]
    assert proc.step_row(1, pick(4), 1) == [4] and proc.done[1]  # "cd" in the new text
    assert proc.step_row(2, pick(0), 0) == [0] and proc.done[2]  # EOS
    assert proc.admissible(2, [5, 6]) == [5, 6]


def test_chunk_width_trades_passes_against_padding():
    # 4 rows, one with a 15-token jump-forward chunk, a pass worth 45 positions:
    # w=1 costs (45 + 4*1) / 4 fed = 12.25 per token, w=15 costs (45 + 4*15) / (3 + 15) = 5.83
    assert chunk_width([1, 1, 1, 15], rows=4, pass_cost=45) == 15
    # 16 rows: w=1 costs (45 + 16) / 16 = 3.81, w=15 costs (45 + 240) / 30 = 9.5
    assert chunk_width([1] * 15 + [15], rows=16, pass_cost=45) == 1
    # where extra positions are nearly free (accelerators), the long chunk goes in as few passes as
    # the cap allows (128 // 16 live rows = 8 positions)
    assert chunk_width([1] * 15 + [15], rows=16, pass_cost=1000) == 8
    # w=1: 49/4 = 12.25, w=2: 53/7 = 7.57, w=3: 57/9 = 6.33, w=6: 69/12 = 5.75
    assert chunk_width([1, 2, 3, 6], rows=4, pass_cost=45) == 6
    # finished rows (empty queues) do not count as fed; the cap (8 // 2 live rows) bounds the width
    assert chunk_width([0, 0, 5, 9], rows=4, pass_cost=45, cap=8) == 4
    assert chunk_width([0, 0], rows=2, pass_cost=45) == 1


@pytest.mark.slow
def test_guessed_tokens_change_passes_not_text(smollm2) -> None:
    """Greedy text with guesses (a prompt the model copies and a repetition it falls into) equals
    ``model.generate``'s, token for token (fp32), in fewer passes than tokens."""
    from ecellm.infer.choice import _left_pad

    tok, model = smollm2.tokenizer, smollm2.model
    prompts = [
        "Repeat exactly: red blue green red blue green red blue green red blue green",
        "List the numbers: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12",
        "Hi",
    ]
    ids, mask = _left_pad([tok(p)["input_ids"] for p in prompts], tok.pad_token_id, "cpu")
    budget = 40
    with torch.no_grad():
        want = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=budget,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )[:, ids.shape[1] :].tolist()
    want = [w[: w.index(tok.eos_token_id)] if tok.eos_token_id in w else w for w in want]
    passes = 0
    forward = model.forward

    def counting(*a, **kw):
        nonlocal passes
        passes += 1
        return forward(*a, **kw)

    model.forward = counting
    try:
        with torch.no_grad():
            got = decode(model, ids, mask, None, GreedyProcessor(tok, [budget] * 3), budget, tok.pad_token_id)
    finally:
        del model.forward
    assert got == want
    assert passes <= 3 * max(len(w) for w in want) // 4, passes  # one per token without guesses


def test_draft_width_feeds_guesses_only_where_they_pay() -> None:
    from ecellm.infer.decode_loop import draft_width

    # 4 rows, one queued token each (fed 4), pass worth 45 positions: (45 + 4) / 4 = 12.25 per token
    assert draft_width(1, 4, [], rows=4, pass_cost=45) == 1
    # one row with 6 sure guesses: width 7 gains 6 tokens for 24 positions, (45 + 28) / 10 = 7.3
    assert draft_width(1, 4, [(1, 6, 1.0)], rows=4, pass_cost=45) == 7
    # 24 rows and one row's unlikely guesses: every row would pay the extra positions
    assert draft_width(1, 24, [(1, 6, 0.2)], rows=24, pass_cost=45) == 1
    # guesses start after a row's queued tokens: a row with 3 queued + 2 guesses needs width 5
    assert draft_width(3, 6, [(3, 2, 1.0)], rows=2, pass_cost=45) == 5
    # likely guesses in a wide batch: on a CPU not worth 24 positions each, on an accelerator
    # (extra positions nearly free) all but the last
    assert draft_width(1, 24, [(1, 6, 0.9)], rows=24, pass_cost=45) == 1
    assert draft_width(1, 24, [(1, 6, 0.9)], rows=24, pass_cost=1000) == 6  # the 6th: 0.9**6 too unlikely


@pytest.mark.slow
def test_the_backend_reports_its_guessing(smollm2) -> None:
    """The manifest (``describe()``) says how many guesses a pass may carry; 0 turns them off."""
    from ecellm.infer.backends.hf import HFBackend
    from ecellm.infer.decode_loop import DRAFT_TOKENS

    assert HFBackend(smollm2, autocast="off").describe()["draft_tokens"] == DRAFT_TOKENS
    assert HFBackend(smollm2, autocast="off", draft_tokens=0).describe()["draft_tokens"] == 0
