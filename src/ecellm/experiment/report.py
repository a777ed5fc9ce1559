"""The experiment report: Tables 2-5 in the paper's layout, our rows with intervals beside the
paper's, invalid-answer rates, the share of the most common answer on the closed-answer tasks,
paired per-task deltas, verdicts on each direction, charts.

The most common answer's share is there because a closed-answer score can move without the model
reading its input: a run that gives one answer to every sample scores what that answer's share of
the gold scores, so a gain from a new constant is a change of prior, not of skill.

Every interval comes from the bootstrap replicates stored with the metrics (same resamples for
every run on the same samples), so a delta's interval is paired and a mean's interval resamples
every task. A delta is only computed when both runs were scored on identical sample ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecellm.evaluate.answers import most_common
from ecellm.evaluate.bootstrap import interval, mean_of, paired_difference, verdict
from ecellm.experiment.config import IND, IND_UNSEEN, OOD, OOD_UNSEEN, ExperimentConfig
from ecellm.io import iter_jsonl, read_json
from ecellm.report.paper import paper_tables
from ecellm.tasks import all_tasks, get_task


@dataclass
class Cell:
    score: float
    low: float | None = None
    high: float | None = None
    n: int | None = None
    invalid: int | None = None
    reps: np.ndarray | None = None
    ids: str | None = None
    top: tuple[float, str] | None = None  # (share, answer) of the most common parsed answer


@dataclass
class OurRow:
    label: str
    run: str
    model: str
    mode: str
    cells: dict[str, Cell]
    mean: Cell | None
    invalid_rate: float | None


@dataclass
class DeltaRow:
    label: str
    model: str
    mode: str
    cells: dict[str, dict[str, Any]]
    mean: dict[str, Any] | None
    better: list[str] = field(default_factory=list)
    worse: list[str] = field(default_factory=list)
    sig_better: list[str] = field(default_factory=list)
    sig_worse: list[str] = field(default_factory=list)


@dataclass
class ReportTable:
    key: str
    title: str
    setting: str
    tasks: list[str]
    metrics: dict[str, str]
    paper: list[tuple[str, dict[str, float]]]
    rows: list[OurRow]
    deltas: list[DeltaRow]
    question: str
    notes: list[str] = field(default_factory=list)


def most_common_answers(path: Path) -> dict[tuple[str, str], tuple[float, str]]:
    """``(setting, task) -> (share, answer)`` of the most common parsed answer in a sample log,
    for the tasks whose answers can be counted (``Task.countable``)."""
    parsed: dict[tuple[str, str], list[Any]] = {}
    for _, rec in iter_jsonl(path):
        if get_task(rec["task"]).countable:
            parsed.setdefault((rec["setting"], rec["task"]), []).append(rec["parsed"])
    tops = {key: most_common(v) for key, v in parsed.items()}
    return {key: (top["share"], top["answer"]) for key, top in tops.items()}


def load_cells(entries: list[dict[str, Any]], modes: list[str]) -> dict[tuple, Cell]:
    """``(model, run, mode, setting, task) -> Cell`` from every evaluate step folder."""
    out: dict[tuple, Cell] = {}
    for e in entries:
        for mode in modes:
            path = Path(e["folder"]) / f"{mode}.metrics.json"
            if not path.exists():
                continue
            log = Path(e["folder"]) / f"{mode}.samples.jsonl"
            tops = most_common_answers(log) if log.exists() else {}
            for r in read_json(path)["results"]:
                ci = r.get("ci") or {}
                reps = np.asarray(r["replicates"]) if r.get("replicates") else None
                out[(e["model"], e["run"], mode, r["setting"], r["task"])] = Cell(
                    float(r["score"]),
                    ci.get("low"),
                    ci.get("high"),
                    r["n"],
                    r["invalid"],
                    reps,
                    r.get("ids_sha256"),
                    tops.get((r["setting"], r["task"])),
                )
    return out


def _row(
    cells: dict[tuple, Cell], model: str, run: str, mode: str, setting: str, tasks: list[str], level: float
):
    got = {t: cells[(model, run, mode, setting, t)] for t in tasks if (model, run, mode, setting, t) in cells}
    if not got:
        return None
    mean = None
    if len(got) == len(tasks):
        score = float(np.mean([c.score for c in got.values()]))
        reps = [c.reps for c in got.values()]
        if all(r is not None for r in reps):
            m = mean_of(reps)  # type: ignore[arg-type]
            lo, hi = interval(m, level)
            mean = Cell(score, lo, hi, reps=m)
        else:
            mean = Cell(score)
    n = sum(c.n or 0 for c in got.values())
    inv = sum(c.invalid or 0 for c in got.values()) / n if n else None
    return OurRow(f"{model} {run}", run, model, mode, got, mean, inv)


def _delta(a: OurRow, b: OurRow, tasks: list[str], level: float, notes: list[str]) -> DeltaRow:
    cells: dict[str, dict[str, Any]] = {}
    for t in tasks:
        ca, cb = a.cells.get(t), b.cells.get(t)
        if ca is None or cb is None or ca.reps is None or cb.reps is None:
            continue
        if ca.ids != cb.ids:
            notes.append(f"{t}: {a.run} and {b.run} were scored on different samples; no paired delta.")
            continue
        cells[t] = paired_difference(ca.score, ca.reps, cb.score, cb.reps, level=level)
    mean = None
    if len(cells) == len(tasks) and a.mean and b.mean and a.mean.reps is not None and b.mean.reps is not None:
        mean = paired_difference(a.mean.score, a.mean.reps, b.mean.score, b.mean.reps, level=level)
    d = DeltaRow(f"delta: {a.run} - {b.run}", a.model, a.mode, cells, mean)
    d.better = [t for t, c in cells.items() if c["estimate"] > 0]
    d.worse = [t for t, c in cells.items() if c["estimate"] < 0]
    d.sig_better = [t for t, c in cells.items() if verdict(c) == "better"]
    d.sig_worse = [t for t, c in cells.items() if verdict(c) == "worse"]
    return d


def _nested(table: dict[str, dict[str, dict[str, float]]]) -> list[tuple[str, dict[str, float]]]:
    return [
        (f"{model} ({variant})", cells)
        for model, variants in table.items()
        for variant, cells in variants.items()
    ]


def build_tables(cfg: ExperimentConfig, entries: list[dict[str, Any]]) -> list[ReportTable]:
    paper = paper_tables()
    modes = list(cfg.evaluate.modes)
    level = cfg.evaluate.level
    cells = load_cells(entries, modes)
    chosen = {e["task"] or "" for e in entries} | {t for (_m, _r, _mo, _s, t) in cells}
    ind = [t.abbr for t in all_tasks() if t.abbr in chosen]
    ood = [t for t in ind if get_task(t).has_ood]
    c = cfg.compare
    specs = [
        (
            "table2_ind",
            "Table 2: in-domain (IND), diverse instructions",
            IND,
            ind,
            list(paper["table2_ind"].items()),
            (c.tuned, "base"),
            "Does instruction tuning beat the untuned base in domain?",
        ),
        (
            "table3_ood",
            "Table 3: out-of-domain (OOD), diverse instructions",
            OOD,
            ood,
            list(paper["table3_ood"].items()),
            (c.tuned, "base"),
            "Does instruction tuning beat the untuned base out of domain?",
        ),
        (
            "table4_unseen_ind",
            "Table 4: IND with the unseen instruction, diverse vs single instruction tuning",
            IND_UNSEEN,
            ind,
            _nested(paper["table4_unseen_instructions_ind"]),
            (c.diverse, c.single),
            "On an unseen instruction, is tuning on diverse instructions at least as good as on one?",
        ),
        (
            "table4_unseen_ood",
            "Table 4 (OOD, no paper table): unseen instruction, diverse vs single",
            OOD_UNSEEN,
            ood,
            [],
            (c.diverse, c.single),
            "The same question out of domain.",
        ),
        (
            "table5_generalist_vs_task_specific",
            "Table 5: IND, generalist vs task-specific models",
            IND,
            ind,
            _nested(paper["table5_generalist_vs_task_specific_ind"]),
            (c.generalist, c.task_specific),
            "Is one generalist model at least as good as one task-specific model per task?",
        ),
    ]
    for a, b in c.also:  # more Table 2/3 pairs, e.g. with and without answer offsets
        for key, name, setting, tasks_ in (("table2_ind", "IND", IND, ind), ("table3_ood", "OOD", OOD, ood)):
            specs.insert(
                len(specs) - 3,
                (
                    f"{key}__{a}__vs__{b}".replace("+", "_plus_"),
                    f"Table {key[5]} ({name}, diverse instructions): {a} vs {b}",
                    setting,
                    tasks_,
                    list(paper[key].items()),
                    (a, b),
                    f"Is {a} better than {b} ({name})?",
                ),
            )
    tables = []
    for key, title, setting, tasks, prow, (run_a, run_b), question in specs:
        if not tasks:
            continue
        notes: list[str] = []
        rows: list[OurRow] = []
        deltas: list[DeltaRow] = []
        for model in [m.name for m in cfg.models]:
            for mode in modes:
                a = _row(cells, model, run_a, mode, setting, tasks, level)
                b = _row(cells, model, run_b, mode, setting, tasks, level)
                rows += [r for r in (b, a) if r is not None]
                if a is not None and b is not None:
                    deltas.append(_delta(a, b, tasks, level, notes))
        if not rows:
            notes.append(f"No run has results for {setting} ({run_a}, {run_b}).")
        metrics = {t: paper["metrics"].get(t, "") for t in tasks}
        paper_rows = [(name, {t: v for t, v in cells_.items() if t in tasks}) for name, cells_ in prow]
        tables.append(
            ReportTable(
                key, title, setting, tasks, metrics, paper_rows, rows, deltas, question, sorted(set(notes))
            )
        )
    return tables


def _ci(d: dict[str, Any] | None) -> str:
    if not d:
        return "n/a"
    return f"{d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def direction(table: ReportTable, mode: str) -> list[str]:
    """One sentence per model: the mean delta with its interval and what it says about the question."""
    out = []
    for d in table.deltas:
        if d.mode != mode:
            continue
        m = d.mean
        if m is None:
            out.append(f"{d.model} [{mode}] {d.label}: no mean (some task lacks a paired score).")
            continue
        v = verdict(m)
        if v == "better":
            say = "reproduced: the interval of the mean difference lies above 0"
        elif v == "worse":
            say = "not reproduced: reversed, the interval lies below 0"
        elif m["estimate"] >= 0:
            say = "not contradicted: the estimate is >= 0 but the interval includes 0 (no clear difference)"
        else:
            say = "not reproduced: the estimate is < 0, though the interval includes 0 (no clear difference)"
        n = len(table.tasks)
        out.append(
            f"{d.model} [{mode}] {d.label}, mean over {n} tasks: {_ci(m)} -> {say}. Per task: higher on "
            f"{len(d.better)}/{n} ({', '.join(d.better) or '-'}; interval above 0 on {len(d.sig_better)}), "
            "lower on "
            f"{len(d.worse)}/{n} ({', '.join(d.worse) or '-'}; interval below 0 on {len(d.sig_worse)})."
        )
    return out


def acceptance(cfg: ExperimentConfig, tables: list[ReportTable]) -> list[tuple[str, bool | None, str]]:
    """The issue's bar for the tuned generalist vs its base (headline mode, the configured decoding)."""
    mode = cfg.compare.headline_mode
    by_key = {t.key: t for t in tables}
    out: list[tuple[str, bool | None, str]] = []
    for model in [m.name for m in cfg.models]:
        for key, name in (("table2_ind", "IND"), ("table3_ood", "OOD")):
            t = by_key.get(key)
            d = next((x for x in (t.deltas if t else []) if x.model == model and x.mode == mode), None)
            ok = None if d is None or d.mean is None else d.mean["low"] > 0
            out.append(
                (
                    f"{model}: tuned beats base on the {name} mean, interval above 0",
                    ok,
                    _ci(d.mean if d else None),
                )
            )
        t = by_key.get("table2_ind")
        d = next((x for x in (t.deltas if t else []) if x.model == model and x.mode == mode), None)
        if d is not None:
            need = min(7, len(t.tasks)) if t else 7
            out.append(
                (
                    f"{model}: higher on at least {need} of {len(t.tasks) if t else 10} IND tasks",
                    len(d.better) >= need,
                    f"{len(d.better)} ({', '.join(d.better)})",
                )
            )
        bad = []
        for t in tables:
            for r in t.rows:
                if r.model == model and r.run == cfg.compare.tuned and r.mode == mode:
                    bad += [
                        f"{t.setting.split('_')[0]} {k} {c.invalid}/{c.n}"
                        for k, c in r.cells.items()
                        if get_task(k).answer_kind != "text" and c.invalid  # free text is never invalid
                    ]
        out.append(
            (
                f"{model}: 0 invalid answers on every non-AG task (tuned)",
                not bad,
                ", ".join(sorted(set(bad))) or "none",
            )
        )
    return out


