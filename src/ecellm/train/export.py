"""Export a trained adapter: merged into its base as safetensors, or as a GGUF file.

GGUF is written with the ``gguf`` package's ``GGUFWriter`` (no llama.cpp code) for the Llama
architecture family (Llama, Mistral and SmolLM2 all use it), as f32/f16 tensors. Quantizing
further (Q4_K etc.) is llama.cpp's ``llama-quantize`` job on the file written here. Other
architectures raise a clear error rather than writing a file llama.cpp would misread.

The prompt template goes with the export: the one the adapter was tuned with (or an explicit
one, see :mod:`ecellm.infer.template`) is recorded in the manifest, written into the GGUF file as
its chat template and into an Ollama ``Modelfile`` beside it (:mod:`ecellm.train.chat_formats`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ecellm.errors import InputError
from ecellm.manifest import write_output_manifest

GGUF_ARCHS = {"llama": "LLAMA", "mistral": "LLAMA"}  # HF model_type -> gguf MODEL_ARCH


def _base_of(adapter: str, base: str | None) -> str:
    if base:
        return base
    info = Path(adapter) / "ecellm_train.json"
    if info.exists():
        return json.loads(info.read_text(encoding="utf-8"))["base_model"]
    cfg = Path(adapter) / "adapter_config.json"
    if cfg.exists():
        return json.loads(cfg.read_text(encoding="utf-8"))["base_model_name_or_path"]
    raise InputError("no ecellm_train.json or adapter_config.json: pass --base", file=adapter)


def _untie_adapted_head(peft_model: Any) -> None:
    """Merging LoRA into a head that shares its matrix with the input embeddings would change the
    embeddings too (the merged model would then differ from base+adapter). Give the head its own
    copy first; the merged model then stores an untied ``lm_head``."""
    import torch

    base = peft_model.get_base_model()
    head = base.get_output_embeddings()
    if head is None or not hasattr(head, "base_layer"):
        return
    emb = base.get_input_embeddings()
    if head.base_layer.weight is not emb.weight:
        return
    head.base_layer.weight = torch.nn.Parameter(emb.weight.detach().clone())
    for cfg in {id(c): c for c in (base.config, base.config.get_text_config())}.values():
        cfg.tie_word_embeddings = False


def merge(adapter: str, out: str | Path, *, base: str | None = None, template: Any = None) -> Path:
    """Fold the LoRA weights into the base and save a plain safetensors model folder
    (``template``: the ``TemplateChoice`` the manifest records)."""
    from peft import PeftModel

    from ecellm.models.loading import load_model_and_tokenizer

    out = Path(out)
    is_full = not (Path(adapter) / "adapter_config.json").exists()
    loaded = load_model_and_tokenizer(
        adapter if is_full else _base_of(adapter, base),
        adapter=None if is_full else adapter,
        dtype="float32",
        device="cpu",
    )
    if isinstance(loaded.model, PeftModel):
        _untie_adapted_head(loaded.model)
        model = loaded.model.merge_and_unload()
    else:
        model = loaded.model
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    loaded.tokenizer.save_pretrained(tmp)
    for name in ("ecellm_train.json", "README.md"):
        if (Path(adapter) / name).exists():
            shutil.copy2(Path(adapter) / name, tmp / name)
    write_output_manifest(
        tmp,
        folder=True,
        kind="export-merged",
        config={
            "adapter": adapter,
            "base": base,
            "template": getattr(template, "template", None),
            "template_source": getattr(template, "source", None),
        },
        model=loaded.describe(),
    )
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _permute_rotary(w: Any, n_head: int) -> Any:
    """HF stores Llama q/k rows grouped as two rotary halves per head; GGUF (Meta's layout)
    interleaves them. Regroup rows per head: (h, 2, d/2) -> (h, d/2, 2)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _copy_tokenizer_fields(writer: Any, source_gguf: Path, *, skip: tuple[str, ...] = ()) -> bool:
    """Reuse the tokenizer metadata of the GGUF the base came from (exact, incl. pre-tokenizer)."""
    import gguf

    reader = gguf.GGUFReader(str(source_gguf))
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer.") or key in skip:
            continue
        vtype = field.types[0]
        value = field.contents()
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_array(key, value)
        else:
            writer.add_key_value(key, value, vtype)
    return True


def _hf_tokenizer_fields(writer: Any, folder: Path, *, own_chat_template: bool = False) -> None:
    """Tokenizer metadata from HF tokenizer files via the gguf package's vocab readers."""
    import gguf
    from gguf.vocab import BpeVocab, LlamaHfVocab, SpecialVocab

    try:
        vocab: Any = BpeVocab(folder)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("default")
    except (FileNotFoundError, TypeError, ValueError):
        vocab = LlamaHfVocab(folder)
        writer.add_tokenizer_model("llama")
    tokens, scores, types = [], [], []
    for text, score, ttype in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(int(ttype))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if vocab.name != "bpe":
        writer.add_token_scores(scores)
    special = SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))
    if own_chat_template:
        special.chat_template = None
    special.add_to_gguf(writer)
    del gguf


