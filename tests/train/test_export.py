"""Export: merged safetensors equal base+adapter; GGUF loads back to the same logits."""

from __future__ import annotations

import os

import pytest

from ecellm.errors import InputError

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_export_rejects_missing_folder_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match="adapter folder not found"):
        from ecellm.train.export import export

        export(str(tmp_path / "none"), tmp_path / "o")
    (tmp_path / "a").mkdir()
    with pytest.raises(InputError, match="unknown export format"):
        export(str(tmp_path / "a"), tmp_path / "o", fmt="onnx")


def test_rotary_permutation_interleaves_halves_per_head():
    import numpy as np

    from ecellm.train.export import _permute_rotary

    # 2 heads of dim 4: rows [h0: a0 a1 b0 b1 | h1: c0 c1 d0 d1] -> [a0 b0 a1 b1 | c0 d0 c1 d1]
    w = np.arange(8).reshape(8, 1)
    assert _permute_rotary(w, 2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.slow
def test_merged_and_gguf_exports_match_the_adapter(tmp_path, smollm2):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ecellm.models.loading import load_model_and_tokenizer
    from ecellm.train.export import export

    base = load_model_and_tokenizer("smollm2-135m", for_training=True)
    torch.manual_seed(0)
    peft_model = get_peft_model(
        base.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "down_proj", "lm_head"])
    )
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)  # B starts at zero; make the adapter change the model
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter, save_embedding_layers=False)
    peft_model.eval()
    ids = smollm2.tokenizer("Is this gift card refundable? Answer yes or no.", return_tensors="pt").input_ids
    with torch.no_grad():
        want = peft_model(ids).logits
        plain = smollm2.model(ids).logits
    assert (want - plain).abs().max() > 0.05

    gguf_file = export(str(adapter), tmp_path / "merged", fmt="gguf", dtype="f32")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    from_gguf = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    with torch.no_grad():
        got = merged(ids).logits
        got_gguf = from_gguf(ids).logits
    assert torch.allclose(got, want, atol=2e-3)  # the tied head was untied before merging
    assert torch.allclose(got_gguf, got, atol=1e-4)
    assert (tmp_path / "merged" / "manifest.json").exists()