def _top(c: Cell | None) -> str:
    """``"100% yes"``: the most common answer's share (options shortened to their letter)."""
    if c is None or c.top is None:
        return ""
    share, answer = c.top
    return f"{share:.0%} {answer.split(':', 1)[0][:12]}"


def _fmt(c: Cell | None) -> str:
    if c is None:
        return "n/a"
    if c.low is None or c.high is None:
        return f"{c.score:.3f}"
    return f"{c.score:.3f} [{c.low:.2f}, {c.high:.2f}]"


def table_markdown(t: ReportTable, images: dict[str, str]) -> str:
    head = ["Model", "Mode", *t.tasks, "Mean"]
    lines = [
        f"## {t.title}",
        "",
        f"Setting `{t.setting}`. {t.question}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * 2 + "---:|" * (len(head) - 2),
        "| *metric* | | " + " | ".join(t.metrics[x] for x in t.tasks) + " | |",
    ]
    for name, cells in t.paper:
        vals = [cells.get(x) for x in t.tasks]
        mean = f"{np.mean(vals):.3f}" if all(v is not None for v in vals) else "n/a"
        lines.append(
            f"| {name} (paper) | paper | "
            + " | ".join("n/a" if v is None else f"{v:.3f}" for v in vals)
            + f" | {mean} |"
        )
    for r in t.rows:
        lines.append(
            f"| **{r.label}** | {r.mode} | "
            + " | ".join(_fmt(r.cells.get(x)) for x in t.tasks)
            + f" | {_fmt(r.mean)} |"
        )
        rates = [
            f"{r.cells[x].invalid / r.cells[x].n:.1%}" if x in r.cells and r.cells[x].n else "n/a"
            for x in t.tasks
        ]
        pooled = "n/a" if r.invalid_rate is None else f"{r.invalid_rate:.1%}"
        lines.append(f"| *{r.label}: invalid rate* | {r.mode} | " + " | ".join(rates) + f" | {pooled} |")
        if any(r.cells[x].top for x in t.tasks if x in r.cells):
            tops = [_top(r.cells.get(x)) for x in t.tasks]
            lines.append(f"| *{r.label}: most common answer* | {r.mode} | " + " | ".join(tops) + " | |")
    for d in t.deltas:
        lines.append(
            f"| *{d.model} {d.label}* | {d.mode} | "
            + " | ".join(_ci(d.cells.get(x)) for x in t.tasks)
            + f" | {_ci(d.mean)} |"
        )
    lines.append("")
    lines += [f"- {s}" for m in dict.fromkeys(r.mode for r in t.rows) for s in direction(t, m)]
    lines += [f"- {n}" for n in t.notes]
    for kind in ("scores", "delta"):
        if f"{t.key}-{kind}" in images:
            lines += ["", f"![{t.title}: {kind}]({images[f'{t.key}-{kind}']})"]
    return "\n".join(lines) + "\n"


