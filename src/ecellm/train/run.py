"""``train(config)``: one validated recipe in, one adapter (or full model) folder out.

Built on the transformers ``Trainer`` (DDP, DeepSpeed and FSDP come from accelerate through it;
the same command works under ``torchrun``) with ecellm's own data preparation in front. Every
check that can fail (config keys, files, cutoff against the real prompt lengths, resume point)
runs before the model is loaded, so a bad recipe costs seconds, not a training run.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecellm.errors import InputError
from ecellm.train.config import TrainConfig, load_config
from ecellm.train.data import (
    EncodeStats,
    ListDataset,
    check_cutoff,
    check_weights,
    encode,
    make_collator,
    read_mixture,
    read_samples,
    select,
)
from ecellm.train.outdir import check_output_dir
from ecellm.train.tracking import check_tracker, install_callbacks


@dataclass
class Prepared:
    """Everything validated and tokenized, ready for the Trainer."""

    cfg: TrainConfig
    tokenizer: Any
    seq2seq: bool
    train_rows: list[dict[str, list[int]]]
    val_rows: list[dict[str, list[int]]]
    stats: dict[str, Any]
    resume: str | None


def _tokenizer_for(cfg: TrainConfig) -> tuple[Any, bool]:
    from transformers import AutoConfig, AutoTokenizer

    from ecellm.models.loading import check_model_folder, is_seq2seq_config, materialize
    from ecellm.models.registry import resolve_model

    folder = materialize(resolve_model(cfg.model))
    check_model_folder(folder)
    try:
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=cfg.trust_remote_code)
        seq2seq = is_seq2seq_config(
            AutoConfig.from_pretrained(folder, trust_remote_code=cfg.trust_remote_code)
        )
    except OSError as exc:
        raise InputError(
            f"cannot load the base model's tokenizer/config: {exc}", file=cfg.model, field="model"
        ) from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if cfg.chat_template and not getattr(tok, "chat_template", None):
        from ecellm.train.chat_formats import chat_template_text

        tok.chat_template = chat_template_text(cfg.chat_template)
    return tok, seq2seq


def _resume_point(cfg: TrainConfig) -> str | None:
    if not cfg.resume_from:
        return None
    if cfg.resume_from == "latest":
        from transformers.trainer_utils import get_last_checkpoint

        ckdir = Path(cfg.output_dir) / "checkpoints"
        last = get_last_checkpoint(str(ckdir)) if ckdir.is_dir() else None
        if last is None:
            raise InputError(
                "resume_from=latest but no checkpoint-* folder exists", file=str(ckdir), field="resume_from"
            )
        return last
    if not (Path(cfg.resume_from) / "trainer_state.json").exists():
        raise InputError(
            "not a training checkpoint (no trainer_state.json)", file=cfg.resume_from, field="resume_from"
        )
    return cfg.resume_from


def _single_source(d: Any, seed: int) -> tuple[list, list]:
    train = read_samples(d.train, tasks=d.tasks, settings=d.settings, splits=["train"])
    if not train:
        raise InputError(
            f"no training samples (tasks={d.tasks}, settings={d.settings}, split=train)",
            file=d.train,
            field="data.train",
        )
    check_weights(d.task_weights, train)
    train = select(
        train,
        seed=seed,
        per_task=d.per_task_train,
        weights=d.task_weights,
        limit=d.max_train_samples,
        balance=d.balance_labels,
    )
    val: list = []
    if d.use_val:
        val = read_samples(
            d.val or d.train, tasks=d.tasks, settings=d.settings, splits=None if d.val else ["val"]
        )
        val = select(val, seed=seed, limit=d.max_val_samples)
    return train, val


def prepare(config: Any, overrides: list[str] | tuple[str, ...] = ()) -> Prepared:
    """Load and check the config and the data; tokenize. No model weights are loaded here."""
    cfg = load_config(config, overrides)
    check_output_dir(cfg.output_dir, overwrite=cfg.overwrite, resume=bool(cfg.resume_from))
    d = cfg.data
    if d.mixture:
        train, val = read_mixture(d, seed=cfg.seed)
    else:
        train, val = _single_source(d, cfg.seed)
    resume = _resume_point(cfg)
    check_tracker(cfg.report_to, file=str(config) if isinstance(config, str | os.PathLike) else "<config>")
    tok, seq2seq = _tokenizer_for(cfg)
    if cfg.template == "chat" and not getattr(tok, "chat_template", None):
        raise InputError(
            "template 'chat' needs a tokenizer with a chat template", file=cfg.model, field="template"
        )
    tstats, vstats = EncodeStats(), EncodeStats()
    kw = {"template": cfg.template, "cutoff": cfg.cutoff_len, "seq2seq": seq2seq}
    train_rows = encode(train, tok, stats=tstats, **kw)
    where = d.train or ", ".join(src.path for src in d.mixture or [])
    check_cutoff(tstats, cfg.cutoff_len, what="training", file=where, seq2seq=seq2seq)
    val_rows = encode(val, tok, stats=vstats, **kw)
    stats = {
        "train": tstats.summary(),
        "val": vstats.summary(),
        "train_tasks": dict(sorted(_count(s.task for s in train).items())),
    }
    return Prepared(cfg, tok, seq2seq, train_rows, val_rows, stats, resume)


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def _precision(cfg: TrainConfig) -> dict[str, bool]:
    """``auto``: bf16 on GPUs that have it (else fp16), fp32 on CPU. ``bf16`` on a CPU means mixed
    precision (fp32 weights, bf16 autocast), which is ~3x faster matmuls on CPUs with AVX512-BF16/AMX."""
    import torch

    if cfg.precision == "fp32" or (cfg.precision == "auto" and not torch.cuda.is_available()):
        return {}
    if cfg.precision == "fp16" or (cfg.precision == "auto" and not torch.cuda.is_bf16_supported()):
        return {"fp16": True}
    return {"bf16": True}


def training_arguments(p: Prepared) -> Any:
    """TrainingArguments mirroring the recipe: evaluation, checkpoints and best-model selection agree."""
    import torch
    from transformers import TrainingArguments

    cfg = p.cfg
    has_val = bool(p.val_rows)
    best = cfg.load_best and has_val
    # Best-model selection needs a checkpoint at every evaluation, so the two intervals agree.
    eval_steps = cfg.eval_steps or (cfg.save_steps if best else None)
    save_steps = eval_steps if best else (cfg.save_steps or cfg.eval_steps)
    strategy = "steps" if (eval_steps or save_steps) else "epoch"
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
        output_dir=str(Path(cfg.output_dir) / "checkpoints"),
        per_device_train_batch_size=cfg.micro_batch_size,
        per_device_eval_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=min(cfg.warmup_ratio, 0.999),  # a float below 1 is a ratio of all steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        eval_strategy=strategy if has_val else "no",
        eval_steps=eval_steps or save_steps,
        save_strategy=strategy,
        save_steps=save_steps or eval_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=best,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=cfg.logging_steps,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=cfg.report_to,
        remove_unused_columns=False,
        use_cache=False,
        train_sampling_strategy="group_by_length" if cfg.batching == "grouped" else "random",
        activation_checkpointing=cfg.gradient_checkpointing,
        dataloader_num_workers=0,
        ddp_backend=None if torch.cuda.is_available() or not distributed else "gloo",
        ddp_find_unused_parameters=False if distributed else None,
        use_cpu=not torch.cuda.is_available(),
        **_precision(cfg),
    )


class _TokenCounter:
    """Wraps the collator to count the real (non-pad) tokens each process trains on."""

    def __init__(self, collate: Any) -> None:
        self.collate, self.tokens, self.trained = collate, 0, 0

    def __call__(self, feats: list[dict[str, list[int]]]) -> Any:
        self.tokens += sum(len(f["input_ids"]) for f in feats)
        self.trained += sum(sum(1 for t in f["labels"] if t != -100) for f in feats)
        return self.collate(feats)


def _skip_embedding_copies(model: Any) -> None:
    """LoRA on a head tied to the input embeddings makes PEFT save a full copy of the embedding
    matrix in every checkpoint (136 MB for SmolLM2). LoRA never changes base weights and the
    vocabulary is not resized, so the copy is dead weight: save adapters without it."""
    import functools

    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.save_pretrained = functools.partial(model.save_pretrained, save_embedding_layers=False)


def train(config: Any, overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Fine-tune per ``config`` (YAML path, dict or TrainConfig); returns the output folder.

    The folder holds the adapter (``adapter_config.json`` + ``adapter_model.safetensors``, loadable
    by ``PeftModel.from_pretrained``) or the full model, the tokenizer, ``ecellm_train.json``
    (template and data statistics, so inference renders prompts the same way), ``manifest.json``
    and a model card ``README.md``; ``checkpoints/`` keeps the resumable Trainer checkpoints.
    """
    p = prepare(config, overrides)  # first: a refused recipe should not wait for torch imports
    from transformers import set_seed

    from ecellm.speedups import scope
    from ecellm.speedups.fused_lora import fused_lora_linears
    from ecellm.speedups.packed import packed_frozen_linears
    from ecellm.speedups.threads import set_threads
    from ecellm.speedups.train_attention import grouped_training_attention
    from ecellm.train.card import write_outputs
    from ecellm.train.loss import LossOptions, make_trainer_class
    from ecellm.train.model import kernels, load_for_training

    set_seed(p.cfg.seed)
    loaded = load_for_training(p.cfg)
    p.stats["kernels"] = kernels(loaded.model)
    if p.cfg.batching == "packed" and p.seq2seq:
        p.stats["batching_note"] = "packing is for decoder-only models; seq2seq batches are padded"
    _skip_embedding_copies(loaded.model)
    counter = _TokenCounter(make_collator(p.cfg.batching, p.tokenizer, loaded.model, p.seq2seq))
    loss = LossOptions(
        stock=p.seq2seq or not p.cfg.target_only_logits,
        seq2seq=p.seq2seq,  # answer-only labels; see ecellm.train.loss.seq2seq_loss
        per_sample=p.cfg.loss_normalization == "per_sample",  # see loss.per_sample_loss
    )
    trainer = make_trainer_class(loss)(
        model=loaded.model,
        args=training_arguments(p),
        train_dataset=ListDataset(p.train_rows),
        eval_dataset=ListDataset(p.val_rows) if p.val_rows else None,
        data_collator=counter,
        processing_class=p.tokenizer,
    )
    install_callbacks(trainer)  # log lines and a progress bar instead of raw dicts
    # the frozen bf16 base on packed weights, the LoRA layers fused over it, for the length of
    # training only (see ecellm.speedups.packed and ecellm.speedups.fused_lora)
    with ExitStack() as stack:
        stack.enter_context(scope(p.cfg.speedups))  # off: the contexts below leave the plain path
        if loaded.model.device.type == "cpu":  # busy cores make torch's spinning workers wait
            p.stats["kernels"]["threads"] = set_threads()
        fused = []
        if p.cfg.packed_weights and p.cfg.fused_lora:
            fused = stack.enter_context(fused_lora_linears(loaded.model))
        packed = 0
        if p.cfg.packed_weights:
            packed = stack.enter_context(packed_frozen_linears(loaded.model, exclude=fused))
        p.stats["kernels"]["packed_frozen_linear_layers"] = packed + len(fused)
        p.stats["kernels"]["fused_lora_layers"] = len(fused)
        p.stats["kernels"]["grouped_attention"] = stack.enter_context(
            grouped_training_attention(loaded.model)
        )
        t0 = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=p.resume)
        seconds = time.perf_counter() - t0
    out = Path(p.cfg.output_dir)
    run_stats = {
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_eval_loss": trainer.state.best_metric,
        "train_seconds": round(seconds, 2),
        "tokens_rank0": counter.tokens,
        "tokens_per_s_rank0": round(counter.tokens / seconds, 1) if seconds else None,
        "world_size": trainer.args.world_size,
        "log_history": trainer.state.log_history,
    }
    trainer.save_model(str(out))  # every rank calls it (DeepSpeed/FSDP gather); only rank 0 writes
    if trainer.is_world_process_zero():
        (out / "training_args.bin").unlink(missing_ok=True)  # a pickle; the config is in ecellm_train.json
        write_outputs(out, p.cfg, loaded, {**p.stats, **run_stats})
        if not p.cfg.keep_checkpoints:
            shutil.rmtree(Path(trainer.args.output_dir), ignore_errors=True)
    return out
