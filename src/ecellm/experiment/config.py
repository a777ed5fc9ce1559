"""The experiment file: which data, which models, which runs, how to predict and score.

Validated with ``extra="forbid"`` like the training recipe, so a misspelt key fails before an
hour of training, naming the file and the dotted key. Each run's training recipe is the deep
merge of the common ``train`` section, the model's ``train`` section and the run's ``train``
section; it is checked against :class:`ecellm.train.config.TrainConfig` at load time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ecellm.errors import InputError

IND, OOD = "IND_Diverse_Instruction", "OOD_Diverse_Instruction"
IND_UNSEEN, OOD_UNSEEN = "IND_Unseen_Instruction", "OOD_Unseen_Instruction"
DEFAULT_TEST_SIZES = {IND: 20, OOD: 20, IND_UNSEEN: 20, OOD_UNSEEN: 20}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSection(_Strict):
    """Either build from raw files (``build`` overrides ecinstruct-lite.yaml) or read ``path``."""

    raw_dir: str | None = Field(default=None, description="default: $ECELLM_RAW_DIR or ../shared/raw")
    path: str | None = Field(default=None, description="an existing dataset instead of a build")
    build: dict[str, Any] = Field(default_factory=dict)
    tasks: list[str] | None = None
    test_sizes: dict[str, int | None] = Field(
        default_factory=lambda: dict(DEFAULT_TEST_SIZES),
        description="test samples per task for each test setting (None = all)",
    )
    task_test_caps: dict[str, int] = Field(
        default_factory=dict,
        description="lower caps for costly tasks, e.g. {AG: 8}: long generations, SR's 20 options",
    )


class ModelEntry(_Strict):
    model: str
    label: str | None = None
    train: dict[str, Any] = Field(default_factory=dict)
    template: str = "alpaca"  # prompt template for the untuned base's predictions

    @property
    def name(self) -> str:
        return self.label or self.model


class RunEntry(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["generalist", "task_specific"] = "generalist"
    settings: list[str] = Field(default_factory=lambda: [IND])
    train: dict[str, Any] = Field(default_factory=dict)
    # the test settings this run predicts (None = all of data.test_sizes): a run that fills only
    # Table 4 needs the unseen-instruction sets, a task-specific run only Table 5's IND set
    test_settings: list[str] | None = None


class PredictSection(_Strict):
    mode: Literal["auto", "generate", "choice", "constrained"] = "auto"
    backend: str = "hf"
    batch_size: int = Field(default=8, ge=1)


class EvaluateSection(_Strict):
    modes: list[Literal["paper", "strict"]] = Field(default_factory=lambda: ["paper", "strict"])
    bootstrap: int = Field(default=1000, ge=0)
    seed: int = 0
    level: float = Field(default=0.95, gt=0, lt=1)
    bertscore_model: str | None = None


class OffsetsSection(_Strict):
    """Per-task answer offsets (:mod:`ecellm.offsets`) fitted on validation choice scores.

    For the untuned base and every run named in ``runs`` an extra prediction set
    ``<run>+offsets`` is scored: the run's test predictions re-decided under offsets fitted on
    ``per_task`` validation samples of each of ``tasks`` (setting ``setting``, split ``val``).
    The base gets offsets fitted the same way (``base+offsets``), so the share due to the tuned
    weights stays visible. Empty ``runs`` = off.
    """

    runs: list[str] = Field(default_factory=list)
    tasks: list[str] = Field(default_factory=lambda: ["PM", "PSI", "AP", "PRP", "SA", "MPC"])
    setting: str = IND
    per_task: int = Field(default=40, ge=2)


class Compare(_Strict):
    """Which runs fill which comparison (names from ``runs``; ``<run>+offsets`` and
    ``base+offsets`` name the offset-corrected sets of the ``offsets`` section)."""

    tuned: str = "generalist-diverse"  # Tables 2 and 3: tuned vs base
    diverse: str = "generalist-diverse"  # Table 4
    single: str = "generalist-single"
    generalist: str = "generalist-diverse"  # Table 5
    task_specific: str = "task-specific"
    headline_mode: Literal["paper", "strict"] = "strict"
    # more Table 2/3 comparisons, each [a, b]: e.g. the raw runs beside offset-corrected ones
    also: list[tuple[str, str]] = Field(default_factory=list)


class ExperimentConfig(_Strict):
    name: str
    out_dir: str = "runs/experiments/NAME"
    seed: int = 42
    data: DataSection = Field(default_factory=DataSection)
    models: list[ModelEntry]
    train: dict[str, Any] = Field(default_factory=dict)
    launcher: list[str] | None = Field(
        default=None,
        description="train in a subprocess: e.g. [accelerate, launch, --config_file, F, -m, ecellm.train]",
    )
    runs: list[RunEntry]
    predict: PredictSection = Field(default_factory=PredictSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    offsets: OffsetsSection = Field(default_factory=OffsetsSection)
    compare: Compare = Field(default_factory=Compare)

    @model_validator(mode="after")
    def _unique(self) -> ExperimentConfig:
        names = [r.name for r in self.runs]
        if len(set(names)) != len(names):
            raise ValueError(f"run names must be unique: {names}")
        labels = [m.name for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"model labels must be unique: {labels}")
        generalists = {r.name for r in self.runs if r.kind == "generalist"}
        if unknown := [r for r in self.offsets.runs if r not in generalists]:
            raise ValueError(f"offsets.runs names no generalist run: {unknown}")
        return self

    def output(self) -> Path:
        return Path(self.out_dir.replace("NAME", self.name))


def deep_merge(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def train_recipe(
    cfg: ExperimentConfig, model: ModelEntry, run: RunEntry, *, data: str, out: str, task: str | None
) -> dict[str, Any]:
    """The full training recipe of one run (validated by the caller with the train config)."""
    recipe = deep_merge({"seed": cfg.seed}, cfg.train, model.train, run.train)
    recipe["model"] = model.model
    recipe["output_dir"] = out
    recipe["data"] = deep_merge(recipe.get("data", {}), {"train": data, "settings": list(run.settings)})
    if task is not None:
        recipe["data"]["tasks"] = [task]
        recipe["data"].pop("task_weights", None)  # one task: weights have nothing to weigh
    return recipe


def load_experiment(config: str | os.PathLike[str] | dict[str, Any] | ExperimentConfig) -> ExperimentConfig:
    """Read and validate an experiment file (or dict); errors name the file and dotted key."""
    if isinstance(config, ExperimentConfig):
        return config
    file = "<config>"
    if isinstance(config, dict):
        raw = config
    else:
        path = Path(config)
        file = str(path)
        if not path.exists():
            raise InputError("experiment file not found", file=file)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"malformed YAML: {exc}", file=file) from exc
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "<root>"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise InputError(msg, file=file, field=loc) from None
    from ecellm.train.config import load_config

    for m in cfg.models:  # every recipe must be a valid training config before anything runs
        for r in cfg.runs:
            try:
                load_config(train_recipe(cfg, m, r, data="<data>", out="<out>", task=None))
            except InputError as exc:
                raise InputError(
                    f"run {r.name!r} with model {m.name!r}: {exc}", file=file, field="train"
                ) from None
    return cfg
