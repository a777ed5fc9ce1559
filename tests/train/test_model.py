"""Model preparation for training: the attention kernel chosen on CPU (eager) gives the same
completion loss as SDPA; ``lora.top_layers`` adapts only the last blocks and cuts the backward pass."""

from __future__ import annotations

import os

import pytest
import torch
from tests.conftest import FIXTURES

os.environ.setdefault("HF_HUB_OFFLINE", "1")


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


def _tiny_llama(layers: int = 6):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    return LlamaForCausalLM(cfg)


def test_top_layers_adapts_only_the_last_blocks_and_the_head():
    from ecellm.train.config import TrainConfig
    from ecellm.train.model import target_modules

    model = _tiny_llama()
    cfg = TrainConfig(data={"train": "x"}, lora={"top_layers": 2})
    names = target_modules(model, cfg)
    assert names[-1] == "lm_head"
    blocks = {int(n.split(".")[2]) for n in names[:-1]}
    assert blocks == {4, 5}
    assert len(names) == 2 * 7 + 1  # seven projections per block
    every = target_modules(model, TrainConfig(data={"train": "x"}))
    assert "q_proj" in every and "lm_head" in every  # default: leaf names, every block


def test_top_layers_cuts_the_backward_pass_below_the_adapted_blocks():
    """Below the lowest adapted block nothing requires a gradient, so autograd records nothing
    there; the adapted blocks and the head still learn."""
    from peft import LoraConfig, get_peft_model

    from ecellm.train.config import TrainConfig
    from ecellm.train.model import target_modules

    base = _tiny_llama()
    names = target_modules(base, TrainConfig(data={"train": "x"}, lora={"top_layers": 2}))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=4, target_modules=names, init_lora_weights=False))
    seen = {}
    layers = model.base_model.model.model.layers
    for i, layer in enumerate(layers):
        layer.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, a[0].requires_grad))
    ids = torch.randint(0, 64, (2, 10))
    model(input_ids=ids, labels=ids).loss.backward()
    assert [seen[i] for i in range(6)] == [False] * 5 + [True]  # block 4's input is a frozen output
    trained = {n.split(".")[4] for n, p in model.named_parameters() if p.grad is not None and "layers" in n}
    assert trained == {"4", "5"}
    assert any(p.grad is not None for n, p in model.named_parameters() if "lm_head" in n and "lora" in n)


def test_top_layers_refuses_a_model_without_numbered_blocks():
    from ecellm.errors import InputError
    from ecellm.train.config import TrainConfig
    from ecellm.train.model import target_modules

    model = torch.nn.Sequential()
    model.add_module("proj", torch.nn.Linear(4, 4))
    model.config = type("C", (), {"model_type": "x"})()
    with pytest.raises(InputError, match="top_layers"):
        lora = {"top_layers": 1, "target_modules": ["proj"]}
        target_modules(model, TrainConfig(data={"train": "x"}, lora=lora))


@pytest.mark.parametrize("tied", [True, False])
def test_full_top_layers_trains_the_last_blocks_the_final_norm_and_an_untied_head(tied):
    """``full.top_layers``: the last blocks learn and the backward pass stops below them; a head
    tied to the input embeddings stays frozen (training it would reach the embeddings through every
    block), an untied head trains."""
    from ecellm.train.model import freeze_below_top

    model = _tiny_llama()
    if not tied:
        model.config.tie_word_embeddings = False
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    else:
        model.lm_head.weight = model.model.embed_tokens.weight
    trained = freeze_below_top(model, 2)
    seen = {}
    for i, layer in enumerate(model.model.layers):
        layer.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, a[0].requires_grad))
    ids = torch.randint(0, 64, (2, 10))
    model(input_ids=ids, labels=ids).loss.backward()
    assert [seen[i] for i in range(6)] == [False] * 5 + [True]
    learnt = {n for n, p in model.named_parameters() if p.grad is not None}
    assert {n.split(".")[2] for n in learnt if ".layers." in n} == {"4", "5"}
    assert "model.norm.weight" in learnt
    assert ("lm_head.weight" in learnt) is (not tied)
    assert "model.embed_tokens.weight" not in learnt or not tied
    assert trained == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_full_top_layers_is_a_recipe_key():
    from ecellm.train.config import TrainConfig

    assert TrainConfig(data={"train": "x"}, method="full", full={"top_layers": 3}).full.top_layers == 3
    with pytest.raises(ValueError):
        TrainConfig(data={"train": "x"}, full={"top_layers": 0})
