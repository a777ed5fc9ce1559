"""Grouped training attention equals transformers' eager attention, forward and backward, and a
model is switched to it for a run and back."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import tiny_llama

from ecellm.speedups.train_attention import (
    NAME,
    GroupedAttention,
    attention_forward,
    grouped_training_attention,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class _Module(torch.nn.Module):
    """What eager attention reads of its layer."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups = groups


def _additive_mask(lengths: list[int], q_len: int, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, q, kv) additive mask: causal, keys past each row's length hidden (right padding)."""
    causal = torch.arange(q_len)[None, :] <= torch.arange(q_len)[:, None]
    allowed = torch.stack([causal & (torch.arange(q_len)[None, :] < n) for n in lengths])[:, None]
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


def _run(fn, q, k, v, mask, scale, up):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = fn(q, k, v, mask, scale)
    (out.float() * up).sum().backward()
    return out.detach().float(), [t.grad.float() for t in (q, k, v)]


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 3),
    kv_heads=st.integers(1, 3),
    groups=st.integers(1, 3),
    q_len=st.integers(1, 12),
    dim=st.sampled_from([4, 8]),
    bf16=st.booleans(),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_grouped_attention_equals_eager_forward_and_backward(
    batch, kv_heads, groups, q_len, dim, bf16, seed, data
):
    from transformers.models.llama.modeling_llama import eager_attention_forward

    dtype = torch.bfloat16 if bf16 else torch.float32
    gen = torch.Generator().manual_seed(seed)
    heads = kv_heads * groups
    q = torch.randn(batch, heads, q_len, dim, generator=gen).to(dtype)
    k = torch.randn(batch, kv_heads, q_len, dim, generator=gen).to(dtype)
    v = torch.randn(batch, kv_heads, q_len, dim, generator=gen).to(dtype)
    lengths = data.draw(st.lists(st.integers(1, q_len), min_size=batch, max_size=batch))
    mask = _additive_mask(lengths, q_len, dtype)
    up = torch.randn(batch, q_len, heads, dim, generator=gen)
    scale = dim**-0.5

    def eager(q, k, v, mask, scale):
        return eager_attention_forward(_Module(groups), q, k, v, mask, scaling=scale)[0]

    want, want_grads = _run(eager, q, k, v, mask, scale, up)
    got, got_grads = _run(GroupedAttention.apply, q, k, v, mask, scale, up)
    assert got.shape == want.shape == (batch, q_len, heads, dim)
    tol = 0.02 if bf16 else 1e-5
    assert torch.allclose(got, want, atol=tol * max(1.0, want.abs().max().item()), rtol=tol)
    for g, w in zip(got_grads, want_grads, strict=True):
        assert torch.allclose(g, w, atol=2 * tol * max(1.0, w.abs().max().item()), rtol=2 * tol)


def test_cases_it_does_not_cover_go_to_eager(monkeypatch):
    def refuse(*args):
        raise AssertionError("GroupedAttention used")

    monkeypatch.setattr(GroupedAttention, "apply", refuse)
    q = torch.randn(1, 2, 3, 4)
    k = v = torch.randn(1, 1, 3, 4)
    mask = _additive_mask([3], 3, torch.float32)
    module = _Module(2).train()
    for kwargs in (
        {"attention_mask": None},
        {"attention_mask": mask > -1},
        {"dropout": 0.1},
        {"softcap": 30.0},
    ):
        out, _ = attention_forward(module, q, k, v, **{"attention_mask": mask, "scaling": 0.5, **kwargs})
        assert out.shape == (1, 3, 2, 4)


def _loss_and_grads(model, ids, mask):
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_a_model_trains_with_it_as_with_eager_and_gets_eager_back(monkeypatch):
    model = tiny_llama(num_attention_heads=4, num_key_value_heads=2, attn_implementation="eager").train()
    ids = torch.tensor([[1, 5, 9, 13, 2, 7], [3, 4, 8, 2, 6, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    want_loss, want = _loss_and_grads(model, ids, mask)
    with grouped_training_attention(model) as switched:
        assert switched and model.config._attn_implementation == NAME
        got_loss, got = _loss_and_grads(model, ids, mask)
    assert model.config._attn_implementation == "eager"
    assert got_loss == pytest.approx(want_loss, rel=0.01)
    assert got.keys() == want.keys()
    for name, g in got.items():
        assert torch.allclose(g, want[name], atol=0.05 * want[name].abs().max().item() + 1e-6), name


def test_it_leaves_other_attention_and_the_off_switch_alone(monkeypatch):
    model = tiny_llama(attn_implementation="sdpa")
    with grouped_training_attention(model) as switched:
        assert not switched and model.config._attn_implementation == "sdpa"
    model = tiny_llama(attn_implementation="eager")
    monkeypatch.setenv("ECELLM_SPEEDUPS", "0")
    with grouped_training_attention(model) as switched:
        assert not switched and model.config._attn_implementation == "eager"


def test_models_whose_eager_attention_is_not_the_standard_one_keep_it():
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=32, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)
    model = T5ForConditionalGeneration(config)
    model.set_attn_implementation("eager")
    with grouped_training_attention(model) as switched:
        assert not switched and model.config._attn_implementation == "eager"