def to_gguf(
    model_dir: str | Path,
    out_file: str | Path,
    *,
    dtype: str = "f16",
    source_gguf: str | Path | None = None,
    chat_template: str | None = None,
) -> Path:
    """Write a merged Llama-family model folder as one GGUF file (f32 or f16 weights);
    ``chat_template`` replaces the tokenizer's own."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file
    from transformers import AutoConfig

    model_dir, out_file = Path(model_dir), Path(out_file)
    cfg = AutoConfig.from_pretrained(model_dir)
    arch_name = GGUF_ARCHS.get(cfg.model_type)
    if arch_name is None:
        raise InputError(
            f"GGUF export supports the Llama family ({sorted(GGUF_ARCHS)}), not {cfg.model_type!r}; "
            "use --format merged and llama.cpp's convert_hf_to_gguf.py",
            file=str(model_dir),
        )
    if dtype not in GGUF_DTYPES:
        raise InputError("gguf dtype must be f16 or f32", field="dtype")
    arch = gguf.MODEL_ARCH[arch_name]
    n_head, n_kv = (
        cfg.num_attention_heads,
        getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads,
    )
    tmp = out_file.with_name(out_file.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(model_dir.name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rope = getattr(cfg, "rope_parameters", None) or {}
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))))
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
    own = chat_template is not None
    if source_gguf and Path(source_gguf).exists():
        _copy_tokenizer_fields(writer, Path(source_gguf), skip=("tokenizer.chat_template",) if own else ())
    else:
        _hf_tokenizer_fields(writer, model_dir, own_chat_template=own)
    if own:
        writer.add_chat_template(chat_template)
    names = gguf.get_tensor_name_map(arch, cfg.num_hidden_layers)
    tensors: dict[str, Any] = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    for hf_name in sorted(tensors):
        w = tensors[hf_name]
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise InputError(f"no GGUF name for tensor {hf_name!r}", file=str(model_dir))
        if hf_name.endswith("q_proj.weight"):
            w = _permute_rotary(w, n_head)
        elif hf_name.endswith("k_proj.weight"):
            w = _permute_rotary(w, n_kv)
        w = w.astype(np.float16 if dtype == "f16" and w.ndim == 2 else np.float32)
        writer.add_tensor(name, w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out_file)
    return out_file


FORMATS = ("merged", "gguf")
GGUF_DTYPES = ("f16", "f32")


def export(
    adapter: str,
    out: str | Path,
    *,
    fmt: str = "merged",
    base: str | None = None,
    dtype: str = "f16",
    template: str | None = None,
) -> Path:
    """``merged``: a safetensors model folder. ``gguf``: that folder plus ``model-{dtype}.gguf``
    and an Ollama ``Modelfile`` in it. ``template=None``: the one the adapter was tuned with."""
    from ecellm.infer.template import resolve_template
    from ecellm.train.chat_formats import jinja_chat_template, modelfile

    if not Path(adapter).is_dir():
        raise InputError("adapter folder not found", file=adapter)
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}: use merged or gguf", field="format")
    choice = resolve_template(adapter, None, template)
    folder = merge(adapter, out, base=base, template=choice)
    if fmt == "merged":
        return folder
    from transformers import AutoTokenizer

    from ecellm.models.registry import resolve_model

    src = resolve_model(_base_of(adapter, base)) if (Path(adapter) / "adapter_config.json").exists() else None
    source_gguf = Path(src.path) / src.gguf_file if src is not None and src.gguf_file else None
    tok_template = getattr(AutoTokenizer.from_pretrained(folder), "chat_template", None)
    gguf_file = to_gguf(
        folder,
        folder / f"model-{dtype}.gguf",
        dtype=dtype,
        source_gguf=source_gguf,
        chat_template=None if choice.template == "chat" else jinja_chat_template(choice.template),
    )
    text = modelfile(gguf_file.name, choice.template, choice.source, tok_template)
    (folder / "Modelfile").write_text(text, encoding="utf-8")
    return gguf_file
