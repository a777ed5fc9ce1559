"""Fast LoRA dropout (same distribution, seeded) and the bf16 frozen base under autocast (adapters
stay fp32)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from ecellm.speedups.dropout import FastDropout, keep_mask, store_frozen_in_bf16, use_fast_lora_dropout

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


def test_bf16_frozen_base_keeps_adapters_fp32_and_outputs_close(tiny_peft_model):
    model = tiny_peft_model().eval()
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


def test_fast_dropout_replaces_every_lora_dropout_and_trains(tiny_peft_model):
    model = tiny_peft_model().train()
    assert use_fast_lora_dropout(model) == 2 * 7 + 1
    assert not any(isinstance(m, torch.nn.Dropout) for n, m in model.named_modules() if "lora_dropout" in n)
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]])
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_A" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_keep_mask_is_the_16_bit_comparison_of_the_seeded_draws():
    torch.manual_seed(11)
    keep = keep_mask((3, 5), 6554)
    torch.manual_seed(11)  # the same draws, compared by hand: drop where u < 6554 - 32768
    seed = int(torch.randint(0, 1 << 62, (1,)).item())  # one torch draw seeds numpy's SFC64
    words = np.random.SFC64(seed).random_raw(4)
    uniform = torch.from_numpy(words.view(np.int16)[:15]).view(3, 5)
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
