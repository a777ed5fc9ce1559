"""Decode-step kernels: short-query attention equals SDPA; the in-place KV cache equals
DynamicCache; prepacked bf16 linear layers equal ``F.linear``; the constrained loop's chunk width;
``dtype='auto'`` loads bf16 for CPU inference only where the CPU has bf16."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
from tests.conftest import FIXTURES

from ecellm.infer.constrained import chunk_width
from ecellm.speedups.attention import SHORT_QUERY, attention_forward, short_query_attention
from ecellm.speedups.kvcache import SPARE, GrowingLayer, growing
from ecellm.speedups.packed import packed_linears, supported

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
    kept = grown._kbuf.data_ptr()
    k, v = torch.randn(1, 3, 2, 4), torch.randn(1, 3, 2, 4)
    a, b = plain.update(k, v), grown.update(k, v)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert grown._kbuf.data_ptr() == kept  # the selection kept its room: no reallocation
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


def _bf16_layers() -> torch.nn.Module:
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 16, bias=False))
    return net.to(torch.bfloat16)


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_packed_linears_equal_plain_linear_and_are_removed_afterwards():
    net = _bf16_layers()
    x = torch.randn(3, 5, 32).to(torch.bfloat16)
    with torch.no_grad():
        want = net(x)
        with packed_linears(net) as count:
            assert count == 2
            assert all("forward" in m.__dict__ for m in (net[0], net[2]))
            got = net(x)
    assert torch.allclose(got.float(), want.float(), atol=1e-2, rtol=1e-2)
    assert not any("forward" in m.__dict__ for m in net.modules())


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_packed_linears_reuse_a_store_until_a_weight_changes():
    net = _bf16_layers()
    x = torch.randn(2, 32).to(torch.bfloat16)
    store: dict = {}
    with torch.no_grad():
        with packed_linears(net, store):
            first = {k: v[1] for k, v in store.items()}
        assert len(first) == 2
        with packed_linears(net, store):
            assert all(store[k][1] is first[k] for k in first)  # packed once, reused
        net[2].weight.mul_(2)  # an in-place update (e.g. merging an adapter) must repack
        want = net(x)
        with packed_linears(net, store):
            assert store[id(net[2])][1] is not first[id(net[2])]
            assert store[id(net[0])][1] is first[id(net[0])]
            got = net(x)
    assert torch.allclose(got.float(), want.float(), atol=1e-2, rtol=1e-2)


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_packed_linears_fall_back_to_plain_linear_under_autograd():
    net = _bf16_layers()
    x = torch.randn(4, 32).to(torch.bfloat16).requires_grad_()
    with packed_linears(net):
        net(x).float().sum().backward()  # the packed op has no backward: F.linear must run
    assert x.grad is not None and net[0].weight.grad is not None


def test_packed_linears_leave_fp32_models_alone():
    net = _bf16_layers().float()
    with packed_linears(net) as count:
        assert count == 0
        assert not any("forward" in m.__dict__ for m in net.modules())


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
@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_a_bf16_model_predicts_the_same_with_packed_weights(smollm2, monkeypatch):
    """The hf backend packs a bf16 model's linear layers for a run: same choice scores and
    constrained texts as plain ``F.linear``, and the model is left unpacked afterwards."""
    import copy
    import dataclasses

    import ecellm.speedups.packed as packed
    from ecellm.data.loaders import load_samples
    from ecellm.infer.backends.hf import HFBackend
    from ecellm.infer.predict import make_requests

    monkeypatch.setenv("ECELLM_THREADS", "1")
    fixture = FIXTURES / "samples_mixed.jsonl"
    samples = [s for s in load_samples(fixture) if s.task in ("PSI", "SA", "QPR")][:6]
    loaded = dataclasses.replace(smollm2, model=copy.deepcopy(smollm2.model).to(torch.bfloat16))
    backend = HFBackend(loaded, batch_size=4)
    assert backend.describe()["packed_linear_layers"] == 30 * 7 + 1  # 7 per layer + the LM head
    reqs = make_requests(backend, samples)
    assert {r.mode for r in reqs} == {"choice", "constrained"}
    runs = []
    for use in (True, False):
        monkeypatch.setattr(packed, "_SUPPORTED", use)
        runs.append({c.id: (c.text, c.choice_logprobs) for c in backend.run(reqs)})
        assert not any("forward" in m.__dict__ for m in loaded.model.modules())
    assert runs[0] == runs[1]
