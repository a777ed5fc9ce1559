"""Attention for short queries against a long KV cache on CPU (decode steps and jump-forward chunks).

Why: PyTorch's CPU flash-attention kernel is built for long queries. For one query token per row
against a 700-token cache in bf16 it took ~3.7 ms per layer call, while two grouped matmuls and a
softmax take ~0.3 ms; with several query tokens (a jump-forward chunk) transformers also copies
every key/value head ``num_key_value_groups`` times first. In constrained AVE/QPR decoding that
kernel was a fifth of the run time.

:func:`attention_forward` computes those short-query cases with grouped-query matmuls (each
key/value head serves its group of query heads without a copy; softmax in fp32). Long queries
(prefill) with a boolean mask go to PyTorch's SDPA in query chunks that skip the causally hidden
keys (:func:`_chunked_prefill`). Everything else (training, dropout, no mask with several
queries) goes to transformers' own SDPA function, so it is a drop-in for ``sdpa`` and gives the
same outputs up to float rounding.
It is registered as attention implementation :data:`NAME` with SDPA's mask builder; the hf
backend switches a CPU model to it for the duration of a run (:func:`short_query_attention`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ecellm.speedups import enabled, register_attention

NAME = "ecellm_sdpa"
SHORT_QUERY = 32  # longer queries (prefill) go to SDPA, in chunks (see _chunked_prefill)
PREFILL_CHUNK = 64


def attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Same contract as transformers' ``sdpa_attention_forward``: ``query`` is (batch, heads,
    q_len, dim), keys/values (batch, kv_heads, kv_len, dim); returns (batch, q_len, heads, dim)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q_len = query.shape[2]
    plain = (  # CPU inference without extras: what both of our paths handle
        query.device.type == "cpu"
        and not dropout
        and not getattr(module, "training", False)
        and all(kwargs.get(k) is None for k in ("position_bias", "softcap", "sinks"))
        and key.shape[-1] == value.shape[-1] == query.shape[-1]
    )
    bool_mask = attention_mask is not None and attention_mask.dtype == torch.bool
    if plain and q_len > SHORT_QUERY and bool_mask and query.shape[1] % key.shape[1] == 0:
        return _chunked_prefill(query, key, value, attention_mask, scaling), None
    if not (plain and q_len <= SHORT_QUERY and (bool_mask or (attention_mask is None and q_len == 1))):
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    batch, heads, _, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    # head h uses key/value head h // groups: stack each group's queries along the query axis
    q = query.reshape(batch, kv_heads, groups * q_len, dim)
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # (batch, kv_heads, groups*q, kv)
    scores = scores.view(batch, kv_heads, groups, q_len, kv_len)
    if attention_mask is not None:
        allowed = attention_mask[..., -kv_len:]  # (batch|1, 1, q_len, kv_len)
        # the most negative float rather than -inf: a padding query row with nothing allowed gets
        # a uniform (unused) distribution instead of NaN
        scores = scores.masked_fill(~allowed[:, :, None], torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=-1).to(value.dtype)
    out = torch.matmul(probs.view(batch, kv_heads, groups * q_len, kv_len), value)
    out = out.view(batch, heads, q_len, dim).transpose(1, 2).contiguous()
    return out, None


def _chunked_prefill(query: Any, key: Any, value: Any, mask: Any, scaling: float | None) -> Any:
    """Prefill attention in query chunks of :data:`PREFILL_CHUNK`, each against only the keys up
    to its last query's position.

    Why: with an explicit mask (left padding, a shared prefix) SDPA's CPU kernel cannot skip the
    causally hidden half of the score matrix, and transformers copies each key/value head once
    per query head of its group. Chunking skips the hidden keys (the mask is checked, not
    assumed: a chunk with a visible key beyond its end keeps all keys) and ``enable_gqa`` drops
    the copies: 8 rows x 300 queries x 360 keys took 15 ms instead of 25 ms.
    """
    import torch
    import torch.nn.functional as F

    q_len, kv_len = query.shape[2], key.shape[2]
    mask = mask[..., -kv_len:]
    gqa = query.shape[1] != key.shape[1]
    outs = []
    for a in range(0, q_len, PREFILL_CHUNK):
        e = min(q_len, a + PREFILL_CHUNK)
        end = kv_len - q_len + e  # keys at or before the chunk's last query position
        chunk_mask = mask[..., a:e, :]
        if end < kv_len and bool(chunk_mask[..., end:].any()):
            end = kv_len
        outs.append(
            F.scaled_dot_product_attention(
                query[:, :, a:e],
                key[:, :, :end],
                value[:, :, :end],
                attn_mask=chunk_mask[..., :end],
                scale=scaling,
                enable_gqa=gqa,
            )
        )
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return out.transpose(1, 2).contiguous()


def register() -> str:
    """Register :data:`NAME` with transformers (idempotent); SDPA's mask builder serves it."""
    return register_attention(NAME, attention_forward, "sdpa")


@contextmanager
def short_query_attention(model: Any) -> Iterator[bool]:
    """Run a CPU model whose attention is ``sdpa`` with :data:`NAME` inside the block, then put
    ``sdpa`` back (the model may be shared). Yields whether it switched."""
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    device = getattr(model, "device", None)
    if current != "sdpa" or getattr(device, "type", "cpu") != "cpu" or not enabled():
        yield False
        return
    model.set_attn_implementation(register())
    try:
        yield True
    finally:
        model.set_attn_implementation("sdpa")