def report_markdown(cfg: ExperimentConfig, tables: list[ReportTable], images: dict[str, str]) -> str:
    ev = cfg.evaluate
    parts = [
        f"# Experiment `{cfg.name}`: the eCeLLM paper's Tables 2-5",
        "",
        f"Paper rows: {paper_tables()['source']} (paper-mode scoring, the paper's models and data sizes). "
        f"Our rows: {', '.join(m.name for m in cfg.models)}, decoding `{cfg.predict.mode}`, scored in "
        f"{' and '.join(ev.modes)} mode. Each cell is the score and its {ev.level:.0%} bootstrap interval "
        f"({ev.bootstrap} resamples of the test samples, seed {ev.seed}, percentile); a mean's interval "
        "resamples every task; a delta's interval is paired (same resamples, same samples for both runs). "
        "Invalid rate = share of answers that could not be parsed. Negative deltas are losses.",
        "",
        "## Verdicts",
        "",
    ]
    mode = cfg.compare.headline_mode
    for t in tables:
        for s in direction(t, mode):
            parts.append(f"- **{t.title.split(':')[0]}** ({t.question}) {s}")
    parts += ["", f"## Acceptance checks ({mode} scoring)", ""]
    for name, ok, detail in acceptance(cfg, tables):
        parts.append(
            f"- {'met' if ok else 'not met' if ok is not None else 'not measured'}: {name} ({detail})"
        )
    parts.append("")
    parts += [table_markdown(t, images) for t in tables]
    return "\n".join(parts)


