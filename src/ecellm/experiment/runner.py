"""Plan the experiment as a list of steps and run the ones whose inputs changed.

Order: data, test set, then for each model the untuned base (predict, score) and each run
(train, predict, score), then the report, so partial results exist early. The progress line
names the step, its position and an ETA from measured seconds per work unit of each step kind
(kept in every ``done.json``, so a resumed run estimates from what it measured before).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecellm.data.pipeline import default_raw_dir
from ecellm.errors import InputError
from ecellm.experiment import steps as S
from ecellm.experiment.cache import StepDir, code_version
from ecellm.experiment.config import ExperimentConfig, ModelEntry, load_experiment, train_recipe
from ecellm.io import write_json
from ecellm.tasks import all_tasks, get_task

# Seconds per work unit before anything was measured (2-core CPU, SmolLM2-135M; docs/experiments.md).
PRIOR_RATES = {
    "data": 240.0,
    "testset": 5.0,
    "train": 0.6,
    "predict": 0.4,
    "offsets": 0.4,
    "evaluate": 0.02,
    "report": 15.0,
}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-").lower()


# Recipe keys that change what a run keeps or logs, not the weights it trains: left out of the
# training step's key, so changing them does not retrain a finished run.
UNKEYED = ("keep_checkpoints", "logging_steps")


def _train_units(recipe: dict[str, Any], n_tasks: int) -> float:
    """Samples the run will push through the model (max_steps x effective batch, else the data cap)."""
    per_step = recipe.get("micro_batch_size", 8) * recipe.get("gradient_accumulation_steps", 1)
    if recipe.get("max_steps", -1) > 0:
        return float(recipe["max_steps"] * per_step)
    cap = recipe.get("data", {}).get("per_task_train") or 2000
    return float(cap * n_tasks * recipe.get("epochs", 3.0))


def _test_count(cfg: ExperimentConfig, tasks: list[str], settings: list[str] | None = None) -> int:
    total = 0
    for setting, k in cfg.data.test_sizes.items():
        if settings is not None and setting not in settings:
            continue
        eligible = [t for t in tasks if get_task(t).has_ood or not setting.startswith("OOD")]
        caps = {get_task(t).abbr: v for t, v in cfg.data.task_test_caps.items()}
        total += sum(min(k if k is not None else 500, caps.get(t, 10**9)) for t in eligible)
    return total


class Plan:
    """The ordered steps and where their outputs live."""

    def __init__(self, cfg: ExperimentConfig, *, progress: bool = True) -> None:
        self.cfg = cfg
        self.root = cfg.output()
        self.steps: list[S.Step] = []
        self.entries: list[dict[str, Any]] = []  # what the report reads: one per scored prediction set
        self.tasks = (
            [get_task(t).abbr for t in cfg.data.tasks] if cfg.data.tasks else [t.abbr for t in all_tasks()]
        )
        self._progress = progress
        self._data_step()
        self._add(S.Step("testset", "testset", 1, self._test_config(), ["data"], self._tests_exec()))
        for model in cfg.models:
            self._model_steps(model)
        self._add(
            S.Step(
                "report", "report", 1, {"compare": cfg.compare.model_dump()}, self._eval_names(), self._report
            )
        )  # type: ignore[arg-type]

    def _report(self, folder: Path, resumed: bool) -> str:
        from ecellm.experiment.cache import tree_hash
        from ecellm.experiment.html import write_report

        files = write_report(self.cfg, self.entries, folder)
        return tree_hash([p for p in files.values() if p.is_file()], folder)

    def folder(self, name: str) -> Path:
        return self.root / "steps" / name

    def _add(self, step: S.Step) -> None:
        self.steps.append(step)

    def _eval_names(self) -> list[str]:
        return [s.name for s in self.steps if s.kind == "evaluate"]

    def data_path(self) -> str:
        return self.cfg.data.path or str(self.folder("data") / "build")

    def _data_step(self) -> None:
        d = self.cfg.data
        if d.path:
            conf = {"path": os.path.basename(d.path.rstrip("/"))}
            self._add(S.Step("data", "data", 0.01, conf, [], S.existing_data(Path(d.path))))
            return
        raw = Path(d.raw_dir) if d.raw_dir else default_raw_dir()
        if raw is None or not raw.exists():
            raise InputError(
                "raw data not found: set data.raw_dir, $ECELLM_RAW_DIR, or data.path to a built dataset",
                file=str(raw) if raw else "$ECELLM_RAW_DIR",
                field="data.raw_dir",
            )
        conf = {"raw": S.raw_signature(raw), "build": d.build, "tasks": d.tasks, "seed": self.cfg.seed}
        self._add(S.Step("data", "data", 1, conf, [], S.build_data(raw, d.build, d.tasks, self.cfg.seed)))

    def _test_config(self) -> dict[str, Any]:
        d = self.cfg.data
        return {"sizes": d.test_sizes, "caps": d.task_test_caps, "tasks": self.tasks, "seed": self.cfg.seed}

    def _tests_exec(self) -> Callable:
        d = self.cfg.data
        return S.select_tests(self.data_path, d.test_sizes, self.tasks, self.cfg.seed, d.task_test_caps)

    def _tests(self) -> Path:
        return self.folder("testset")

    def _score(
        self,
        model: ModelEntry,
        run: str,
        task: str | None,
        template: str,
        adapter_step: str | None,
        settings: list[str] | None = None,
    ) -> None:
        """Predict and evaluate steps for one (model, run[, task]) on ``settings`` (None = all)."""
        mslug = slug(model.name)
        tag = f"{mslug}/{run}" + (f"-{task}" if task else "")
        tasks = [task] if task else self.tasks
        n = _test_count(self.cfg, tasks, settings)

        def adapter() -> str | None:
            return str(self.folder(adapter_step) / "model") if adapter_step else None

        pconf = {
            "model": model.model,
            "template": template,
            "tasks": tasks,
            "predict": self.cfg.predict.model_dump(),
        }
        if settings is not None:
            pconf["settings"] = settings
        deps = ["testset"] + ([adapter_step] if adapter_step else [])
        self._add(
            S.Step(
                f"predict/{tag}",
                "predict",
                n,
                pconf,
                deps,
                S.predict_run(
                    self._tests,
                    model=model.model,
                    adapter=adapter,
                    template=template,
                    tasks=tasks,
                    predict=self.cfg.predict.model_dump(),
                    progress=self._progress,
                    settings=settings,
                ),
            )
        )
        self._evaluate(model, run, task, tag, f"predict/{tag}", tasks, n, settings)
        off = self.cfg.offsets
        if task is None and off.runs and (run == "base" or run in off.runs):
            self._add(
                S.Step(
                    f"offsets/{tag}",
                    "offsets",
                    off.per_task * len(off.tasks),
                    {**pconf, "offsets": off.model_dump(), "seed": self.cfg.seed},
                    ["data", f"predict/{tag}"] + ([adapter_step] if adapter_step else []),
                    S.offsets_run(
                        self.data_path,
                        lambda: self.folder(f"predict/{tag}"),
                        model=model.model,
                        adapter=adapter,
                        template=template,
                        section=off.model_dump(),
                        predict=self.cfg.predict.model_dump(),
                        seed=self.cfg.seed,
                    ),
                )
            )
            self._evaluate(
                model, f"{run}+offsets", None, f"{tag}+offsets", f"offsets/{tag}", tasks, n, settings
            )

    def _evaluate(
        self,
        model: ModelEntry,
        run: str,
        task: str | None,
        tag: str,
        preds: str,
        tasks: list[str],
        n: int,
        settings: list[str] | None = None,
    ) -> None:
        """The evaluate step of one prediction set (the folder of step ``preds``) and its report entry."""
        ev = self.cfg.evaluate.model_dump()
        self._add(
            S.Step(
                f"evaluate/{tag}",
                "evaluate",
                n * len(ev["modes"]),
                {"evaluate": ev, "tasks": tasks} | ({"settings": settings} if settings is not None else {}),
                ["testset", preds],
                S.evaluate_run(self._tests, lambda: self.folder(preds), tasks, ev, settings),
            )
        )
        self.entries.append(
            {"model": model.name, "run": run, "task": task, "folder": self.folder(f"evaluate/{tag}")}
        )

    def _model_steps(self, model: ModelEntry) -> None:
        self._score(model, "base", None, model.template, None)
        mslug = slug(model.name)
        for run in self.cfg.runs:
            targets = self.tasks if run.kind == "task_specific" else [None]
            for task in targets:
                recipe = train_recipe(self.cfg, model, run, data="<data>", out="<out>", task=task)
                name = f"train/{mslug}/{run.name}" + (f"-{task}" if task else "")
                units = _train_units(recipe, 1 if task else len(self.tasks))
                tasks = [task] if task else self.tasks
                if not task and self.cfg.data.tasks:
                    recipe["data"]["tasks"] = tasks
                self._add(
                    S.Step(
                        name,
                        "train",
                        units,
                        {
                            "recipe": {k: v for k, v in recipe.items() if k not in UNKEYED},
                            "launcher": self.cfg.launcher,
                        },
                        ["data"],
                        S.train_run(recipe, self.data_path, self.cfg.launcher),
                    )
                )
                self._score(model, run.name, task, recipe.get("template", "alpaca"), name, run.test_settings)


def _fmt_minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def run_experiment(
    config: str | os.PathLike[str] | dict[str, Any] | ExperimentConfig,
    *,
    stop_after: int | None = None,
    plan_only: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    out: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Run (or continue) the experiment; returns the per-step statuses and the report files.

    ``out`` replaces the config's ``out_dir`` (the folder of the steps, the cache and the report).

    ``stop_after=N`` stops after N steps that did work (a budget, and how the tests interrupt a
    run); ``plan_only`` lists the steps with their status and the estimated time, running nothing.
    """
    cfg = load_experiment(config)
    if out is not None:
        cfg = cfg.model_copy(update={"out_dir": str(out)})
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    plan = Plan(cfg, progress=progress)
    total = len(plan.steps)
    artefacts: dict[str, str] = {}
    rates: dict[str, list[float]] = {}
    statuses: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    worked = 0
    files: dict[str, Path] = {}

    def rate(kind: str) -> float:
        seen = rates.get(kind)
        return sum(seen) / len(seen) if seen else PRIOR_RATES[kind]

    def eta(from_index: int) -> float:
        return sum(rate(s.kind) * s.units for s in plan.steps[from_index:] if s.name not in artefacts)

    for i, step in enumerate(plan.steps):
        missing = [d for d in step.deps if d not in artefacts]
        key = {
            "kind": step.kind,
            "config": step.config,
            "inputs": {d: artefacts.get(d) for d in step.deps},
            "code": code_version(step.kind),
        }
        sdir = StepDir(plan.folder(step.name), key)
        done = None if missing else sdir.done()
        if done is not None:
            artefacts[step.name] = done["artefact"]
            if done.get("units"):
                rates.setdefault(step.kind, []).append(done["seconds"] / done["units"])
            statuses.append({"step": step.name, "kind": step.kind, "status": "cached", "seconds": 0.0})
            continue
        if plan_only or missing or (stop_after is not None and worked >= stop_after):
            statuses.append({"step": step.name, "kind": step.kind, "status": "pending", "seconds": 0.0})
            continue
        elapsed = time.perf_counter() - t0
        say(
            f"[experiment] step {i + 1}/{total} {step.name} | elapsed {_fmt_minutes(elapsed)} | "
            f"ETA {_fmt_minutes(eta(i))}"
        )
        resumed = sdir.start()
        start = time.perf_counter()
        artefact = step.execute(sdir.folder, resumed)
        seconds = time.perf_counter() - start
        sdir.finish(artefact, seconds, step.units)
        rates.setdefault(step.kind, []).append(seconds / step.units if step.units else 0.0)
        artefacts[step.name] = artefact
        worked += 1
        statuses.append(
            {
                "step": step.name,
                "kind": step.kind,
                "status": "resumed" if resumed else "ran",
                "seconds": seconds,
            }
        )
    if not files and "report" in artefacts:
        folder = plan.folder("report")
        files = {
            p.name: p
            for p in sorted(folder.iterdir())
            if p.is_file() and p.name not in ("key.json", "done.json")
        }
    pending = [s for s in statuses if s["status"] == "pending"]
    summary = {
        "name": cfg.name,
        "out_dir": str(plan.root),
        "steps": statuses,
        "complete": not pending,
        "minutes": (time.perf_counter() - t0) / 60,
        "estimated_minutes_left": eta(0) / 60,
        "report": {k: str(v) for k, v in files.items()},
    }
    if not plan_only:
        write_json(plan.root / "experiment.json", summary)
    ran = sum(s["status"] in ("ran", "resumed") for s in statuses)
    say(
        f"[experiment] {cfg.name}: {ran} steps ran, {sum(s['status'] == 'cached' for s in statuses)} cached, "
        f"{len(pending)} pending; {_fmt_minutes(summary['minutes'] * 60)}"
        + (f"; report {files.get('report.html')}" if files.get("report.html") else "")
    )
    return summary
