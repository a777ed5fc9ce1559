"""``ecellm quickstart`` (what ``make demo`` runs): the whole eCeLLM story in one command.

Build ECInstruct-lite from the real raw data, score the embedded SmolLM2-135M on a fixed IND and
OOD test subset, LoRA-tune it for a fixed budget, score it again, and write the before/after
tables (paper rows beside ours) and charts. Sized for a 2-core CPU: about 10-15 minutes.

Both models are scored as the paper scores them, by free generation (``mode="generate"``), and
with the strict evaluator (an answer out of format counts as wrong). That is what instruction
tuning changes: the base model answers "Yes." or explains itself instead of answering, the tuned
one answers in the task's format. ``ecellm predict``'s default choice/constrained decoding removes
format errors without any training, so it would hide exactly the effect the demo shows; run it
on the two models yourself to see the difference.

The training mix leans on the short closed-answer tasks, where a 135M model can learn the answer
format and the label prior in a few hundred samples; the long generation tasks (AVE, AG) get a
smaller share. Every task is still trained and evaluated, and the table prints every per-task
delta, losses included.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import typer

from ecellm.data.schema import Sample
from ecellm.errors import InputError

MODEL = "smollm2-135m"
EVAL_MODE, SCORING = "generate", "strict"  # the paper's decoding, the honest scoring
PER_TASK, OOD_PER_TASK = 12, 6  # fixed test subset: 120 IND + 36 OOD samples
IND, OOD = "IND_Diverse_Instruction", "OOD_Diverse_Instruction"
# The fixed training budget: LoRA as in the paper (r=16, alpha=16, all projections + head) with a
# higher learning rate, length-grouped micro-batches of 4 under bf16 autocast (fp32 weights), a
# fixed number of optimizer steps.
TRAIN_RECIPE: dict[str, Any] = {
    "model": MODEL,
    "template": "alpaca",
    "method": "lora",
    "lora": {"r": 16, "alpha": 16, "dropout": 0.1, "target_modules": "auto", "lm_head": True},
    "cutoff_len": 512,
    "batching": "grouped",
    "micro_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "precision": "bf16",
    "learning_rate": 3e-4,
    "lr_scheduler": "cosine",
    "warmup_ratio": 0.05,
    "max_steps": 50,
    "eval_steps": 25,
    "load_best": True,
    "logging_steps": 5,
    "seed": 42,
}
TRAIN_DATA: dict[str, Any] = {
    "settings": [IND],
    "per_task_train": 48,
    "task_weights": {"AVE": 0.25, "AG": 0.25, "SR": 0.5},
    "max_val_samples": 24,
    "balance_labels": True,
}


def default_raw_dir() -> Path | None:
    """``$ECELLM_RAW_DIR``, else ``../shared/raw`` when it exists (relative to the current folder)."""
    env = os.environ.get("ECELLM_RAW_DIR")
    if env:
        return Path(env)
    cand = Path.cwd().parent / "shared" / "raw"
    return cand if cand.exists() else None


def pick_subset(samples: list[Sample], per_task: int, seed: int) -> list[Sample]:
    """A fixed test subset: ``per_task`` samples of each (task, setting), seeded, order-independent."""
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.id):
        groups.setdefault((s.task, s.setting), []).append(s)
    rng = random.Random(seed)
    out: list[Sample] = []
    for key in sorted(groups):
        g = groups[key]
        out.extend(sorted(rng.sample(g, per_task), key=lambda s: s.id) if len(g) > per_task else g)
    return out


def primary_scores(result: dict[str, Any], setting: str) -> dict[str, float]:
    return {r["task"]: float(r["score"]) for r in result["results"] if r["setting"] == setting}


def compare_table(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """Plain-text before/after table with every per-task delta, and the IND/OOD means."""
    lines = [f"{'setting':<5} {'task':<5} {'metric':<12} {'base':>7} {'tuned':>7} {'delta':>7}"]
    means: dict[str, float] = {}
    for setting, tag in ((IND, "IND"), (OOD, "OOD")):
        b, a = primary_scores(before, setting), primary_scores(after, setting)
        metric = {r["task"]: r["metric"] for r in before["results"] if r["setting"] == setting}
        for task in b:
            d = a.get(task, float("nan")) - b[task]
            lines.append(
                f"{tag:<5} {task:<5} {metric[task]:<12} {b[task]:>7.3f} {a.get(task, float('nan')):>7.3f} "
                f"{d:>+7.3f}{'  (worse)' if d < 0 else ''}"
            )
        if b:
            means[f"{tag} base"] = sum(b.values()) / len(b)
            means[f"{tag} tuned"] = sum(a.get(t, 0.0) for t in b) / len(b)
            lines.append(
                f"{tag:<5} {'MEAN':<5} {'primary':<12} {means[f'{tag} base']:>7.3f} "
                f"{means[f'{tag} tuned']:>7.3f} {means[f'{tag} tuned'] - means[f'{tag} base']:>+7.3f}"
            )
    return "\n".join(lines), means


def _predict_and_score(samples: list[Sample], out: Path, adapter: str | None, label: str) -> dict[str, Any]:
    from ecellm.evaluate import evaluate, load_predictions
    from ecellm.infer.predict import predict

    typer.echo(f"[quickstart] predicting {len(samples)} test samples with {label}")
    path = predict(
        samples,
        model=MODEL,
        adapter=adapter,
        backend="hf",
        mode=EVAL_MODE,
        template="alpaca",
        out=out,
        resume=True,
        batch_size=8,
    )
    result = evaluate(samples, load_predictions(path, samples), mode=SCORING)
    from ecellm.io import write_json

    write_json(out.with_suffix(".metrics.json"), result)
    return result


def run_quickstart(
    raw_dir: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] = "runs/quickstart",
    *,
    per_task: int = PER_TASK,
    ood_per_task: int = OOD_PER_TASK,
    max_steps: int | None = None,
    seed: int = 42,
) -> dict[str, Any]:
    """Run the demo end to end; returns paths and the IND/OOD means before and after tuning."""
    from ecellm.data.loaders import load_samples
    from ecellm.data.pipeline import build_dataset
    from ecellm.report import make_report
    from ecellm.train.run import train

    raw = Path(raw_dir) if raw_dir else default_raw_dir()
    if raw is None or not raw.exists():
        raise InputError(
            "raw data not found: set ECELLM_RAW_DIR to a folder laid out like ../shared/raw "
            "(see docs/training.md, 'Getting the raw data'), or run from a checkout next to shared/raw",
            file=str(raw) if raw else "$ECELLM_RAW_DIR",
        )
    out = Path(out_dir)
    t0 = time.perf_counter()
    data = out / "data"
    if not (data / "manifest.json").exists():
        typer.echo(f"[quickstart] building ECInstruct-lite from {raw} into {data}")
        build_dataset(raw, data, seed=seed)
    tests = load_samples(str(data), settings=[IND, OOD], splits=["test"])
    subset = pick_subset([s for s in tests if s.setting == IND], per_task, seed) + pick_subset(
        [s for s in tests if s.setting == OOD], ood_per_task, seed
    )
    before = _predict_and_score(subset, out / "base.predictions.jsonl", None, f"{MODEL} (base)")
    recipe = {
        **TRAIN_RECIPE,
        "seed": seed,
        "output_dir": str(out / "adapter"),
        "data": {**TRAIN_DATA, "train": str(data)},
    }
    if max_steps is not None:
        recipe["max_steps"] = max_steps
    typer.echo(f"[quickstart] LoRA-tuning {MODEL} for {recipe['max_steps']} steps")
    adapter = train(recipe)
    after = _predict_and_score(subset, out / "tuned.predictions.jsonl", str(adapter), f"{MODEL} + LoRA")
    table, means = compare_table(before, after)
    from ecellm.io import atomic_open

    with atomic_open(out / "before_after.txt") as fh:
        fh.write(table + "\n")
    files = make_report(
        [(f"{MODEL} + ecellm LoRA", after)], out / "report", baseline=(f"{MODEL} base", before)
    )
    from ecellm.train.card import read_train_info, write_card
    from ecellm.train.config import load_config

    info = read_train_info(adapter) or {}
    write_card(adapter, load_config(recipe), info, after["results"])
    minutes = (time.perf_counter() - t0) / 60
    report_md = Path(files["tables.md"]).read_text(encoding="utf-8")
    typer.echo("\n" + report_md[report_md.find("## Table 2") :])  # paper rows beside ours
    typer.echo(f"[quickstart] before/after ({EVAL_MODE} decoding, {SCORING} scoring):\n" + table)
    typer.echo(f"\n[quickstart] report: {files.get('tables.md')}")
    typer.echo(
        f"[quickstart] charts: {', '.join(str(p) for n, p in sorted(files.items()) if n.endswith('.png'))}"
    )
    typer.echo(f"[quickstart] done in {minutes:.1f} min")
    return {
        "adapter": adapter,
        "report": files,
        "means": means,
        "minutes": minutes,
        "before": before,
        "after": after,
    }


def register(app: typer.Typer) -> None:
    @app.command("quickstart")
    def quickstart_cmd(
        raw_dir: str | None = typer.Option(
            None, help="raw data folder (default $ECELLM_RAW_DIR or ../shared/raw)"
        ),
        out: str = typer.Option("runs/quickstart", help="output folder"),
        per_task: int = typer.Option(PER_TASK, help="IND test samples per task"),
        ood_per_task: int = typer.Option(OOD_PER_TASK, help="OOD test samples per task"),
        max_steps: int | None = typer.Option(None, help="training steps (default: the fixed demo budget)"),
    ) -> None:
        """Build ECInstruct-lite, score SmolLM2-135M, LoRA-tune it, score again, print before/after."""
        run_quickstart(raw_dir, out, per_task=per_task, ood_per_task=ood_per_task, max_steps=max_steps)
