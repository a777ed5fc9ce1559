"""Model preparation for training: the attention kernel chosen on CPU (eager) gives the same
completion loss as SDPA."""

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
