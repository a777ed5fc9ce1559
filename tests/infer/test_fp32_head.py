"""Choice scores of 16-bit models come from an fp32 head: no rounding of the logits to bf16."""

from __future__ import annotations

import copy

import pytest
import torch
from tests.conftest import FIXTURES

from ecellm.infer.fp32_head import fp32_head, head_logits_fp32


def _tiny(lora: bool):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(40)  # logits of magnitude ~10-40, where bf16 steps are 0.06-0.25
    if lora:
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "lm_head"]))
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)
    return model.eval()


@pytest.mark.parametrize("lora", [False, True])
def test_a_bf16_head_gives_the_fp32_product_of_its_own_hidden_state(lora):
    model = _tiny(lora).to(torch.bfloat16)
    ids = torch.tensor([[1, 5, 9, 13, 2, 7], [3, 4, 8, 2, 6, 1]])
    seen = {}
    head = model.get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda m, args: seen.__setitem__("h", args[0]))
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with fp32_head(model) as on:
            exact = model(input_ids=ids).logits
    handle.remove()
    assert on and plain.dtype == torch.bfloat16 and exact.dtype == torch.float32
    # the reference: the same bf16 hidden state through the head, all in fp64
    h = seen["h"].double()
    base = getattr(head, "base_layer", head)
    ref = h @ base.weight.double().T
    if lora:
        a, b = head.lora_A["default"].weight.double(), head.lora_B["default"].weight.double()
        ref = ref + (h @ a.T @ b.T) * head.scaling["default"]
    assert torch.allclose(exact.double(), ref, atol=1e-3)
    assert (plain.double() - ref).abs().max() > 10 * (exact.double() - ref).abs().max()
    # the rounding is what made ties: far fewer distinct values among bf16 logits
    assert exact.unique().numel() > plain.unique().numel()
    assert not any(hasattr(m, "_forward_hooks") and m._forward_hooks for m in model.modules())


def test_fp32_models_are_left_alone_and_autocast_is_caught():
    model = _tiny(lora=True)
    ids = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with fp32_head(model) as on:
            same = model(input_ids=ids).logits
        assert not on and torch.equal(plain, same)
        with torch.autocast("cpu", dtype=torch.bfloat16), fp32_head(model) as on:
            out = model(input_ids=ids).logits
        assert on and out.dtype == torch.float32


def test_unknown_heads_keep_their_output():
    head = torch.nn.Linear(4, 3)
    head.lora_A = {"x": head}
    head.active_adapters = ["x"]
    head.use_dora = {"x": True}
    assert head_logits_fp32(head, torch.ones(1, 4)) is None


@pytest.mark.slow
def test_bf16_choice_scores_have_no_rounding_ties_and_follow_the_fp32_model(smollm2):
    """On the embedded model, bf16 choice scores of the fixture's yes/no samples are within a few
    hundredths of a nat of the fp32 model's, with no exact tie."""
    import dataclasses

    from ecellm.data.loaders import load_samples
    from ecellm.infer.backends.hf import HFBackend
    from ecellm.infer.predict import make_requests

    samples = [s for s in load_samples(FIXTURES / "samples_mixed.jsonl") if s.task in ("PSI", "PM", "AP")]
    assert len(samples) >= 4
    bf16 = dataclasses.replace(smollm2, model=copy.deepcopy(smollm2.model).to(torch.bfloat16))
    runs = []
    for loaded in (smollm2, bf16):
        backend = HFBackend(loaded, batch_size=4, autocast="off")
        reqs = make_requests(backend, samples, mode="choice")
        runs.append({c.id: c.choice_logprobs for c in backend.run(reqs)})
    fp32, half = runs
    for sid, scores in half.items():
        assert scores["yes"] != scores["no"], sid
        margin, ref = scores["yes"] - scores["no"], fp32[sid]["yes"] - fp32[sid]["no"]
        assert abs(margin - ref) < 0.35, (sid, margin, ref)
