"""The greedy decode loop of the hf backend for causal models: several tokens per pass.

Why not ``model.generate``: there every token costs a forward pass, and on a CPU a small
model's pass costs mostly its fixed overhead. This loop feeds each row, in one pass, every token
it already knows: for constrained decoding the text its grammar fixes (JSON keys and
punctuation, jump-forward), and for any greedy decoding guesses looked up in the row's own
tokens (:mod:`ecellm.infer.lookup`), kept only as far as the row's own choice confirms them.
Rows that finish leave the batch. The tokens emitted are those of one greedy choice per pass
(tests compare with ``generate`` in fp32; in bf16 a pass over several positions rounds
differently from a pass over one, which can flip a near tie).

A processor makes each row's choices; two exist: the grammar processor of constrained decoding
(:class:`~ecellm.infer.constrained.GrammarProcessor`) and :class:`GreedyProcessor` for free text.
Each has ``done`` (per row), ``eos``, ``step_row(b, scores, count)`` (the row's choice and the
tokens fixed after it, pushed) and ``admissible(b, guess)`` (the guesses worth feeding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Cap on a pass's chunk (rows x width, padding included): a guard against huge chunks.
JUMP_TOKENS = 128

# What one forward pass costs beyond the positions it feeds, in fed positions. Measured on
# SmolLM2-135M (bf16, 2 CPU threads, 16 rows, 400 cached positions): a pass took ~57 ms plus
# ~1.25 ms per fed position (padding included), so a pass costs about as much as 45 positions.
# Accelerators run extra positions almost for free, which a large value expresses.
PASS_COST_CPU = 45
PASS_COST_ACCELERATOR = 1000

# Guessed tokens fed after a row's own choice (0: none).
DRAFT_TOKENS = 6


class GreedyProcessor:
    """Free greedy text: the best token each time, until EOS, a stop string in the row's new
    text (as the hf backend's stopping criterion under ``generate``) or the row's budget."""

    def __init__(self, tokenizer: Any, budgets: list[int], stop: Sequence[str] = ()) -> None:
        eos = tokenizer.eos_token_id
        ids = [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
        if not ids:
            raise ValueError("greedy decoding needs a tokenizer with an end-of-sequence token")
        self.tokenizer = tokenizer
        self.eos, self.eos_ids = ids[0], set(ids)
        self.max_new = budgets
        self.stop = tuple(s for s in stop if s)
        self.new: list[list[int]] = [[] for _ in budgets]
        self.done = [False] * len(budgets)

    def step_row(self, b: int, row: Any, count: int) -> list[int]:
        tid = int(row.argmax())
        if tid in self.eos_ids:
            self.done[b] = True
            return [self.eos]
        new = self.new[b]
        new.append(tid)
        if len(new) >= self.max_new[b] or (
            self.stop and any(s in self.tokenizer.decode(new, skip_special_tokens=True) for s in self.stop)
        ):
            self.done[b] = True
        return [tid]

    def admissible(self, b: int, guess: list[int]) -> list[int]:
        return guess


def chunk_width(queued: list[int], rows: int, pass_cost: int, cap: int = JUMP_TOKENS) -> int:
    """How many positions the next pass feeds per row, given each row's queue length.

    Every row of the batch feeds ``width`` positions (short queues are left-padded), so one
    long jump-forward chunk would make all other rows pad up to its length. The width chosen
    minimises the estimated cost per queued token fed, ``(pass_cost + rows * w) / fed(w)``, over
    the queue lengths (a longer queue is then fed over several passes, which costs nothing in
    exactness: its row makes no choice until its queue is empty).
    """
    live = [n for n in queued if n]
    if not live:
        return 1
    limit = max(1, cap // len(live))
    best, best_rate = 1, float("inf")
    for w in sorted({min(n, limit) for n in live}):
        rate = (pass_cost + rows * w) / sum(min(n, w) for n in live)
        if rate < best_rate:
            best, best_rate = w, rate
    return best


def draft_width(
    width: int, fed: int, guesses: list[tuple[int, int, float]], rows: int, pass_cost: int
) -> int:
    """The width of a pass that may also carry guesses: ``width`` (the chunk of queued tokens,
    ``fed`` of them in all) or wider. ``guesses`` holds ``(start, n, p)`` per row with guesses:
    ``n`` guesses after its ``start`` queued tokens, the ``j``-th confirmed with probability
    ``p ** j`` (``p``: the row's rate so far). A guess costs a position in every row, as padding
    does, so the width minimises the estimated cost per token gained, as :func:`chunk_width`
    does: on a CPU, unlikely guesses in a wide batch are not fed.
    """
    best, best_rate = width, (pass_cost + rows * width) / max(fed, 1)
    for w in range(width + 1, max((start + n for start, n, _ in guesses), default=width) + 1):
        gain = fed + sum(sum(p**j for j in range(1, min(n, w - start) + 1)) for start, n, p in guesses)
        rate = (pass_cost + rows * w) / gain
        if rate < best_rate:
            best, best_rate = w, rate
    return best


def decode(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    cache: Any,
    proc: Any,
    max_new_tokens: int,
    pad_id: int,
    jump_tokens: int = JUMP_TOKENS,
    pass_cost: int | None = None,
    draft_tokens: int = DRAFT_TOKENS,
) -> list[list[int]]:
    """Greedy decoding of a left-padded batch; returns each row's new ids without EOS.

    A row's *queue* holds tokens it has emitted that the model has not seen yet (its choice and
    any fixed tokens after it); scores are consulted only once the queue is fed. Up to
    ``draft_tokens`` guesses follow a queue that ends in the model's own choice; the pass keeps
    scores at each of them, the row takes the guesses its own choices confirm, and the refused
    ones are masked out of attention (their cache slots stay, as padding does).

    ``input_ids``/``attention_mask`` cover the whole prompt; ``cache`` holds its first
    ``cache.get_seq_length()`` positions (a shared prefix) or is ``None``. Each pass's chunk is
    left-padded with mask 0 and positions come from the mask's cumulative sum. The chunk width
    trades passes against padding (:func:`chunk_width`, ``pass_cost`` defaults per device), and
    finished rows leave the batch once they are a quarter of it.

    Causal LMs only: an encoder-decoder's decoder (T5) takes no position ids, so left-padded
    chunks would shift its relative positions; the hf backend runs seq2seq models through
    ``model.generate``.
    """
    import torch

    from ecellm.infer.lookup import Lookup
    from ecellm.speedups.kvcache import decode_cache

    if pass_cost is None:
        pass_cost = PASS_COST_CPU if input_ids.device.type == "cpu" else PASS_COST_ACCELERATOR
    cache = decode_cache(model, cache)
    run = input_ids[:, cache.get_seq_length() :]
    mask = attention_mask
    rows = input_ids.shape[0]
    alive = list(range(rows))  # the original row of each batch row
    tokens: list[list[int]] = [[] for _ in range(rows)]
    queue: list[list[int]] = [[] for _ in range(rows)]  # emitted, not yet fed to the model
    chose_last = [False] * rows  # the queue ends in the model's own choice: worth guessing after
    drafts: list[list[int]] = [[] for _ in range(rows)]  # guesses fed after the queue
    rate = [[0, 0] for _ in range(rows)]  # guesses confirmed, guesses fed
    lookups = (
        [Lookup(input_ids[b][attention_mask[b].bool()].tolist()) for b in range(rows)]
        if draft_tokens > 0
        else []
    )
    keep_logits = 1

    def finished(b: int) -> bool:
        return (proc.done[b] or len(tokens[b]) >= max_new_tokens) and not queue[b]

    while True:
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -run.shape[1] :]
        out = model(
            input_ids=run,
            attention_mask=mask,
            position_ids=pos,
            cache=cache,
            use_cache=True,
            logits_to_keep=keep_logits,
        )
        cache = out.cache
        logits = out.logits
        for i, b in enumerate(alive):
            guess, drafts[b] = drafts[b], []
            if queue[b] or proc.done[b] or len(tokens[b]) >= max_new_tokens:
                continue
            first = logits.shape[1] - 1 - len(guess)  # the scores after the last queued token
            took, queue[b], chose_last[b] = _verify(
                proc, b, logits[i, first:].float(), guess, tokens[b], max_new_tokens
            )
            rate[b][0] += took
            rate[b][1] += len(guess)
            if took < len(guess):  # refused guesses: hidden from every later pass
                mask[i, mask.shape[1] - (len(guess) - took) :] = 0
        keep = [i for i, b in enumerate(alive) if not finished(b)]
        if not keep:
            return tokens
        if 4 * (len(alive) - len(keep)) >= len(alive):
            index = torch.tensor(keep, dtype=torch.long, device=mask.device)
            cache.batch_select_indices(index)
            mask = mask.index_select(0, index)
            alive = [alive[i] for i in keep]
        width = chunk_width([len(queue[b]) for b in alive], len(alive), pass_cost, jump_tokens)
        chunks = [queue[b][:width] for b in alive]
        guesses = []
        for c, b in zip(chunks, alive, strict=True):
            if lookups and chose_last[b] and c and len(c) == len(queue[b]) and not proc.done[b]:
                room = min(draft_tokens, max_new_tokens - len(tokens[b]) - 1)
                drafts[b] = proc.admissible(b, lookups[b].draft(tokens[b], room))
                if drafts[b]:
                    guesses.append((len(c), len(drafts[b]), (rate[b][0] + 1) / (rate[b][1] + 2)))
        full = draft_width(
            max(len(c) for c in chunks) or 1, sum(len(c) for c in chunks), guesses, len(alive), pass_cost
        )
        for c, b in zip(chunks, alive, strict=True):
            drafts[b] = drafts[b][: max(0, full - len(c))]
        keep_logits = 1 + max(len(drafts[b]) for b in alive)
        run = torch.full((len(alive), full), pad_id, dtype=torch.long, device=input_ids.device)
        new_mask = torch.zeros((len(alive), full), dtype=mask.dtype, device=mask.device)
        for i, b in enumerate(alive):
            queue[b] = queue[b][len(chunks[i]) :]
            ids = chunks[i] + drafts[b]
            if ids:
                run[i, full - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                new_mask[i, full - len(ids) :] = 1
        mask = torch.cat([mask, new_mask], dim=1)


def _verify(
    proc: Any,
    b: int,
    scores: Any,
    guess: list[int],
    tokens: list[int],
    max_new_tokens: int,
) -> tuple[int, list[int], bool]:
    """Row ``b``'s choices from ``scores`` (one row per position: after its last queued token,
    then after each guess), appended to ``tokens``: the guesses are taken while the row's own
    choice equals them; the first choice that differs, and the fixed tokens after it, are the
    row's new queue (empty once the row is done). Returns how many guesses were taken, the
    queue, and whether it ends in the model's own choice."""
    took = 0
    while True:
        emitted = proc.step_row(b, scores[took], len(tokens))[: max_new_tokens - len(tokens)]
        emitted = [t for t in emitted if t != proc.eos]
        tokens += emitted
        live = not proc.done[b] and len(tokens) < max_new_tokens
        own = len(emitted) == 1  # the row's choice, no fixed text after it
        if took < len(guess) and emitted and emitted[0] == guess[took]:
            took += 1
            emitted = emitted[1:]  # the model has seen this one: it was a guess
            if not emitted and live:
                continue
            own = False  # what is queued is fixed text
        # the model must see the queue before the row's next choice
        return took, (emitted if live else []), own
