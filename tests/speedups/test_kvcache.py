"""The in-place KV cache equals DynamicCache, through growth, crops and batch selections, and in
generation."""

from __future__ import annotations

import os

import torch

from ecellm.speedups.kvcache import SPARE, GrowingLayer, growing

os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
