"""Fused LoRA layers: the formula forward and backward, PEFT's loss and gradients with the same
dropout masks, and the fallbacks."""

from __future__ import annotations

import os

import pytest
import torch
from tests.conftest import tiny_llama

from ecellm.speedups.dropout import keep_mask, store_frozen_in_bf16, use_fast_lora_dropout
from ecellm.speedups.fused_lora import FusedLoraLinear, fusable, fused_lora_linears
from ecellm.speedups.packed import packed_frozen_linears, supported

os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
def test_fused_lora_gives_peft_loss_and_gradients_with_the_same_dropout_masks(tiny_peft_model):
    model = tiny_peft_model().train()
    use_fast_lora_dropout(model)
    store_frozen_in_bf16(model)
    reference = tiny_peft_model().train()  # the same weights in fp32, no autocast: the target
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
def test_fused_lora_skips_what_it_cannot_fuse_and_falls_back_at_run_time(tiny_peft_model):
    model = tiny_peft_model()
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
def test_fused_lora_leaves_dora_and_multi_adapter_layers_to_peft(tiny_peft_model):
    from peft import LoraConfig, get_peft_model

    def bf16_fast(model: torch.nn.Module) -> torch.nn.Module:
        use_fast_lora_dropout(model)
        store_frozen_in_bf16(model)
        return model

    base = tiny_llama(vocab_size=64, hidden_size=32, intermediate_size=48, num_attention_heads=4)
    dora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], use_dora=True))
    assert fusable(bf16_fast(dora)) == []
    two = tiny_peft_model()
    two.add_adapter("second", two.peft_config["default"])  # same targets: every layer holds two adapters
    assert fusable(bf16_fast(two)) == []
