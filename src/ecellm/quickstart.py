"""``ecellm quickstart`` (what ``make demo`` runs): the whole eCeLLM story in one command.

Build ECInstruct-lite from the real raw data, score the embedded SmolLM2-135M on a fixed IND and
OOD test subset, fine-tune it for a fixed budget, score it again, and print before/after tables
(paper rows beside ours) and charts. Sized for a 2-core CPU.

Both models are scored twice, with the strict evaluator (an answer out of format is wrong):

- free generation (``mode="generate"``, what the paper does): tuning teaches the answer format,
  which the base model lacks ("Yes." or an explanation instead of a bare ``yes``);
- ecellm's default decoding (``mode="auto"``: choice scoring for closed tasks, constrained
  decoding for QPR/AVE), where the base model is always in format, so only what the model knows
  about the task can make a difference.

For each, the table gives every per-task delta with a paired 95% bootstrap interval (same
samples, seeded), the IND/OOD mean deltas with theirs, and how the binary tasks' answers are
distributed, because a model that answers one label to every sample can still score on F1.
See docs/training.md ("Why tuning collapsed binary tasks, and the fix") for the recipe.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ecellm.data.pipeline import default_raw_dir
from ecellm.data.schema import Sample
from ecellm.errors import InputError

MODEL = "smollm2-135m"
SCORING = "strict"  # an answer out of format is wrong
# (mode, label): the paper's free generation, then ecellm's default decoding
DECODINGS: tuple[tuple[str, str], ...] = (("generate", "free generation"), ("auto", "default decoding"))
RESAMPLES = 1000  # paired bootstrap resamples for the intervals
PER_TASK, OOD_PER_TASK = 12, 6  # fixed test subset: 120 IND + 36 OOD samples
IND, OOD = "IND_Diverse_Instruction", "OOD_Diverse_Instruction"
# The fixed training budget: full fine-tuning of every weight (fp32 master weights under bf16
# autocast where the CPU has native bf16), lr 1e-4 cosine, 150 length-grouped micro-batches of 4, the
# last checkpoint (no validation pass: the validation samples fit the answer offsets instead). At this
# budget LoRA (r=16 on the last 10 blocks, the previous recipe) barely moved the generation tasks:
# on 30 IND validation samples per task full fine-tuning scored AVE +0.22 and AG +0.20 above it
# (paired intervals above 0) in 1.5x the training time (docs/training.md, "Full fine-tuning").
TRAIN_RECIPE: dict[str, Any] = {
    "model": MODEL,
    "template": "alpaca",
    "method": "full",
    "cutoff_len": 768,  # SR prompts (20 options) are 549+ tokens: 512 dropped every SR sample
    "attn_implementation": "sdpa",  # past 512 tokens SDPA's fp32 backward beat eager's
    "batching": "grouped",
    "micro_batch_size": 4,
    # each sample's answer weighs the same, whatever its length: with the per-token mean, the
    # one-token yes/no decisions got ~4% of the gradient and the long answers of the other tasks
    # pushed every yes/no answer to `no` (docs/training.md, "Why tuning collapsed binary tasks")
    "loss_normalization": "per_sample",
    "precision": "bf16",
    "learning_rate": 1e-4,
    "lr_scheduler": "cosine",
    "warmup_ratio": 0.05,
    "max_steps": 150,
    "load_best": False,
    "keep_checkpoints": False,  # the finished run's checkpoint (optimizer state included) is 1.6 GB
    "logging_steps": 5,
    "seed": 42,
}
TRAIN_DATA: dict[str, Any] = {
    "settings": [IND],
    "per_task_train": 80,
    # AG at twice the share: at 1.5 with the yes/no tasks at 2, the tuned model answered the
    # (similar-looking) product questions of AG with `no`
    "task_weights": {"AVE": 0.5, "SR": 0.5, "AG": 2.0, "PM": 1.5, "PSI": 1.5, "AP": 1.5},
    "balance_labels": True,
    "validate": False,
}
# Per-task answer offsets (ecellm.offsets): fitted after training on this many IND validation
# samples of each choice task, shipped in the tuned folder (offsets.json) and so applied by default to
# the tuned model's choice scoring; the base gets offsets fitted the same way for comparison.
OFFSET_TASKS = ("PM", "PSI", "AP", "PRP", "SA", "MPC")
VAL_PER_TASK = 24


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


def _predict_and_score(
    samples: list[Sample], out: Path, adapter: str | None, label: str, mode: str
) -> tuple[dict[str, Any], dict[str, str]]:
    from ecellm.evaluate import evaluate, load_predictions
    from ecellm.infer.predict import predict

    typer.echo(f"[quickstart] predicting {len(samples)} test samples with {label} ({mode})")
    path = predict(
        samples,
        model=MODEL,
        adapter=adapter,
        backend="hf",
        mode=mode,
        template="alpaca",
        out=out,
        resume=True,
        batch_size=8,
    )
    preds = load_predictions(path, samples)
    result = evaluate(samples, preds, mode=SCORING)
    from ecellm.io import write_json

    write_json(out.with_suffix(".metrics.json"), result)
    return result, preds


def train_precision() -> str:
    """The demo's precision: :func:`ecellm.train.config.native_precision` (bf16 autocast only where
    the CPU multiplies bf16 natively), ``bf16`` on a GPU."""
    from ecellm.train.config import native_precision

    chosen = native_precision()
    return "bf16" if chosen == "auto" else chosen


def _dist(task: Any, group: list[Sample], texts: list[str]) -> tuple[str, bool]:
    """``"no=7 yes=5"`` for the parsed answers, and whether there is only one label."""
    from collections import Counter

    from ecellm.tasks import Invalid

    c = Counter(
        "invalid" if isinstance(a := task.parse(x, s), Invalid) else str(a)
        for x, s in zip(texts, group, strict=True)
    )
    return " ".join(f"{k}={v}" for k, v in sorted(c.items())), len(c) == 1


def label_lines(samples: list[Sample], before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Answer distribution of every yes/no task (gold, base, tuned), flagging one-label answers."""
    from ecellm.tasks import get_task

    lines = []
    keys = sorted({(s.task, s.setting) for s in samples if get_task(s.task).answer_kind == "yes_no"})
    for task, setting in keys:
        group = [s for s in samples if s.task == task and s.setting == setting]
        t = get_task(task)
        gold, _ = _dist(t, group, [s.output for s in group])
        b, b1 = _dist(t, group, [before.get(s.id, "") for s in group])
        a, a1 = _dist(t, group, [after.get(s.id, "") for s in group])
        tag = "IND" if setting.startswith("IND") else "OOD"
        lines.append(
            f"{tag:<5} {task:<5} gold {gold:<16} base {b:<16}{' (one label)' if b1 else '':<12} "
            f"tuned {a}{' (one label)' if a1 else ''}"
        )
    return lines


