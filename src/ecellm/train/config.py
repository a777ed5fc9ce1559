"""The training recipe as one validated object: a YAML file plus ``key=value`` overrides.

Every field is declared with ``extra="forbid"`` so a misspelt key fails at load time with its
dotted path, instead of being silently ignored halfway through a multi-hour run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ecellm.errors import InputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class MixSource(_Strict):
    """One source of a training mixture and its weight."""

    path: str = Field(description="any source `train` accepts (a build, a ShopBench or instruction file)")
    weight: float = Field(
        default=1.0, gt=0, description="scales the source's per-task cap and its share of max_train_samples"
    )
    tasks: list[str] | None = Field(
        default=None, description="task filter for this source (default: data.tasks)"
    )


class DataConfig(_Strict):
    """Where samples come from and which of them train."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, validate_by_name=True, serialize_by_alias=True
    )

    train: str | None = Field(
        default=None,
        description="ecellm JSONL file, build folder, reference folder, HF dataset, shopping build, "
        "ShopBench file or instruction/output file (JSONL, parquet, CSV); or give `mixture`",
    )
    mixture: list[MixSource] | None = Field(
        default=None, description="several sources with weights (instead of `train`)"
    )
    val: str | None = Field(
        default=None, description="validation source; default: the 'val' split of `train`"
    )
    tasks: list[str] | None = Field(
        default=None, description="task filter (task-specific run); None = generalist"
    )
    settings: list[str] = Field(default_factory=lambda: ["IND_Diverse_Instruction"])
    max_train_samples: int | None = Field(default=None, ge=1)
    max_val_samples: int | None = Field(default=None, ge=1)
    per_task_train: int | None = Field(default=None, ge=1, description="cap per task, seeded sample")
    balance_labels: bool = Field(
        default=False, description="closed-answer tasks: equal counts per gold answer within each task's cap"
    )
    # Spelt ``validate`` in YAML; the attribute name avoids shadowing BaseModel.validate.
    use_val: bool = Field(default=True, alias="validate", description="compute validation loss")
    task_weights: dict[str, float] | None = Field(
        default=None,
        description="relative share of each task, or of a family's named task, in the per-task cap "
        "(e.g. {AG: 0.5, review-rating: 3})",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if bool(self.train) == bool(self.mixture):
            raise ValueError("give either data.train or data.mixture (a list of {path, weight})")
        return self


class LoraConfig(_Strict):
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["auto"] = "auto"
    lm_head: bool = Field(default=True, description="also adapt the output projection (the paper does)")
    top_layers: int | None = Field(
        default=None,
        ge=1,
        description="adapt only the last N transformer blocks (and the head): the backward pass stops "
        "below them, so a step costs little more than a forward; None = every block",
    )
    fast_dropout: bool = Field(
        default=True,
        description="CPU: dropout masks from 16-bit uniforms (p rounded to 1/32768), 4x fewer random draws",
    )


class FullConfig(_Strict):
    top_layers: int | None = Field(
        default=None,
        ge=1,
        description="train only the last N transformer blocks and the final norm (the head too when it "
        "is not tied to the input embeddings); the rest stays frozen, so the backward pass stops below "
        "them; None = every parameter",
    )


def native_precision() -> str:
    """``bf16`` autocast only where the CPU multiplies bf16 natively (elsewhere it is emulated and a
    training step took minutes instead of seconds, docs/training.md); on a GPU, ``auto``."""
    import torch

    from ecellm.models.loading import cpu_has_native_bf16

    if torch.cuda.is_available():
        return "auto"
    return "bf16" if cpu_has_native_bf16() else "fp32"


class TrainConfig(_Strict):
    """A complete, reproducible fine-tuning recipe."""

    model: str = "smollm2-135m"
    template: Literal["alpaca", "mistral", "chat", "alpaca-ref", "mistral-ref", "flan-t5-ref"] = "alpaca"
    trust_remote_code: bool = False
    chat_template: str | None = Field(
        default=None,
        description="a chat template for a tokenizer without one: 'llama-3', a .jinja file or Jinja text; "
        "saved with the run, and used at inference with the adapter when the base tokenizer has none",
    )
    method: Literal["lora", "qlora", "full"] = "lora"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    full: FullConfig = Field(default_factory=FullConfig)
    data: DataConfig
    output_dir: str = "runs/train"
    overwrite: bool = Field(
        default=False, description="replace a finished run (or checkpoints) already in output_dir"
    )
    cutoff_len: int = Field(default=2048, ge=8)
    batching: Literal["packed", "grouped", "padded"] = "packed"
    micro_batch_size: int = Field(default=8, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(default=0.05, ge=0, le=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int = Field(default=-1, description="> 0 overrides epochs")
    eval_steps: int | None = Field(
        default=None, ge=1, description="validate every N steps; None = once per epoch"
    )
    save_steps: int | None = Field(
        default=None, ge=1, description="checkpoint every N steps; default = eval_steps"
    )
    save_total_limit: int | None = Field(default=2, ge=1)
    keep_checkpoints: bool = Field(
        default=True,
        description="false: delete checkpoints/ once the run has finished and its model is saved (a full "
        "fine-tune's last checkpoint holds the optimizer state: 1.6 GB for SmolLM2-135M); an interrupted "
        "run keeps them for resume_from",
    )
    load_best: bool = Field(default=True, description="finish with the checkpoint of lowest validation loss")
    resume_from: str | None = Field(default=None, description="checkpoint folder, or 'latest' in output_dir")
    seed: int = 42
    precision: Literal["auto", "fp32", "bf16", "fp16", "native"] = Field(
        default="auto",
        description="auto: bf16 (else fp16) on a GPU, fp32 on CPU; bf16 on CPU = bf16 autocast over fp32 "
        "weights; native: resolved when the recipe loads, bf16 where the device multiplies bf16 natively "
        "(a GPU: auto; a CPU with AVX512-BF16/AMX), else fp32 on CPU",
    )

    @field_validator("precision", mode="before")
    @classmethod
    def _resolve_native(cls, value: Any) -> Any:
        return native_precision() if value == "native" else value

    @model_validator(mode="after")
    def _full_needs_full(self) -> TrainConfig:
        if self.full.top_layers is not None and self.method != "full":
            raise ValueError(
                f"full.top_layers applies to method: full, not {self.method!r} (see lora.top_layers)"
            )
        return self

    logging_steps: int = Field(default=10, ge=1)
    gradient_checkpointing: bool = False
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = Field(
        default="auto",
        description="auto: eager on CPU (its backward is faster there than SDPA's), else the model's default",
    )
    loss_normalization: Literal["per_token", "per_sample"] = Field(
        default="per_token",
        description="per_token: every answer token weighs the same; per_sample: every sample does "
        "(mean of per-sample token means, as the reference trains)",
    )
    target_only_logits: bool = Field(
        default=True, description="compute vocabulary logits only at answer tokens (same loss, less work)"
    )
    speedups: bool = Field(
        default=True,
        description="false turns every CPU speed-up off for this run (packed_weights, fused_lora, "
        "lora.fast_dropout; same as ECELLM_SPEEDUPS=0), leaving the plain path",
    )
    packed_weights: bool = Field(
        default=True,
        description="CPU bf16: the frozen base's linear layers run on oneDNN-packed weights (same results)",
    )
    fused_lora: bool = Field(
        default=True,
        description="CPU bf16 with packed_weights: each LoRA linear layer (fast dropout) runs as one "
        "autograd function (same maths, fewer passes over the activations)",
    )
    report_to: Literal["none", "tensorboard", "wandb", "mlflow", "trackio"] = Field(
        default="none",
        description="experiment tracker the Trainer logs to (its package must be installed; "
        "tensorboard writes under output_dir/checkpoints/runs)",
    )
    plot_loss: bool = Field(
        default=True, description="write loss.png (train and validation loss by step), linked from the card"
    )


def _parse_value(text: str) -> Any:
    """``key=value`` values use YAML scalars, so ``1e-4``, ``true``, ``[AVE,PRP]`` and ``null`` work."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...], *, file: str
) -> dict[str, Any]:
    """Set dotted keys (``lora.r=8``) in a nested dict; a malformed override names itself."""
    for item in overrides:
        if "=" not in item:
            raise InputError(f"override {item!r} is not key=value", file=file, field=item)
        key, value = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise InputError(f"override {item!r} has an empty key", file=file, field=item)
        node = raw
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise InputError(f"cannot set {key!r}: {p!r} is not a section", file=file, field=key)
            node = nxt
        node[parts[-1]] = _parse_value(value)
    return raw


def _resolve_paths(cfg: TrainConfig, base: Path) -> TrainConfig:
    """Data paths are relative to the current directory like every CLI path, except that a path
    that only exists next to the config file is taken from there (configs can name sibling files)."""

    def fix(p: str | None) -> str | None:
        if p is None or Path(p).is_absolute() or Path(p).exists():
            return p
        cand = base / p
        return str(cand) if cand.exists() else p

    cfg.data.train = fix(cfg.data.train) or cfg.data.train
    cfg.data.val = fix(cfg.data.val)
    for source in cfg.data.mixture or []:
        source.path = fix(source.path) or source.path
    return cfg


def load_config(
    config: str | os.PathLike[str] | dict[str, Any] | TrainConfig, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """Read a YAML file (or take a dict), apply overrides and validate; errors name file and key."""
    if isinstance(config, TrainConfig):
        raw: dict[str, Any] = config.model_dump()
        file, base = "<config>", Path.cwd()
    elif isinstance(config, dict):
        raw, file, base = dict(config), "<config>", Path.cwd()
    else:
        from ecellm.train.recipes import resolve_config_path

        path = resolve_config_path(str(config))  # a file, or a recipe name such as smollm2-135m-lora
        file, base = str(path), path.parent
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"malformed YAML: {exc}", file=file) from exc
        if not isinstance(raw, dict):
            raise InputError("a config must be a mapping of keys to values", file=file)
    raw = apply_overrides(raw, overrides, file=file)
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "<root>"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise InputError(f"{msg}{more}", file=file, field=loc) from None
    return _resolve_paths(cfg, base)
