"""Model folders are checked before anything opens them: fake GGUF, empty folder, no weights, and
pickle-only weights (refused unless the caller opts in) are one-line errors naming the path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ecellm.errors import InputError
from ecellm.models import loading
from ecellm.models.registry import resolve_model


def _tiny_llama(folder: Path, *, pickle: bool) -> None:
    """A two-layer toy Llama with the GPT-2-free tokenizer of a byte-level BPE trained on nothing."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    model = LlamaForCausalLM(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    if pickle:
        cfg.save_pretrained(folder)
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    else:
        model.save_pretrained(folder)
    vocab = {chr(97 + i): i for i in range(26)} | {"<unk>": 26, "</s>": 27}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>").save_pretrained(folder)


def test_fake_gguf_is_refused_before_opening(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("this is not a model")
    with pytest.raises(InputError, match="not a GGUF file") as err:
        resolve_model(str(fake))
    assert err.value.file == str(fake) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="not a GGUF file"):
        loading.load_model_and_tokenizer(str(fake))


def test_empty_folder_and_folder_without_weights(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"not a model folder \(the folder is empty"):
        loading.load_model_and_tokenizer(str(empty))
    (empty / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"not a model folder \(no config.json"):
        loading.load_model_and_tokenizer(str(empty))
    (empty / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(InputError, match=r"no model weights \(\*.safetensors\)"):
        loading.load_model_and_tokenizer(str(empty))


def test_pickle_only_folder_needs_an_explicit_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loading.PICKLE_ENV, raising=False)
    folder = tmp_path / "bin-only"
    _tiny_llama(folder, pickle=True)
    with pytest.raises(
        InputError, match=r"only pickle weights \(pytorch_model.bin\); ecellm loads safetensors"
    ):
        loading.load_model_and_tokenizer(str(folder))
    loaded = loading.load_model_and_tokenizer(str(folder), allow_pickle=True, dtype="float32")
    assert type(loaded.model).__name__ == "LlamaForCausalLM"
    monkeypatch.setenv(loading.PICKLE_ENV, "1")
    assert loading.load_model_and_tokenizer(str(folder), dtype="float32").model is not None


def test_safetensors_folder_loads_and_pickle_adapter_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(loading.PICKLE_ENV, raising=False)
    folder = tmp_path / "st"
    _tiny_llama(folder, pickle=False)
    assert loading.load_model_and_tokenizer(str(folder), dtype="float32").adapter is None
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(folder)}))
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(InputError, match=r"only pickle weights \(adapter_model.bin\)"):
        loading.load_model_and_tokenizer(str(folder), adapter=str(adapter))
    (adapter / "adapter_model.bin").unlink()
    with pytest.raises(InputError, match="no adapter weights"):
        loading.load_model_and_tokenizer(str(folder), adapter=str(adapter))


def test_auto_dtype_is_bf16_for_cpu_inference_only_with_native_bf16(monkeypatch):
    from ecellm.models import loading

    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: True)
    assert loading.auto_dtype("cpu", for_training=False) == torch.bfloat16
    assert loading.auto_dtype("cpu", for_training=True) == torch.float32
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: False)
    assert loading.auto_dtype("cpu", for_training=False) == torch.float32


def test_a_fully_fine_tuned_folder_given_as_the_adapter_replaces_the_base(tmp_path: Path) -> None:
    """A training run's folder is the tuned model whatever its method: a full model passed as the
    adapter is loaded as the model (the base spec is not opened); an adapter folder stays one."""
    full = tmp_path / "full"
    _tiny_llama(full, pickle=False)
    assert loading.full_model_as_adapter("smollm2-135m", str(full)) == (str(full), None)
    loaded = loading.load_model_and_tokenizer("no-such-base", adapter=str(full), dtype="float32")
    assert loaded.adapter is None and loaded.model.config.vocab_size == 64
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(full)}))
    assert loading.full_model_as_adapter("base", str(adapter)) == ("base", str(adapter))
    assert loading.full_model_as_adapter("base", None) == ("base", None)
    missing = str(tmp_path / "missing")
    assert loading.full_model_as_adapter("base", missing) == ("base", missing)
