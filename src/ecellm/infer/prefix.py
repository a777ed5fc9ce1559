"""Shared-prefix KV caching: compute the tokens many prompts start with once, not once per prompt.

Why: on CPU the hf backend's time is prompt prefill, and ECInstruct prompts repeat themselves:
every prompt starts with the alpaca preamble, and each task draws its instruction from a pool of
about five, so prompts of one instruction share the preamble + instruction (60-130 tokens of a
250-600 token prompt). Running that prefix once and only the per-sample suffix per request is
exact: a causal LM's keys and values for a prefix do not depend on what follows it.

How prefixes are found: on token ids, not on template text, so any template, truncation or
tokenizer works and the prefix is by construction a token prefix of every member's prompt. The
encoded prompts are sorted; adjacent common prefixes define a trie, and :func:`plan_groups`
picks the trie nodes that save the most prefill (``(members - 1) * prefix_len`` minus a per-group
overhead), so a group is "all prompts of one instruction" when that pays, "all prompts" (the
preamble) when the instructions differ, and nothing for one-off prompts.

How a batch uses them: rows of one batch may belong to different groups (so batching, which
matters for decoding, is not fragmented by groups). Each group's keys/values are computed once
(batch of one, no padding), and a batch's cache is assembled by left-padding every row's prefix
states to the longest prefix in the batch. The attention mask is then
``[0.. pad, 1.. prefix, 0.. suffix pad, 1.. suffix]`` and position ids come from its cumulative
sum, so each suffix token sits at exactly the position it has in the unshared prompt. Caches are
mutated by forward passes, so every batch gets freshly assembled tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

# A group must save at least this many prefill tokens beyond its own prefix to be worth a
# separate batch-of-one forward pass (small matrices run below peak) and the cache assembly.
GROUP_OVERHEAD_TOKENS = 24
MIN_PREFIX_TOKENS = 8


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two id sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_groups(
    seqs: Sequence[Sequence[int]],
    *,
    min_prefix: int = MIN_PREFIX_TOKENS,
    overhead: int = GROUP_OVERHEAD_TOKENS,
) -> list[int]:
    """The shared-prefix length for each sequence (0 = computed whole), chosen to save prefill.

    Sequences given the same non-zero length ``L`` have identical first ``L`` ids, and ``L`` is
    always shorter than the sequence (a suffix of at least one token is needed for its logits).
    The choice is a small dynamic programme over the trie of the sorted sequences: a node with
    ``n`` members and prefix length ``L`` saves ``(n - 1) * L - overhead`` tokens of prefill, or
    the sum of its children's savings, whichever is larger.
    """
    n = len(seqs)
    out = [0] * n
    if n < 2:
        return out
    order = sorted(range(n), key=lambda i: list(seqs[i]))
    adj = [common_prefix_len(seqs[order[k]], seqs[order[k + 1]]) for k in range(n - 1)]
    lens = [len(seqs[i]) for i in order]

    # Post-order walk over segments [lo, hi] of ``order`` (iterative: tries can be deep).
    # A segment's children are the runs between the adjacent pairs with its minimal LCP.
    best: dict[tuple[int, int], tuple[int, list[tuple[int, int, int]]]] = {}
    stack: list[tuple[int, int, bool]] = [(0, n - 1, False)]
    while stack:
        lo, hi, expanded = stack.pop()
        if lo == hi:
            best[(lo, hi)] = (0, [])
            continue
        raw = min(adj[lo:hi])
        children: list[tuple[int, int]] = []
        start = lo
        for k in range(lo, hi):
            if adj[k] == raw:
                children.append((start, k))
                start = k + 1
        children.append((start, hi))
        if not expanded:
            stack.append((lo, hi, True))
            stack.extend((a, b, False) for a, b in children)
            continue
        length = min(raw, min(lens[lo : hi + 1]) - 1)
        own = (hi - lo) * length - overhead if length >= min_prefix else 0
        kids = sum(best[c][0] for c in children)
        if own > kids and own > 0:
            best[(lo, hi)] = (own, [(lo, hi, length)])
        else:
            best[(lo, hi)] = (kids, [g for c in children for g in best[c][1]])
        for c in children:
            del best[c]
    for lo, hi, length in best[(0, n - 1)][1]:
        for k in range(lo, hi + 1):
            out[order[k]] = length
    return out


@dataclass
class SharedPrefix:
    """One batch's prefix states: row ``b``'s first ``lengths[b]`` prompt ids are cached,
    right-aligned in ``width`` positions (``ids``/``mask`` are ``B x width`` tensors, pads 0 in
    the mask)."""

    layers: list[tuple[Any, Any]]
    ids: Any
    mask: Any
    lengths: list[int]
    width: int

    def cache(self, select: Sequence[int] | None = None) -> Any:
        """A fresh ``DynamicCache`` (forward passes mutate caches) with these states, or with
        the rows ``select`` (repeats allowed) when given."""
        from transformers import DynamicCache

        if select is None:
            return DynamicCache(ddp_cache_data=self.layers)
        import torch

        idx = torch.tensor(list(select), dtype=torch.long, device=self.layers[0][0].device)
        return DynamicCache(
            ddp_cache_data=[(k.index_select(0, idx), v.index_select(0, idx)) for k, v in self.layers]
        )


class PrefixCache:
    """Keys/values of shared prompt prefixes, computed on first use and dropped after last use.

    ``plan`` assigns each request key a prefix; ``batch`` returns what one forward pass or one
    ``generate`` call needs for a batch of keys; ``release`` frees prefixes nobody needs any more
    (a prefix costs ~46 kB per token for SmolLM2-135M in fp32).
    """

    def __init__(self, model: Any, context: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self.model = model
        self.context = context or nullcontext
        self.prefix_len: dict[Hashable, int] = {}
        self.group: dict[Hashable, tuple[int, ...]] = {}
        self.users: dict[tuple[int, ...], int] = {}
        self.states: dict[tuple[int, ...], list[tuple[Any, Any]]] = {}
        self.computed_tokens = 0  # prefix tokens actually run (for describe/diagnostics)
        self.saved_tokens = 0

    def plan(self, encoded: dict[Hashable, list[int]]) -> None:
        """Choose the prefix of every key's ids (see :func:`plan_groups`)."""
        keys = list(encoded)
        lengths = plan_groups([encoded[k] for k in keys])
        for k, length in zip(keys, lengths, strict=True):
            self.prefix_len[k] = length
            if length:
                g = tuple(encoded[k][:length])
                self.group[k] = g
                self.users[g] = self.users.get(g, 0) + 1
        for g, n in self.users.items():
            self.saved_tokens += (n - 1) * len(g)

    def split(self, key: Hashable, ids: list[int]) -> tuple[list[int], list[int]]:
        """(prefix ids, suffix ids) of one request."""
        p = self.prefix_len.get(key, 0)
        return ids[:p], ids[p:]

    def _states(self, group: tuple[int, ...]) -> list[tuple[Any, Any]]:
        hit = self.states.get(group)
        if hit is not None:
            return hit
        import torch

        device = next(self.model.parameters()).device
        ids = torch.tensor([list(group)], dtype=torch.long, device=device)
        with torch.no_grad(), self.context():
            out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
        states = [(k.detach(), v.detach()) for k, v, *_ in out.cache]
        self.states[group] = states
        self.computed_tokens += len(group)
        return states

    def batch(self, keys: Sequence[Hashable], pad_id: int) -> SharedPrefix | None:
        """The shared prefixes of a batch of request keys, or ``None`` when no row has one.

        Every row's prefix states are left-padded to ``width``, the longest prefix in the batch
        (rows without a prefix are all padding).
        """
        groups = [self.group.get(k) for k in keys]
        width = max((len(g) for g in groups if g), default=0)
        if width == 0:
            return None
        import torch

        per_row = [self._states(g) if g else None for g in groups]
        template = next(s for s in per_row if s is not None)
        layers = []
        for layer, (k0, v0) in enumerate(template):
            ks = k0.new_zeros((len(keys), k0.shape[1], width, k0.shape[3]))
            vs = v0.new_zeros((len(keys), v0.shape[1], width, v0.shape[3]))
            for b, s in enumerate(per_row):
                if s is not None:
                    k, v = s[layer]
                    ks[b, :, width - k.shape[2] :] = k[0]
                    vs[b, :, width - v.shape[2] :] = v[0]
            layers.append((ks, vs))
        lengths = [len(g) if g else 0 for g in groups]
        device = template[0][0].device
        mask = torch.zeros((len(keys), width), dtype=torch.long, device=device)
        ids = torch.full((len(keys), width), pad_id, dtype=torch.long, device=device)
        for b, g in enumerate(groups):
            if g:
                mask[b, width - len(g) :] = 1
                ids[b, width - len(g) :] = torch.tensor(g, dtype=torch.long, device=device)
        return SharedPrefix(layers=layers, ids=ids, mask=mask, lengths=lengths, width=width)

    def release(self, keys: Sequence[Hashable]) -> None:
        """Forget prefix states whose last request has run."""
        for k in keys:
            g = self.group.get(k)
            if g is None:
                continue
            self.users[g] -= 1
            if self.users[g] <= 0:
                self.states.pop(g, None)
