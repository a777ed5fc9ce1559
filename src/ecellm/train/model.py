"""Base model preparation for training: load it, choose LoRA targets per architecture, wrap it.

The paper adapts every attention and MLP projection plus the output head. Projection names
differ per architecture, so they are looked up by ``config.model_type``; an unknown architecture
falls back to every linear layer inside the transformer blocks, and a config can name its own.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from ecellm.errors import InputError
from ecellm.train.config import TrainConfig

_LLAMA_LIKE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TARGETS: dict[str, list[str]] = {
    **{
        k: _LLAMA_LIKE
        for k in (
            "llama",
            "mistral",
            "mixtral",
            "qwen2",
            "qwen3",
            "gemma",
            "gemma2",
            "gemma3",
            "gemma3_text",
            "smollm3",
            "olmo",
            "olmo2",
            "granite",
        )
    },
    "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "t5": ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"],
    "mt5": ["q", "k", "v", "o", "wi_0", "wi_1", "wo"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}
HEAD_NAMES = ("lm_head", "embed_out", "output")


def target_modules(model: Any, cfg: TrainConfig) -> list[str]:
    """LoRA target module names present in ``model`` (the head added when ``lora.lm_head``)."""
    import torch

    linear_leaves = sorted(
        {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    )
    if cfg.lora.target_modules != "auto":
        missing = [t for t in cfg.lora.target_modules if t not in linear_leaves]
        if missing:
            raise InputError(
                f"no linear layer named {missing} in {type(model).__name__} (has {linear_leaves})",
                field="lora.target_modules",
            )
        names = list(cfg.lora.target_modules)
    else:
        wanted = TARGETS.get(getattr(model.config, "model_type", ""), [])
        names = [t for t in wanted if t in linear_leaves] or [t for t in linear_leaves if t not in HEAD_NAMES]
    if cfg.lora.top_layers is not None:
        names = _top_block_modules(model, names, cfg.lora.top_layers)
    if cfg.lora.lm_head:
        names += [h for h in HEAD_NAMES if h in linear_leaves and h not in names][:1]
    return names


_BLOCK_INDEX = re.compile(r"^(.*?)\.(\d+)\.")


def _top_block_modules(model: Any, leaves: list[str], n: int) -> list[str]:
    """Full names of the ``leaves`` projections inside the last ``n`` blocks of each block stack.

    Why: gradients then flow only through those blocks; below the lowest adapted block nothing
    requires a gradient and autograd records nothing, so the backward pass is cut short. A
    stack is a module list of numbered blocks (``model.layers``; an encoder-decoder has two).
    """
    import torch

    found: dict[str, list[tuple[int, str]]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.rsplit(".", 1)[-1] not in leaves:
            continue
        m = _BLOCK_INDEX.match(name)
        if m:
            found.setdefault(m.group(1), []).append((int(m.group(2)), name))
    if not found:
        raise InputError(
            f"lora.top_layers: no numbered transformer blocks found in {type(model).__name__}",
            field="lora.top_layers",
        )
    chosen: list[str] = []
    for entries in found.values():
        last = max(i for i, _ in entries)
        chosen += sorted(name for i, name in entries if i > last - n)
    return chosen


def _qlora_config() -> Any:
    import torch

    if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
        raise InputError(
            "method 'qlora' needs a CUDA GPU and the bitsandbytes package; use method=lora on CPU",
            field="method",
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def load_for_training(cfg: TrainConfig) -> Any:
    """Load the base (any spec the inference engine loads) and make it trainable per ``cfg.method``."""
    from ecellm.models.loading import (
        LoadedModel,
        check_model_folder,
        is_seq2seq_config,
        load_model_and_tokenizer,
        materialize,
        pickle_allowed,
    )
    from ecellm.models.registry import resolve_model

    if cfg.method == "qlora":
        quant = _qlora_config()
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        src = resolve_model(cfg.model)
        folder = materialize(src)
        check_model_folder(folder)
        config = AutoConfig.from_pretrained(folder, trust_remote_code=cfg.trust_remote_code)
        seq2seq = is_seq2seq_config(config)
        cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        model = cls.from_pretrained(
            folder,
            quantization_config=quant,
            trust_remote_code=cfg.trust_remote_code,
            use_safetensors=None if pickle_allowed() else True,
        )
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=cfg.trust_remote_code)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        loaded = LoadedModel(model=model, tokenizer=tok, source=src, adapter=None, is_seq2seq=seq2seq)
    else:
        # fp32 master weights under fp16 and CPU-bf16 autocast; "auto" loads bf16 weights on a capable GPU.
        dtype = {"auto": "auto", "fp32": "float32", "bf16": "auto", "fp16": "float32"}[cfg.precision]
        loaded = load_model_and_tokenizer(
            cfg.model, dtype=dtype, trust_remote_code=cfg.trust_remote_code, for_training=True
        )
    # A KV cache is useless in training, and transformers only honours packed position_ids
    # (block-diagonal attention) when no cache is passed.
    loaded.model.config.use_cache = False
    attn = _attention(cfg)
    if attn:
        loaded.model.set_attn_implementation(attn)
    if cfg.method == "full":
        if cfg.full.top_layers is not None:
            freeze_below_top(loaded.model, cfg.full.top_layers)
        return loaded
    from peft import LoraConfig, TaskType, get_peft_model

    lcfg = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=target_modules(loaded.model, cfg),
        bias="none",
        task_type=TaskType.SEQ_2_SEQ_LM if loaded.is_seq2seq else TaskType.CAUSAL_LM,
    )
    loaded.model = get_peft_model(loaded.model, lcfg)
    _speed_ups(loaded.model, cfg)
    return loaded


def freeze_below_top(model: Any, n: int) -> int:
    """Freeze every parameter except those of the last ``n`` blocks of each block stack, the norms
    outside the blocks (the final norm) and an untied output head; returns how many still train.

    Why: nothing below the lowest trained block needs a gradient, so autograd stops there, as
    with ``lora.top_layers``. A head tied to the input embeddings stays frozen: training it would
    send gradients through every block down to the embeddings.
    """
    last: dict[str, int] = {}
    for name, _ in model.named_parameters():
        if m := _BLOCK_INDEX.match(name):
            last[m.group(1)] = max(last.get(m.group(1), -1), int(m.group(2)))
    if not last:
        raise InputError(
            f"full.top_layers: no numbered transformer blocks found in {type(model).__name__}",
            field="full.top_layers",
        )
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    untied_head = out is not None and (inp is None or out.weight is not inp.weight)
    keep = {id(p) for p in out.parameters()} if untied_head else set()
    for name, module in model.named_modules():
        if "norm" in type(module).__name__.lower() and not _BLOCK_INDEX.match(name + "."):
            keep |= {id(p) for p in module.parameters(recurse=False)}
    trained = 0
    for name, param in model.named_parameters():
        m = _BLOCK_INDEX.match(name)
        on = int(m.group(2)) > last[m.group(1)] - n if m else id(param) in keep
        param.requires_grad_(on)
        trained += param.numel() if on else 0
    return trained


def _attention(cfg: TrainConfig) -> str | None:
    """The attention kernel to train with (``None``: keep the model's default).

    On CPU, eager attention is the default: with answer-only logits, fast dropout and bf16
    autocast, a SmolLM2-135M LoRA step ran at 332 tokens/s with it and 263 with SDPA, whose
    CPU backward kernel dominated (12% of the step). It keeps the T x T probabilities per layer
    for the backward pass, which at cutoff 512 and micro-batch 4 is ~40 MB per layer; past
    ~512 tokens in fp32 SDPA was faster (docs/training.md), so long-cutoff recipes name it.
    During training an eager model runs :mod:`ecellm.speedups.train_attention` (the same
    function, one autograd node, bf16 probabilities kept instead of fp32 and bf16 ones).
    """
    import torch

    if cfg.attn_implementation != "auto":
        return cfg.attn_implementation
    return None if torch.cuda.is_available() else "eager"


def _speed_ups(model: Any, cfg: TrainConfig) -> None:
    """CPU-only speed-ups (see :mod:`ecellm.speedups.dropout`): the same dropout distribution with
    ``p`` rounded to 1/32768, and a bf16 frozen base under bf16 autocast."""
    import torch

    from ecellm.speedups import enabled
    from ecellm.speedups.dropout import store_frozen_in_bf16, use_fast_lora_dropout

    if torch.cuda.is_available():
        return
    if cfg.lora.fast_dropout and enabled(cfg.speedups):
        use_fast_lora_dropout(model)
    if cfg.precision == "bf16":  # CPU bf16 = autocast (see run._precision) over a bf16 frozen base
        store_frozen_in_bf16(model)


def kernels(model: Any) -> dict[str, Any]:
    """The attention kernel and CPU speed-ups a prepared model trains with, for its statistics."""
    import torch

    from ecellm.speedups.dropout import FastDropout

    return {
        "attn_implementation": getattr(getattr(model, "config", None), "_attn_implementation", None),
        "fast_lora_dropout_layers": sum(1 for m in model.modules() if isinstance(m, FastDropout)),
        "bf16_frozen_parameters": sum(
            1 for p in model.parameters() if not p.requires_grad and p.dtype == torch.bfloat16
        ),
    }