def interval_lines(
    samples: list[Sample], before: dict[str, str], after: dict[str, str], seed: int
) -> list[str]:
    """Per-task and mean deltas with paired 95% bootstrap intervals."""
    from ecellm.evaluate.paired import paired_bootstrap

    boot = paired_bootstrap(samples, before, after, resamples=RESAMPLES, seed=seed)
    lines = []
    for (task, setting), d in boot["tasks"].items():
        tag = "IND" if setting.startswith("IND") else "OOD"
        lines.append(f"{tag:<5} {task:<5} delta {d['delta']:+.3f}  95% CI [{d['lo']:+.3f}, {d['hi']:+.3f}]")
    for setting, d in boot["means"].items():
        tag = "IND" if setting.startswith("IND") else "OOD"
        sure = "above 0" if d["lo"] > 0 else ("below 0" if d["hi"] < 0 else "includes 0")
        lines.append(
            f"{tag:<5} MEAN  delta {d['delta']:+.3f}  95% CI [{d['lo']:+.3f}, {d['hi']:+.3f}] ({sure})"
        )
    return lines


def offsets_section(
    subset: list[Sample], out: Path, fitted: dict[str, Any], tuned: dict[str, str], seed: int
) -> str:
    """The disclosure of the answer offsets: what was fitted on validation, and the tuned model
    against the base with offsets fitted the same way (the share due to the tuned weights)."""
    from ecellm.evaluate import evaluate
    from ecellm.io import iter_jsonl
    from ecellm.offsets import apply_offsets, offsets_of

    recs = [r for _, r in iter_jsonl(out / "base.auto.predictions.jsonl")]
    fixed = {r["id"]: r["prediction"] for r in apply_offsets(recs, offsets_of(fitted["base"]))}
    table, _ = compare_table(evaluate(subset, fixed, mode=SCORING), evaluate(subset, tuned, mode=SCORING))
    lines = [
        "[quickstart] answer offsets (fitted on validation samples only, added to the choice scores):",
        *(
            f"  {who:<5} {task:<4} {f['offsets'] or 'none'} "
            f"(val {f['val_before']:.3f} -> {f['val_after']:.3f})"
            for who in ("base", "tuned")
            for task, f in sorted(fitted[who]["tasks"].items())
        ),
        "default decoding, tuned (with offsets) vs the base with offsets fitted the same way:",
        table,
        *interval_lines(subset, fixed, tuned, seed),
        "answers of the yes/no tasks (base with offsets vs tuned):",
        *label_lines(subset, fixed, tuned),
        "whether the yes/no scores rank the samples at all, whatever the offsets: AUC of the",
        f"yes-minus-no margin (0.5 = chance; paired 95% intervals, {RESAMPLES} resamples):",
        *auc_lines(subset, recs, [r for _, r in iter_jsonl(out / "tuned.auto.predictions.jsonl")], seed),
    ]
    return "\n".join(lines)


