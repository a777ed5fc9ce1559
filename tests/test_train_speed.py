"""CPU training speed-ups: fast LoRA dropout (same distribution), a bf16 frozen base under
autocast (adapters stay fp32), eager attention (same loss as SDPA)."""

from __future__ import annotations

import os

import pytest
import torch

from ecellm.models.packed import packed_frozen_linears, supported
from ecellm.train.dropout import FastDropout, store_frozen_in_bf16, use_fast_lora_dropout

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_fast_dropout_drops_at_rate_p_scales_survivors_and_is_seeded():
    layer = FastDropout(0.1).train()
    x = torch.ones(1000, 1000, requires_grad=True)
    torch.manual_seed(3)
    y = layer(x)
    scale = 65536 / (65536 - 6554)  # p = 0.1 rounds to 6554 / 65536
    assert layer.scale == pytest.approx(scale)
    values = torch.unique(y.detach()).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(scale)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 6554 / 65536) < 0.0015  # 5 standard deviations over 1e6 draws
    assert abs(y.mean().item() - 1.0) < 0.002  # unbiased
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * mask * scale)/dx = mask * scale, and x = 1
    torch.manual_seed(3)
    assert torch.equal(layer(x), y)
    # odd sizes (not a multiple of four lanes) and other shapes work
    assert layer(torch.ones(3, 5, 7)).shape == (3, 5, 7)
    layer.eval()
    z = torch.randn(4, 4)
    assert layer(z) is z
    assert FastDropout(0.0).train()(z) is z
    with pytest.raises(ValueError):
        FastDropout(1.0)


def _tiny_peft_model():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    base = LlamaForCausalLM(config)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules=targets))
    for name, p in model.named_parameters():  # non-zero B so the adapters matter in the comparison
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    return model


def test_bf16_frozen_base_keeps_adapters_fp32_and_outputs_close():
    model = _tiny_peft_model().eval()
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = model(input_ids=ids).logits.float()
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    # 2 x 7 projections + the embeddings (one parameter shared with the head) + 2 x 2 norms + final norm
    assert store_frozen_in_bf16(model) == len(frozen) == 14 + 1 + 4 + 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        after = model(input_ids=ids).logits.float()
    # the matmuls saw bf16 weights before too; only the bf16 hidden states differ
    assert torch.allclose(before, after, atol=0.05 * before.abs().max().item())
    assert before.argmax(-1).tolist() == after.argmax(-1).tolist()
    assert all(p.dtype == torch.bfloat16 for p in model.parameters() if not p.requires_grad)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert (
        model.get_input_embeddings().weight is model.get_output_embeddings().base_layer.weight
    )  # still tied


def test_fast_dropout_replaces_every_lora_dropout_and_trains():
    model = _tiny_peft_model().train()
    assert use_fast_lora_dropout(model) == 2 * 7 + 1
    assert not any(isinstance(m, torch.nn.Dropout) for n, m in model.named_modules() if "lora_dropout" in n)
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]])
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_A" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_packed_frozen_base_gives_the_same_loss_and_adapter_gradients():
    model = _tiny_peft_model().train()
    store_frozen_in_bf16(model)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0  # the two passes must see the same network
    ids = torch.tensor([[1, 5, 9, 13, 2, 7], [3, 4, 8, 2, 6, 1]])

    def loss_and_grads() -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    plain_loss, plain = loss_and_grads()
    with packed_frozen_linears(model) as count:
        assert count == 2 * 7 + 1  # every frozen projection and the head's base layer
        packed_loss, packed = loss_and_grads()
    assert not any("forward" in m.__dict__ for m in model.modules())
    assert packed_loss == pytest.approx(plain_loss, rel=1e-3)
    assert plain.keys() == packed.keys() and len(plain) == 2 * (2 * 7 + 1)
    for name, grad in plain.items():
        scale = grad.abs().max().item() or 1.0
        assert torch.allclose(packed[name], grad, atol=0.02 * scale), name


def test_packed_frozen_base_skips_trainable_and_fp32_layers():
    model = _tiny_peft_model()  # fp32 base: nothing to pack
    with packed_frozen_linears(model) as count:
        assert count == 0


@pytest.mark.slow
def test_eager_and_sdpa_attention_give_the_same_completion_loss(smollm2):
    from pathlib import Path

    from ecellm.train.data import encode, make_collator, read_samples
    from ecellm.train.loss import completion_loss

    fixture = Path(__file__).parent / "fixtures" / "train_samples.jsonl"
    samples = read_samples(str(fixture), tasks=["PRP", "AG", "SA"], settings=None, splits=["train"])[:4]
    rows = encode(samples, smollm2.tokenizer, template="alpaca", cutoff=1024, seq2seq=False)
    model = smollm2.model.eval()
    batch = make_collator("grouped", smollm2.tokenizer, model, False)(rows)  # padded rows
    previous = model.config._attn_implementation
    losses = {}
    try:
        for attn in ("sdpa", "eager"):
            model.set_attn_implementation(attn)
            with torch.no_grad():
                losses[attn] = completion_loss(model, batch).item()
    finally:
        model.set_attn_implementation(previous)
    assert losses["eager"] == pytest.approx(losses["sdpa"], rel=1e-4)
