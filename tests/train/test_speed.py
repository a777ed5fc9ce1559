"""CPU training speed-ups: fast LoRA dropout (same distribution), a bf16 frozen base under
autocast (adapters stay fp32), packed frozen weights and fused LoRA layers (same loss and
gradients), eager attention (same loss as SDPA)."""

from __future__ import annotations

import os

import pytest
import torch
from tests.conftest import FIXTURES

from ecellm.speedups.dropout import FastDropout, keep_mask, store_frozen_in_bf16, use_fast_lora_dropout
from ecellm.speedups.fused_lora import FusedLoraLinear, fusable, fused_lora_linears
from ecellm.speedups.packed import packed_frozen_linears, supported

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

    from ecellm.train.data import encode, make_collator, read_samples
    from ecellm.train.loss import completion_loss

    fixture = FIXTURES / "train_samples.jsonl"
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


def test_keep_mask_is_the_16_bit_comparison_of_the_seeded_draws():
    torch.manual_seed(11)
    keep = keep_mask((3, 5), 6554)
    torch.manual_seed(11)  # the same draws, compared by hand: drop where u < 6554 - 32768
    bits = torch.randint(-(1 << 63), (1 << 63) - 1, (4,), dtype=torch.int64)
    uniform = bits.view(torch.int16)[:15].view(3, 5)
    assert keep.dtype == torch.bfloat16
    assert torch.equal(keep, (uniform >= 6554 - 32768).to(torch.bfloat16))
    big = keep_mask((1000, 1000), 6554)
    assert set(torch.unique(big).tolist()) == {0.0, 1.0}
    assert abs((big == 0).float().mean().item() - 6554 / 65536) < 0.0015
    # the edges of the comparison: everything kept at 0 units, everything dropped at 65536
    assert keep_mask((7,), 0).eq(1).all() and keep_mask((7,), 65536).eq(0).all()
    with pytest.raises(ValueError, match="even"):
        keep_mask((4,), 6553)
    assert FastDropout(0.05).drop_units == 3276  # 0.05 * 65536 = 3276.8, rounded to an even count


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_fused_lora_linear_matches_its_formula_forward_and_backward():
    from ecellm.speedups.packed import pack_weight

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, generator=gen).to(torch.bfloat16).requires_grad_()
    w = torch.randn(6, 8, generator=gen).to(torch.bfloat16)
    bias = torch.randn(6, generator=gen).to(torch.bfloat16)
    a = (0.3 * torch.randn(4, 8, generator=gen)).requires_grad_()  # fp32 adapters, r = 4
    b = (0.3 * torch.randn(6, 4, generator=gen)).requires_grad_()
    coef, units = 2.0 * 65536 / (65536 - 16384), 16384  # scaling 2, p = 0.25
    torch.manual_seed(4)
    y = FusedLoraLinear.apply(x, a, b, pack_weight(w), pack_weight(w.t().contiguous()), bias, coef, units)
    torch.manual_seed(4)
    keep = keep_mask((6, 8), units).float().view(2, 3, 8)
    assert 0 < keep.sum() < keep.numel()
    # the same function in fp32 autograd: base + coef * ((x * keep) A^T) B^T
    xf = x.detach().float().requires_grad_()
    af, bf = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    want = xf @ w.float().t() + bias.float() + coef * ((xf * keep) @ af.t()) @ bf.t()
    assert y.dtype == torch.bfloat16 and y.shape == (2, 3, 6)
    assert torch.allclose(y.float(), want, atol=0.05, rtol=0.02)
    up = torch.randn(2, 3, 6, generator=gen)
    (y.float() * up).sum().backward()
    (want * up).sum().backward()
    assert a.grad.dtype == b.grad.dtype == torch.float32
    for got, ref in ((x.grad.float(), xf.grad), (a.grad, af.grad), (b.grad, bf.grad)):
        assert torch.allclose(got, ref, atol=0.03 * ref.abs().max().item(), rtol=0.02)
    # the input gradient of a dropped element comes from the base only
    base_only = (up @ w.float()).to(torch.bfloat16).float()
    dropped = keep == 0
    assert torch.allclose(x.grad.float()[dropped], base_only[dropped], atol=0.05)


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_fused_lora_gives_peft_loss_and_gradients_with_the_same_dropout_masks():
    model = _tiny_peft_model().train()
    use_fast_lora_dropout(model)
    store_frozen_in_bf16(model)
    reference = _tiny_peft_model().train()  # the same weights in fp32, no autocast: the target
    use_fast_lora_dropout(reference)
    ids = torch.tensor([[1, 5, 9, 13, 2, 7], [3, 4, 8, 2, 6, 1]])

    def loss_and_grads(net: torch.nn.Module, bf16: bool) -> tuple[float, dict[str, torch.Tensor]]:
        net.zero_grad()
        torch.manual_seed(5)  # fused and PEFT layers draw the same masks in the same order
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = net(input_ids=ids, labels=ids).loss
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in net.named_parameters() if p.requires_grad}

    exact_loss, exact = loss_and_grads(reference, False)
    peft_loss, peft = loss_and_grads(model, True)
    with fused_lora_linears(model) as bases, packed_frozen_linears(model, exclude=bases) as rest:
        assert len(bases) == 2 * 7 + 1 and rest == 0  # every adapted layer fused, nothing left over
        fused_loss, fused = loss_and_grads(model, True)
    assert not any("forward" in m.__dict__ for m in model.modules())  # PEFT's forwards are back
    assert fused_loss == pytest.approx(peft_loss, rel=2e-3)
    assert fused_loss == pytest.approx(exact_loss, rel=2e-3)

    def error(grads: dict[str, torch.Tensor]) -> float:
        return sum(((grads[n] - g).norm() / g.norm()).item() for n, g in exact.items()) / len(exact)

    assert fused.keys() == exact.keys() and len(exact) == 2 * (2 * 7 + 1)
    # bf16 rounding only: fused is as close to the fp32 gradients as PEFT's own bf16 layers are
    assert error(peft) < 0.05 and error(fused) < 1.25 * error(peft)


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_fused_lora_skips_what_it_cannot_fuse_and_falls_back_at_run_time():
    model = _tiny_peft_model()
    assert fusable(model) == []  # fp32 base
    store_frozen_in_bf16(model)
    assert fusable(model) == []  # torch's Bernoulli dropout: PEFT keeps its exact distribution
    use_fast_lora_dropout(model)
    assert len(fusable(model)) == 2 * 7 + 1
    model.eval()
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = model(input_ids=ids).logits.float()
        with fused_lora_linears(model):
            fused = model(input_ids=ids).logits.float()
            with model.disable_adapter():  # disabled adapters: PEFT's forward, base model only
                base_only = model(input_ids=ids).logits.float()
    assert torch.allclose(fused, plain, atol=0.03 * plain.abs().max().item())
    assert not torch.allclose(fused, base_only, atol=1e-3)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), model.disable_adapter():
        assert torch.equal(base_only, model(input_ids=ids).logits.float())


@pytest.mark.skipif(not supported(), reason="this PyTorch build cannot pack bf16 linear weights (oneDNN)")
def test_fused_lora_leaves_dora_and_multi_adapter_layers_to_peft():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    def bf16_fast(model: torch.nn.Module) -> torch.nn.Module:
        use_fast_lora_dropout(model)
        store_frozen_in_bf16(model)
        return model

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    dora = get_peft_model(
        LlamaForCausalLM(config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], use_dora=True)
    )
    assert fusable(bf16_fast(dora)) == []
    two = _tiny_peft_model()
    two.add_adapter("second", two.peft_config["default"])  # same targets: every layer holds two adapters
    assert fusable(bf16_fast(two)) == []
