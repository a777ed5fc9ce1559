"""Decode-step kernels: short-query attention equals SDPA; the in-place KV cache equals
DynamicCache; ``dtype='auto'`` loads bf16 for CPU inference only where the CPU has bf16."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

from ecellm.infer.attention import SHORT_QUERY, attention_forward, short_query_attention
from ecellm.infer.kvcache import SPARE, GrowingLayer, growing

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


def test_growing_layer_matches_dynamic_layer_through_growth_crop_and_batch_selection():
    from transformers.cache_utils import DynamicLayer

    torch.manual_seed(1)
    plain, grown = DynamicLayer(), GrowingLayer()
    for step, width in enumerate([7, 1, 1, 3, SPARE + 5, 1]):
        k, v = torch.randn(2, 3, width, 4), torch.randn(2, 3, width, 4)
        a, b = plain.update(k, v), grown.update(k, v)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), step
        if step == 3:
            plain.crop(-2)
            grown.crop(-2)
    plain.batch_select_indices(torch.tensor([1]))
    grown.batch_select_indices(torch.tensor([1]))
    k, v = torch.randn(1, 3, 2, 4), torch.randn(1, 3, 2, 4)
    a, b = plain.update(k, v), grown.update(k, v)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert grown.get_seq_length() == plain.get_seq_length() == 7 + 1 + 1 + 3 - 2 + SPARE + 5 + 1 + 2


def test_generation_with_the_growing_cache_is_identical(smollm2):
    from transformers import DynamicCache

    tok, model = smollm2.tokenizer, smollm2.model
    tok.padding_side = "left"
    enc = tok(
        ["Product: red cotton shirt. Category:", "Is this a shoe? Answer:"], return_tensors="pt", padding=True
    )
    outs = []
    for make in (
        lambda: DynamicCache(config=model.config),
        lambda: growing(DynamicCache(config=model.config)),
    ):
        with torch.no_grad():
            outs.append(
                model.generate(
                    **enc, cache=make(), max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id
                )
            )
    assert torch.equal(outs[0], outs[1])


def test_auto_dtype_is_bf16_for_cpu_inference_only_with_native_bf16(monkeypatch):
    from ecellm.models import loading

    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: True)
    assert loading.auto_dtype("cpu", for_training=False) == torch.bfloat16
    assert loading.auto_dtype("cpu", for_training=True) == torch.float32
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: False)
    assert loading.auto_dtype("cpu", for_training=False) == torch.float32
