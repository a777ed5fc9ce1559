"""Short-query and chunked-prefill attention equal SDPA; the backend switches a model to it for a
run and back."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

from ecellm.speedups.attention import SHORT_QUERY, attention_forward, short_query_attention

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _mask(batch: int, q_len: int, kv_len: int, pads: list[int]) -> torch.Tensor:
    """Bool mask (batch, 1, q, kv): causal for the last q positions, row b's first pads[b] keys hidden."""
    q_pos = torch.arange(kv_len - q_len, kv_len)[:, None]
    allowed = torch.arange(kv_len)[None, :] <= q_pos
    mask = allowed.expand(batch, 1, q_len, kv_len).clone()
    for b, p in enumerate(pads):
        mask[b, :, :, :p] = False
    return mask


@pytest.mark.parametrize("q_len", [1, 5, SHORT_QUERY])
def test_short_query_attention_equals_sdpa(q_len):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    module = SimpleNamespace(num_key_value_groups=3, training=False, is_causal=True)
    q = torch.randn(2, 9, q_len, 16)
    k, v = torch.randn(2, 3, 40, 16), torch.randn(2, 3, 40, 16)
    mask = _mask(2, q_len, 40, [0, 7])
    ours, _ = attention_forward(module, q, k, v, mask, scaling=0.25)
    ref, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.25)
    assert ours.shape == ref.shape == (2, q_len, 9, 16)
    assert torch.allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("q_len", [SHORT_QUERY + 1, 70, 150])
@pytest.mark.parametrize("causal", [True, False])
def test_chunked_prefill_attention_equals_sdpa(q_len, causal):
    """Long queries run in chunks against the keys up to each chunk's end; a mask that shows a
    chunk later keys (not causal) must make it keep every key."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    module = SimpleNamespace(num_key_value_groups=3, training=False, is_causal=True)
    kv_len = q_len + 20  # 20 cached (prefix) positions before the queries
    q = torch.randn(2, 9, q_len, 16)
    k, v = torch.randn(2, 3, kv_len, 16), torch.randn(2, 3, kv_len, 16)
    mask = _mask(2, q_len, kv_len, [0, 7])
    if not causal:
        mask[:, :, :, -1] = True
    ours, _ = attention_forward(module, q, k, v, mask, scaling=0.25)
    ref, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.25)
    assert ours.shape == ref.shape == (2, q_len, 9, 16)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_short_query_attention_survives_a_query_row_with_nothing_to_attend():
    module = SimpleNamespace(num_key_value_groups=1, training=False)
    q, k, v = torch.randn(1, 2, 2, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    mask = torch.ones(1, 1, 2, 6, dtype=torch.bool)
    mask[0, 0, 0] = False  # a padding query position
    out, _ = attention_forward(module, q, k, v, mask)
    assert torch.isfinite(out).all()


def test_short_query_attention_is_switched_on_for_a_run_and_back_off(smollm2):
    model = smollm2.model
    assert model.config._attn_implementation == "sdpa"
    with short_query_attention(model) as switched:
        assert switched and model.config._attn_implementation == "ecellm_sdpa"
    assert model.config._attn_implementation == "sdpa"
