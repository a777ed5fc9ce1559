"""Bootstrap intervals: contain the estimate, are deterministic under the seed, and paired
differences of identical runs are exactly 0; ``--log-samples`` writes one scored record per sample."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest
from tests.conftest import FIXTURES

from ecellm import cli
from ecellm.data.loaders import load_samples
from ecellm.evaluate import evaluate, load_predictions
from ecellm.evaluate.bootstrap import (
    bootstrap_ci,
    interval,
    mean_of,
    paired_difference,
    replicates,
    resample_indices,
    verdict,
)
from ecellm.evaluate.metrics import accuracy, macro_prf

FX = FIXTURES / "reference_layout"
TASKS = "PM,PRP,SR,QPR,AVE,MPC"


def _labels(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    gold = [rng.choice("ABC") for _ in range(n)]
    pred = [g if rng.random() < 0.6 else rng.choice("ABC") for g in gold]
    return gold, pred


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_interval_contains_estimate_and_is_seeded(metric):
    gold, pred = _labels(200, 1)

    def stat(idx):
        g, p = [gold[i] for i in idx], [pred[i] for i in idx]
        return accuracy(g, p) if metric == "accuracy" else macro_prf(g, p, sorted(set(g)))["macro_f1"]

    a = bootstrap_ci(stat, len(gold), resamples=500, seed=7, key="t")
    assert a["low"] < a["estimate"] < a["high"]
    assert 0.03 < a["high"] - a["low"] < 0.3  # a real spread for n=200, not a degenerate interval
    assert bootstrap_ci(stat, len(gold), resamples=500, seed=7, key="t") == a
    other = bootstrap_ci(stat, len(gold), resamples=500, seed=8, key="t")
    assert other["estimate"] == a["estimate"] and (other["low"], other["high"]) != (a["low"], a["high"])


def test_indices_depend_only_on_seed_key_and_n():
    x = resample_indices(30, resamples=5, seed=3, key="PM/IND")
    assert x.shape == (5, 30) and x.min() >= 0 and x.max() < 30
    assert np.array_equal(x, resample_indices(30, resamples=5, seed=3, key="PM/IND"))
    assert not np.array_equal(x, resample_indices(30, resamples=5, seed=3, key="SA/IND"))


def test_paired_difference_of_identical_runs_is_zero_and_detects_a_real_gain():
    gold, pred = _labels(150, 2)
    better = list(gold)  # a perfect run on the same samples

    def acc(p):
        return lambda idx: accuracy([gold[i] for i in idx], [p[i] for i in idx])

    ra = replicates(acc(pred), 150, resamples=300, seed=0, key="k")
    same = paired_difference(acc(pred)(range(150)), ra, acc(pred)(range(150)), ra.copy())
    assert same["estimate"] == 0 and same["low"] == 0 and same["high"] == 0
    assert verdict(same) == "no clear difference"
    rb = replicates(acc(better), 150, resamples=300, seed=0, key="k")
    gain = paired_difference(1.0, rb, acc(pred)(range(150)), ra)
    assert gain["low"] > 0 and verdict(gain) == "better" and gain["share_above_0"] == 1.0
    with pytest.raises(ValueError):
        paired_difference(0, ra[:10], 0, ra)


def test_mean_over_tasks_is_replicatewise():
    a, b = np.array([0.0, 1.0, 0.5]), np.array([1.0, 1.0, 0.5])
    assert mean_of([a, b]).tolist() == [0.5, 1.0, 0.5]
    assert interval([1.0] * 10) == (1.0, 1.0)


def test_evaluate_intervals_for_every_metric_and_paired_rows():
    samples = load_samples(str(FX), tasks=TASKS)
    preds = load_predictions(FX / "evaluation", samples)
    for mode in ("paper", "strict"):
        res = evaluate(samples, preds, mode=mode, bootstrap=200, seed=1, keep_replicates=True)
        again = evaluate(samples, preds, mode=mode, bootstrap=200, seed=1, keep_replicates=True)
        assert res["bootstrap"]["resamples"] == 200
        for row, row2 in zip(res["results"], again["results"], strict=True):
            assert row["ci"]["low"] <= row["ci"]["high"]
            assert row["replicates"] == row2["replicates"] and len(row["replicates"]) == 200
            d = paired_difference(row["score"], row["replicates"], row2["score"], row2["replicates"])
            assert (d["low"], d["high"]) == (0.0, 0.0)
        assert {r["metric"] for r in res["results"]} >= {"f1", "macro_f1", "hr@1", "ndcg", "accuracy"}
    plain = evaluate(samples, preds, mode="strict")
    assert "ci" not in plain["results"][0] and "bootstrap" not in plain


def test_log_samples_cli(monkeypatch, capsys, tmp_path):
    log, out = tmp_path / "samples.jsonl", tmp_path / "m.json"
    argv = ["ecellm", "evaluate", "--data", str(FX), "--predictions", str(FX / "evaluation")]
    argv += ["--mode", "strict", "--tasks", TASKS, "--log-samples", str(log), "-o", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        cli.main()
    except SystemExit as exc:
        assert not exc.code
    stdout = capsys.readouterr().out
    assert "bootstrap intervals" in stdout
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    metrics = json.loads(out.read_text())
    assert len(recs) == metrics["n_samples"] and len({r["id"] for r in recs}) == len(recs)
    keys = {"id", "task", "setting", "mode", "gold", "prediction", "parsed", "valid", "score"}
    assert all(keys <= r.keys() for r in recs)
    for row in metrics["results"]:  # per-sample records agree with the group's counts and scores
        group = [r for r in recs if r["task"] == row["task"] and r["setting"] == row["setting"]]
        assert len(group) == row["n"] and sum(not r["valid"] for r in group) == row["invalid"]
        if row["metric"] in ("accuracy", "hr@1", "ndcg"):
            assert sum(r["score"] for r in group) / len(group) == pytest.approx(row["score"])
        assert "ci" in row
    bad = [r for r in recs if not r["valid"] and r["task"] in ("PM", "PRP", "SR", "MPC")]
    assert bad and all(r["score"] == 0.0 and r["parsed"] is None for r in bad)