def tables_json(cfg: ExperimentConfig, tables: list[ReportTable]) -> dict[str, Any]:
    def cell(c: Cell | None) -> dict[str, Any] | None:
        return (
            None
            if c is None
            else {
                "score": c.score,
                "low": c.low,
                "high": c.high,
                "n": c.n,
                "invalid": c.invalid,
                "most_common_answer": None if c.top is None else {"share": c.top[0], "answer": c.top[1]},
            }
        )

    return {
        "name": cfg.name,
        "paper_source": paper_tables()["source"],
        "bootstrap": cfg.evaluate.model_dump(),
        "acceptance": [{"check": n, "met": ok, "detail": d} for n, ok, d in acceptance(cfg, tables)],
        "tables": [
            {
                "key": t.key,
                "title": t.title,
                "setting": t.setting,
                "tasks": t.tasks,
                "question": t.question,
                "paper": [{"label": n, "cells": c} for n, c in t.paper],
                "rows": [
                    {
                        "label": r.label,
                        "run": r.run,
                        "model": r.model,
                        "mode": r.mode,
                        "cells": {k: cell(v) for k, v in r.cells.items()},
                        "mean": cell(r.mean),
                        "invalid_rate": r.invalid_rate,
                    }
                    for r in t.rows
                ],
                "deltas": [
                    {"label": d.label, "model": d.model, "mode": d.mode, "cells": d.cells, "mean": d.mean}
                    for d in t.deltas
                ],
                "verdicts": [s for m in dict.fromkeys(r.mode for r in t.rows) for s in direction(t, m)],
                "notes": t.notes,
            }
            for t in tables
        ],
    }