def auc_lines(subset: list[Sample], base: list[dict], tuned: list[dict], seed: int) -> list[str]:
    """One line per yes/no task and setting: base and tuned margin AUC, and their difference."""
    from ecellm.evaluate.auc import auc_delta

    def ci(lo_hi: tuple[float, float]) -> str:
        return f"[{lo_hi[0]:+.2f}, {lo_hi[1]:+.2f}]"

    lines = []
    for (task, setting), r in auc_delta(subset, base, tuned, resamples=RESAMPLES, seed=seed).items():
        tag = "IND" if setting.startswith("IND") else "OOD"
        lines.append(
            f"{tag:<5} {task:<5} n={r['n']:<3} base {r['before']:.2f} tuned {r['after']:.2f} "
            f"delta {r['after'] - r['before']:+.2f} {ci(r['delta_ci'])}"
        )
    return lines


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
    from ecellm.infer.offset_fit import fit_with_model
    from ecellm.offsets import write_offsets
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
    before = {
        mode: _predict_and_score(
            subset, out / f"base.{mode}.predictions.jsonl", None, f"{MODEL} (base)", mode
        )
        for mode, _ in DECODINGS
    }
    recipe = {
        **TRAIN_RECIPE,
        "precision": train_precision(),
        "seed": seed,
        "output_dir": str(out / "tuned"),
        "data": {**TRAIN_DATA, "train": str(data)},
    }
    if max_steps is not None:
        recipe["max_steps"] = max_steps
    typer.echo(
        f"[quickstart] fine-tuning {MODEL} ({recipe['method']}) for {recipe['max_steps']} steps"
        f" ({recipe['precision']})"
    )
    adapter = train(recipe)
    val = load_samples(str(data), tasks=list(OFFSET_TASKS), settings=[IND], splits=["val"])
    val = pick_subset(val, VAL_PER_TASK, seed)
    typer.echo(f"[quickstart] fitting answer offsets on {len(val)} validation samples (base and tuned)")
    fitted = {
        who: fit_with_model(
            val, out / f"{who}.val.predictions.jsonl", model=MODEL, adapter=ad, template="alpaca"
        )
        for who, ad in (("base", None), ("tuned", str(adapter)))
    }
    write_offsets(adapter, fitted["tuned"])  # shipped with the weights: predict applies it by default
    after = {
        mode: _predict_and_score(
            subset, out / f"tuned.{mode}.predictions.jsonl", str(adapter), f"{MODEL} tuned", mode
        )
        for mode, _ in DECODINGS
    }
    sections, means = [], {}
    for mode, label in DECODINGS:
        (b_res, b_pred), (a_res, a_pred) = before[mode], after[mode]
        table, means[mode] = compare_table(b_res, a_res)
        sections.append(
            f"[quickstart] before/after, {label} (--mode {mode}), {SCORING} scoring"
            + (" (tuned: with its answer offsets)" if mode == "auto" else "")
            + f":\n{table}\n"
            f"paired 95% bootstrap intervals (tuned - base, {RESAMPLES} resamples, seed {seed}):\n"
            + "\n".join(interval_lines(subset, b_pred, a_pred, seed))
            + "\nanswers of the yes/no tasks:\n"
            + "\n".join(label_lines(subset, b_pred, a_pred))
        )
    sections.append(offsets_section(subset, out, fitted, after["auto"][1], seed))
    text = "\n\n".join(sections)
    from ecellm.io import atomic_open

    with atomic_open(out / "before_after.txt") as fh:
        fh.write(text + "\n")
    gen_before, gen_after = before["generate"][0], after["generate"][0]
    files = make_report(
        [(f"{MODEL} + ecellm tuning", gen_after)], out / "report", baseline=(f"{MODEL} base", gen_before)
    )
    from ecellm.train.card import read_train_info, write_card
    from ecellm.train.config import load_config

    info = read_train_info(adapter) or {}
    write_card(adapter, load_config(recipe), info, after["auto"][0]["results"])
    minutes = (time.perf_counter() - t0) / 60
    report_md = Path(files["tables.md"]).read_text(encoding="utf-8")
    typer.echo("\n" + report_md[report_md.find("## Table 2") :])  # paper rows beside ours (generation)
    typer.echo(text)
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
        "before": {m: r for m, (r, _) in before.items()},
        "after": {m: r for m, (r, _) in after.items()},
    }


def register(app: typer.Typer) -> None:
    @app.command("quickstart")
    def quickstart_cmd(
        raw_dir: Annotated[
            str | None,
            typer.Option("--raw-dir", help="raw data folder (default $ECELLM_RAW_DIR or ../shared/raw)"),
        ] = None,
        out: Annotated[str, typer.Option("--out", "-o", help="output folder")] = "runs/quickstart",
        per_task: Annotated[int, typer.Option("--per-task", help="IND test samples per task")] = PER_TASK,
        ood_per_task: Annotated[
            int, typer.Option("--ood-per-task", help="OOD test samples per task")
        ] = OOD_PER_TASK,
        max_steps: Annotated[
            int | None, typer.Option("--max-steps", help="training steps (default: the fixed demo budget)")
        ] = None,
    ) -> None:
        """Build ECInstruct-lite, score SmolLM2-135M, fine-tune it, score again, print before/after."""
        run_quickstart(raw_dir, out, per_task=per_task, ood_per_task=ood_per_task, max_steps=max_steps)
