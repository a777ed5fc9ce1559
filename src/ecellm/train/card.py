"""What a training run leaves next to its weights: ``ecellm_train.json`` (the template inference
must reuse), ``manifest.json`` (versions, data hashes, config) and a model card ``README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ecellm.io import atomic_open, write_json
from ecellm.manifest import write_output_manifest
from ecellm.train.config import TrainConfig
from ecellm.train.tracking import LOSS_PLOT, plot_loss

TRAIN_INFO = "ecellm_train.json"


def read_train_info(folder: str | Path) -> dict[str, Any] | None:
    """The training record of an adapter/model folder, or None when it was not made by ecellm."""
    f = Path(folder) / TRAIN_INFO
    return json.loads(f.read_text(encoding="utf-8")) if f.exists() else None


def _data_files(cfg: TrainConfig) -> list[str]:
    out = []
    for p in (cfg.data.train, cfg.data.val, *(src.path for src in cfg.data.mixture or [])):
        if not p:
            continue
        path = Path(p)
        if path.is_dir() and (path / "manifest.json").exists():
            out.append(str(path / "manifest.json"))  # a build folder: its manifest hashes every file
        elif path.exists():
            out.append(p)
    return out


def _sources(cfg: TrainConfig) -> str:
    if cfg.data.mixture:
        return ", ".join(f"`{src.path}` (weight {src.weight:g})" for src in cfg.data.mixture)
    return f"`{cfg.data.train}`"


def _table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of evaluation results (``evaluate()`` rows)."""
    if not rows:
        return "_No evaluation was run for this model._\n"
    lines = ["| task | setting | metric | score | n | invalid |", "|---|---|---|---|---|---|"]
    for r in rows:
        score = r.get("score")
        s = f"{score:.3f}" if isinstance(score, int | float) else "n/a"
        lines.append(
            f"| {r.get('task')} | {r.get('setting')} | {r.get('metric')} | {s} | {r.get('n')} | "
            f"{r.get('invalid')} |"
        )
    return "\n".join(lines) + "\n"


def model_card(
    cfg: TrainConfig,
    info: dict[str, Any],
    evaluation: list[dict[str, Any]] | None = None,
    data_manifest: dict[str, Any] | None = None,
    loss_plot: str | None = None,
) -> str:
    """The README.md of an output folder: what it is, how it was made, how it scores."""
    st = info.get("stats", {})
    tr = st.get("train", {})
    kind = "LoRA adapter" if cfg.method in ("lora", "qlora") else "fully fine-tuned model"
    parts = [
        "---",
        "library_name: peft" if kind == "LoRA adapter" else "library_name: transformers",
        f"base_model: {info.get('base_model', cfg.model)}",
        "tags: [ecellm, ecinstruct, e-commerce]",
        "---",
        "",
        f"# {Path(cfg.output_dir).name}: an e-commerce {kind} made with ecellm",
        "",
        f"Base model `{cfg.model}`, tuned on ECInstruct-style instructions with prompt template "
        f"`{cfg.template}` (use the same template at inference; "
        "`ecellm predict --adapter` reads it from `ecellm_train.json`).",
        "",
        "## Training data",
        "",
        f"- source: {_sources(cfg)}; tasks: {cfg.data.tasks or 'all (generalist)'}; "
        f"settings: {cfg.data.settings}",
        f"- samples per task: {st.get('train_tasks', {})}",
        f"- kept {tr.get('kept')} of {tr.get('samples')} training samples; "
        f"{tr.get('dropped_target_cut')} dropped because the answer did not fit in "
        f"cutoff_len={cfg.cutoff_len}",
        f"- prompt tokens: {tr.get('prompt_tokens')}; answer tokens: {tr.get('target_tokens')}",
        "",
    ]
    if data_manifest:
        parts += [
            "Data build manifest (excerpt):",
            "",
            "```json",
            json.dumps(
                {k: data_manifest[k] for k in sorted(data_manifest) if k != "data_sha256"},
                indent=1,
                sort_keys=True,
                default=str,
            )[:4000],
            "```",
            "",
        ]
    parts += [
        "## Result of training",
        "",
        f"- steps: {st.get('global_step')}, final train loss: {st.get('train_loss')}, best validation loss: "
        f"{st.get('best_eval_loss')} ({st.get('best_checkpoint')})",
        f"- wall time: {st.get('train_seconds')} s on world size {st.get('world_size')}",
        "",
    ]
    if loss_plot:
        parts += [f"![training and validation loss]({loss_plot})", ""]
    parts += [
        "## Evaluation",
        "",
        _table(evaluation or []),
        "## Configuration",
        "",
        "```yaml",
        yaml.safe_dump(cfg.model_dump(), sort_keys=True).rstrip(),
        "```",
        "",
    ]
    return "\n".join(parts)


def write_card(
    folder: str | Path, cfg: TrainConfig, info: dict[str, Any], evaluation: list[dict[str, Any]] | None = None
) -> Path:
    """(Re)write the model card, e.g. after evaluating the adapter."""
    data_manifest = None
    for f in _data_files(cfg):
        if f.endswith("manifest.json"):
            data_manifest = json.loads(Path(f).read_text(encoding="utf-8"))
    path = Path(folder) / "README.md"
    plot = LOSS_PLOT if (Path(folder) / LOSS_PLOT).exists() else None
    with atomic_open(path) as fh:
        fh.write(model_card(cfg, info, evaluation, data_manifest, loss_plot=plot))
    return path


def write_outputs(out: Path, cfg: TrainConfig, loaded: Any, stats: dict[str, Any]) -> None:
    """Rank 0 only: tokenizer, training record, manifest and card beside the saved weights."""
    out.mkdir(parents=True, exist_ok=True)
    loaded.tokenizer.save_pretrained(str(out))
    info = {
        "template": cfg.template,
        "base_model": cfg.model,
        "method": cfg.method,
        "seq2seq": loaded.is_seq2seq,
        "config": cfg.model_dump(),
        "stats": {k: v for k, v in stats.items() if k != "log_history"},
    }
    write_json(out / TRAIN_INFO, info)
    write_json(out / "log_history.json", stats.get("log_history", []))
    if cfg.plot_loss:
        plot_loss(stats.get("log_history", []), out / LOSS_PLOT)
    write_output_manifest(
        out,
        folder=True,
        kind="train",
        config=cfg.model_dump(),
        data=_data_files(cfg),
        model=loaded.source.describe(),
        extra={"stats": info["stats"]},
    )
    write_card(out, cfg, info)
