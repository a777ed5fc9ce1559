"""Quickstart pieces: fixed subsets, the honest before/after table, the missing-data message."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecellm.errors import InputError
from ecellm.quickstart import IND, OOD, compare_table, pick_subset, run_quickstart
from ecellm.train.data import read_samples

FIXTURE = Path(__file__).parent / "fixtures" / "train_samples.jsonl"


def test_pick_subset_is_fixed_per_task_and_order_independent():
    samples = read_samples(str(FIXTURE), tasks=None, settings=None, splits=["train"])
    a = pick_subset(samples, 2, seed=7)
    b = pick_subset(list(reversed(samples)), 2, seed=7)
    assert [s.id for s in a] == [s.id for s in b]
    per_task = {t: sum(s.task == t for s in a) for t in {s.task for s in samples}}
    assert per_task == {t: min(2, sum(s.task == t for s in samples)) for t in per_task}


def _res(rows):
    return {"results": [{"task": t, "setting": s, "metric": m, "score": v} for t, s, m, v in rows]}


def test_compare_table_shows_every_delta_including_losses_and_means():
    before = _res([("PSI", IND, "F1", 0.20), ("SA", IND, "macro F1", 0.50), ("SA", OOD, "macro F1", 0.40)])
    after = _res([("PSI", IND, "F1", 0.60), ("SA", IND, "macro F1", 0.30), ("SA", OOD, "macro F1", 0.45)])
    table, means = compare_table(before, after)
    assert means["IND base"] == pytest.approx(0.35) and means["IND tuned"] == pytest.approx(0.45)
    assert means["OOD tuned"] - means["OOD base"] == pytest.approx(0.05)
    sa_line = next(x for x in table.splitlines() if x.startswith("IND") and " SA " in x)
    assert "-0.200" in sa_line and "(worse)" in sa_line
    assert "+0.400" in next(x for x in table.splitlines() if " PSI " in x)


def test_missing_raw_data_gives_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("ECELLM_RAW_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="raw data not found: set ECELLM_RAW_DIR"):
        run_quickstart(None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_label_lines_flag_a_model_that_answers_one_label():
    from ecellm.data.schema import Sample
    from ecellm.quickstart import label_lines

    samples = [
        Sample(id=f"PM-{i}", task="PM", instruction="Same? yes/no", input="x", output=o, split="test")
        for i, o in enumerate(["yes", "no", "yes", "no"])
    ]
    base = {s.id: "yes" for s in samples}
    tuned = {s.id: s.output for s in samples}
    (line,) = label_lines(samples, base, tuned)
    assert "base no=0" not in line and "base yes=4" in line and line.count("(one label)") == 1
    assert "tuned no=2 yes=2" in line


def test_training_precision_is_fp32_without_native_bf16(monkeypatch):
    import ecellm.models.loading as loading
    from ecellm.quickstart import train_precision

    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert train_precision() == "fp32"
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: True)
    assert train_precision() == "bf16"


def test_demo_recipe_weighs_each_answer_equally_and_the_yes_no_tasks_above_other_choices():
    """The fix for the collapse to one label (docs/training.md): under the per-token mean the
    one-token yes/no answers got ~4% of the gradient; the recipe must keep both parts. AG, the one
    generation task, is weighted up separately (its OOD score fell under the tuned model)."""
    from ecellm.quickstart import TRAIN_DATA, TRAIN_RECIPE
    from ecellm.tasks import get_task
    from ecellm.train.config import load_config

    cfg = load_config({**TRAIN_RECIPE, "data": {**TRAIN_DATA, "train": str(FIXTURE)}})
    assert cfg.loss_normalization == "per_sample" and cfg.data.balance_labels
    weights = cfg.data.task_weights
    yes_no = [t for t in weights if get_task(t).answer_kind == "yes_no"]
    assert sorted(yes_no) == ["AP", "PM", "PSI"]
    other_choice = [t for t in weights if t not in yes_no and get_task(t).answer_kind != "text"]
    assert other_choice, "the recipe weighs no other choice task"
    assert min(weights[t] for t in yes_no) > max(weights[t] for t in other_choice)


def test_offsets_section_discloses_offsets_and_compares_with_the_base_under_its_own(tmp_path):
    """The demo prints the fitted offsets and the tuned model against the base with offsets
    fitted the same way (re-decided from the base's recorded choice scores)."""
    import json

    from ecellm.data.schema import Sample
    from ecellm.quickstart import offsets_section

    subset = [
        Sample(id=f"PM-{i}", task="PM", instruction="Same? yes/no", input="x", output=o, split="test")
        for i, o in enumerate(["yes", "no", "yes", "no"])
    ]
    recs = [
        {"id": s.id, "task": "PM", "setting": IND, "prediction": "yes", "raw": "yes",
         "choice_scores": {"yes": -0.5, "no": -0.9 if s.output == "yes" else -0.6}}
        for s in subset
    ]
    (tmp_path / "base.auto.predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    flat = [{**r, "prediction": "no", "raw": "no", "choice_scores": {"yes": -0.7, "no": -0.7}} for r in recs]
    (tmp_path / "tuned.auto.predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flat))
    pm_base = {"offsets": {"yes": -0.2}, "val_before": 0.5, "val_after": 0.9}
    pm_tuned = {"offsets": {}, "val_before": 0.8, "val_after": 0.8}
    fitted = {"base": {"version": 1, "tasks": {"PM": pm_base}}}
    fitted["tuned"] = {"version": 1, "tasks": {"PM": pm_tuned}}
    tuned = {s.id: "no" for s in subset}
    text = offsets_section(subset, tmp_path, fitted, tuned, seed=0)
    assert "base  PM   {'yes': -0.2} (val 0.500 -> 0.900)" in text and "tuned PM   none" in text
    # under its offsets the base answers every sample right (F1 1.0); the tuned `no`-to-all gets 0
    assert "IND   PM    f1             1.000   0.000  -1.000" in text
    assert "base no=2 yes=2" in text and "tuned no=4 (one label)" in text
    # the base's margins order the samples perfectly, the tuned model's are all equal (chance)
    assert "IND   PM    n=4   base 1.00 tuned 0.50 delta -0.50" in text
