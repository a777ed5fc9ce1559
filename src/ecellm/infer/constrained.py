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
    texts = tokenizer.batch_decode(
        [[anchor, i] for i in range(vocab_size)], clean_up_tokenization_spaces=False
    )
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


# Cap on a pass's chunk (rows x width, padding included): a guard against huge chunks.
JUMP_TOKENS = 128

# What one forward pass costs beyond the positions it feeds, in fed positions. Measured on
# SmolLM2-135M (bf16, 2 CPU threads, 16 rows, 400 cached positions): a pass took ~57 ms plus
# ~1.25 ms per fed position (padding included), so a pass costs about as much as 45 positions.
# Accelerators run extra positions almost for free, which a large value expresses.
PASS_COST_CPU = 45
PASS_COST_ACCELERATOR = 1000


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


def decode(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    cache: Any,
    proc: GrammarProcessor,
    max_new_tokens: int,
    pad_id: int,
    jump_tokens: int = JUMP_TOKENS,
    pass_cost: int | None = None,
) -> list[list[int]]:
    """Greedy constrained decoding with jump-forward: a forward pass feeds each row several of
    the tokens it has emitted but the model has not seen yet (its chosen token plus the
    grammar-fixed tokens after it), and scores are consulted only once a row's queue is empty.

    Why not ``model.generate``: there every token costs a decode step, and an AVE answer is
    mostly fixed JSON skeleton, so most steps would compute logits nobody looks at. The tokens
    emitted are those of :meth:`GrammarProcessor.__call__` under ``generate`` (a test checks).

    ``input_ids``/``attention_mask`` cover the whole (left-padded) prompt; ``cache`` holds its
    first ``cache.get_seq_length()`` positions (a shared prefix) or is ``None``. Rows feed
    different numbers of tokens per pass, so each pass's chunk is left-padded with mask 0 and
    positions come from the mask's cumulative sum. The chunk width trades passes against padding
    (:func:`chunk_width`, ``pass_cost`` defaults per device), and finished rows leave the batch
    once they are a quarter of it, so they stop costing positions. Returns each row's new ids
    without EOS.

    Causal LMs only: an encoder-decoder's decoder (T5) takes no position ids, so left-padded
    chunks would shift its relative positions; the hf backend runs seq2seq models through
    ``model.generate`` with this processor instead, which emits the same tokens one per step.
    """
    import torch

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
            logits_to_keep=1,
        )
        cache = out.cache
        scores = out.logits[:, -1, :].float()
        for i, b in enumerate(alive):
            if queue[b] or proc.done[b] or len(tokens[b]) >= max_new_tokens:
                continue
            emitted = proc.step_row(b, scores[i], len(tokens[b]))[: max_new_tokens - len(tokens[b])]
            emitted = [t for t in emitted if t != proc.eos]
            tokens[b] += emitted
            if not proc.done[b] and len(tokens[b]) < max_new_tokens:
                queue[b] = emitted  # the model must see them before the row's next choice
        keep = [i for i, b in enumerate(alive) if not finished(b)]
        if not keep:
            return tokens
        if 4 * (len(alive) - len(keep)) >= len(alive):
            index = torch.tensor(keep, dtype=torch.long, device=mask.device)
            cache.batch_select_indices(index)
            mask = mask.index_select(0, index)
            alive = [alive[i] for i in keep]
        width = chunk_width([len(queue[b]) for b in alive], len(alive), pass_cost, jump_tokens)
        run = torch.full((len(alive), width), pad_id, dtype=torch.long, device=input_ids.device)
        new_mask = torch.zeros((len(alive), width), dtype=mask.dtype, device=mask.device)
        for i, b in enumerate(alive):
            chunk, queue[b] = queue[b][:width], queue[b][width:]
            if chunk:
                run[i, width - len(chunk) :] = torch.tensor(chunk, dtype=torch.long)
                new_mask[i, width - len(chunk) :] = 1
        mask = torch.cat([mask, new_mask], dim=1)
