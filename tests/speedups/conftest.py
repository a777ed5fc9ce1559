"""Shared pieces of the speed-up tests."""

from __future__ import annotations

import pytest
import torch


def _make_tiny_peft_model():
    from peft import LoraConfig, get_peft_model
    from tests.conftest import tiny_llama

    base = tiny_llama(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        tie_word_embeddings=True,
    ).train()
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules=targets))
    for name, p in model.named_parameters():  # non-zero B so the adapters matter in the comparison
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    return model


@pytest.fixture
def tiny_peft_model():
    """A factory of the same two-layer toy Llama with LoRA on every projection and the head (seeded)."""
    return _make_tiny_peft_model
