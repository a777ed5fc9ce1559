"""What each step kind does, by calling the existing APIs (build, train, predict, evaluate).

A step's ``execute(folder, resumed)`` writes into its own folder and returns the hash of the
artefact it produced; :mod:`ecellm.experiment.runner` decides whether it runs at all.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ecellm.data.schema import Sample
from ecellm.errors import InputError
from ecellm.experiment.cache import tree_hash
from ecellm.io import sha256_file, write_json, write_jsonl
from ecellm.tasks import get_task


@dataclass
class Step:
    """One unit of work: ``config`` is the slice of the experiment file it depends on."""

    name: str
    kind: str
    units: float  # work units for the ETA (samples trained/predicted/scored; 1 for data)
    config: dict[str, Any]
    deps: list[str]
    execute: Callable[[Path, bool], str]
    info: dict[str, Any] = field(default_factory=dict)


def raw_signature(raw: Path) -> list[tuple[str, int, int]]:
    """Cheap identity of a raw folder (name, size, mtime of every file): hashing gigabytes of
    raw data on every run would cost more than the build it guards."""
    return sorted(
        (p.relative_to(raw).as_posix(), p.stat().st_size, int(p.stat().st_mtime))
        for p in raw.rglob("*")
        if p.is_file()
    )


def build_data(raw: Path, build: dict[str, Any], tasks: list[str] | None, seed: int) -> Callable:
    def run(folder: Path, resumed: bool) -> str:
        from ecellm.data.pipeline import build_dataset

        build_dataset(raw, folder / "build", config=build or None, tasks=tasks, seed=seed)
        return sha256_file(folder / "build" / "manifest.json")

    return run


def existing_data(path: Path) -> Callable:
    def run(folder: Path, resumed: bool) -> str:
        if not path.exists():
            raise InputError("dataset not found", file=str(path), field="data.path")
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        return tree_hash(files, path if path.is_dir() else path.parent)

    return run


def pick_tests(
    samples: list[Sample], sizes: dict[str, int | None], seed: int, caps: dict[str, int] | None = None
) -> list[Sample]:
    """A fixed subset: ``sizes[setting]`` samples per (task, setting) (at most ``caps[task]``),
    seeded and order-independent."""
    caps = {get_task(t).abbr: v for t, v in (caps or {}).items()}
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.id):
        if s.setting in sizes:
            groups.setdefault((s.task, s.setting), []).append(s)
    out: list[Sample] = []
    for key in sorted(groups):
        g, k = groups[key], sizes[key[1]]
        if key[0] in caps:
            k = caps[key[0]] if k is None else min(k, caps[key[0]])
        rng = random.Random(f"{seed}/{key[0]}/{key[1]}")
        out.extend(sorted(rng.sample(g, k), key=lambda s: s.id) if k is not None and len(g) > k else g)
    return out


def select_tests(
    data: Callable[[], str], sizes: dict[str, int | None], tasks: list[str], seed: int, caps: dict[str, int]
):
    def run(folder: Path, resumed: bool) -> str:
        from ecellm.data.loaders import load_samples

        samples = load_samples(data(), tasks=tasks, settings=sorted(sizes), splits=["test"])
        picked = pick_tests(samples, sizes, seed, caps)
        if not picked:
            raise InputError(f"no test samples for settings {sorted(sizes)}", file=data(), field="data")
        write_jsonl(folder / "test.jsonl", (s.to_record() for s in picked))
        return sha256_file(folder / "test.jsonl")

    return run


def train_run(recipe: dict[str, Any], data: Callable[[], str], launcher: list[str] | None) -> Callable:
    """Train in-process (or through ``launcher``, e.g. accelerate/DeepSpeed); resume from the
    last checkpoint when the step was interrupted."""

    def run(folder: Path, resumed: bool) -> str:
        out = folder / "model"
        full = {**recipe, "output_dir": str(out), "data": {**recipe["data"], "train": data()}}
        if resumed and any((out / "checkpoints").glob("checkpoint-*")):
            full["resume_from"] = "latest"
        else:  # the folder belongs to this step: anything an interrupted start left goes
            full["overwrite"] = True
        if launcher:
            cfg_file = folder / "recipe.yaml"
            cfg_file.write_text(yaml.safe_dump(full, sort_keys=True), encoding="utf-8")
            subprocess.run([*launcher, "--config", str(cfg_file)], check=True)
        else:
            from ecellm.train.run import train

            train(full)
        weights = [
            p for p in out.iterdir() if p.suffix in (".safetensors", ".json") and p.name != "manifest.json"
        ]
        if not any(p.suffix == ".safetensors" for p in weights):
            raise InputError("training finished without weights", file=str(out))
        return tree_hash(weights, out)

    return run


def load_tests(
    folder: Path, tasks: list[str] | None = None, settings: list[str] | None = None
) -> list[Sample]:
    from ecellm.data.loaders import load_samples

    return load_samples(folder / "test.jsonl", tasks=tasks, settings=settings)


def predict_run(
    tests: Callable[[], Path],
    *,
    model: str,
    adapter: Callable[[], str | None],
    template: str,
    tasks: list[str] | None,
    predict: dict[str, Any],
    progress: bool,
    settings: list[str] | None = None,
) -> Callable:
    def run(folder: Path, resumed: bool) -> str:
        from ecellm.infer.predict import predict as do_predict

        samples = load_tests(tests(), tasks, settings)
        out = folder / "predictions.jsonl"
        do_predict(
            samples,
            out=out,
            model=model,
            adapter=adapter(),
            backend=predict["backend"],
            mode=predict["mode"],
            template=template,
            resume=True,  # the folder is fresh unless this same step was interrupted
            batch_size=predict["batch_size"],
            progress=progress,
            source="test.jsonl",
        )
        return sha256_file(out)

    return run


def evaluate_run(
    tests: Callable[[], Path],
    preds: Callable[[], Path],
    tasks: list[str] | None,
    ev: dict[str, Any],
    settings: list[str] | None = None,
) -> Callable:
    """Every scoring mode, with bootstrap replicates (for paired differences) and sample logs."""

    def run(folder: Path, resumed: bool) -> str:
        from ecellm.evaluate import evaluate, load_predictions

        samples = load_tests(tests(), tasks, settings)
        texts = load_predictions(preds() / "predictions.jsonl", samples)
        written = []
        for mode in ev["modes"]:
            res = evaluate(
                samples,
                texts,
                mode=mode,
                bertscore_model=ev["bertscore_model"],
                bootstrap=ev["bootstrap"],
                seed=ev["seed"],
                level=ev["level"],
                keep_replicates=True,
                log_samples=True,
            )
            write_jsonl(folder / f"{mode}.samples.jsonl", res.pop("samples"))
            write_json(folder / f"{mode}.metrics.json", res, indent=None)
            written.append(folder / f"{mode}.metrics.json")
        return tree_hash(written, folder)

    return run


def offsets_run(
    data: Callable[[], str],
    raw_preds: Callable[[], Path],
    *,
    model: str,
    adapter: Callable[[], str | None],
    template: str,
    section: dict[str, Any],
    predict: dict[str, Any],
    seed: int,
) -> Callable:
    """Fit per-task answer offsets on validation choice scores (:mod:`ecellm.offsets`) and write
    the test predictions re-decided under them; the model runs on the validation samples only."""

    def run(folder: Path, resumed: bool) -> str:
        from ecellm.data.loaders import load_samples
        from ecellm.infer.offset_fit import fit_with_model
        from ecellm.io import iter_jsonl
        from ecellm.offsets import apply_offsets, offsets_of, write_offsets

        setting = section["setting"]
        val = load_samples(data(), tasks=section["tasks"], settings=[setting], splits=["val"])
        picked = pick_tests(val, {setting: section["per_task"]}, seed)
        if not picked:
            raise InputError(f"no validation samples in {setting}", file=data(), field="offsets.tasks")
        fitted = fit_with_model(
            picked,
            folder / "val.predictions.jsonl",
            model=model,
            adapter=adapter(),
            template=template,
            backend=predict["backend"],
            batch_size=predict["batch_size"],
            mode=predict["mode"],
        )
        write_offsets(folder, fitted)
        test = [r for _, r in iter_jsonl(raw_preds() / "predictions.jsonl")]
        write_jsonl(folder / "predictions.jsonl", apply_offsets(test, offsets_of(fitted)))
        return tree_hash([folder / "predictions.jsonl", folder / "offsets.json"], folder)

    return run
