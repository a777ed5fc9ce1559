"""Answer offsets: fitted on validation choice scores to the task's metric, regularised, applied
to records and at prediction time, and refused when the file is malformed."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecellm.data.schema import Sample
from ecellm.errors import InputError
from ecellm.infer.base import Completion
from ecellm.offsets import (
    OffsetBackend,
    apply_offsets,
    decide,
    fit_offsets,
    fit_task,
    read_offsets,
    write_offsets,
)


def _pm(i: int, gold: str) -> Sample:
    return Sample(id=f"PM-{i:03d}", task="PM", instruction="Same product?", input=f"pair {i}", output=gold)


def _drifted(n: int = 40) -> tuple[list[Sample], list[dict[str, float]]]:
    """A model that ranks the pairs well (margin grows with the gold) but says `no` to all:
    every margin log p(yes) - log p(no) is shifted by -1.5 nats."""
    samples, scores = [], []
    for i in range(n):
        gold = "yes" if i % 2 == 0 else "no"
        margin = (0.6 if gold == "yes" else -0.6) + 0.3 * math.sin(i) - 1.5
        samples.append(_pm(i, gold))
        scores.append({"yes": margin / 2, "no": -margin / 2})
    return samples, scores


def test_decide_adds_the_label_offset_and_breaks_ties_on_the_first_choice() -> None:
    assert decide("PM", {"yes": -1.0, "no": -0.5}, None) == "no"
    assert decide("PM", {"yes": -1.0, "no": -0.5}, {"yes": 0.6}) == "yes"
    assert decide("PM", {"yes": -1.0, "no": -1.0}, {}) == "yes"
    # option tasks: the offset is keyed by the option letter, the answer is the option text
    assert decide("SA", {"A: bad": -0.1, "B: good": -2.0}, {"B": 2.5}) == "B: good"


def test_fit_recovers_a_drifted_threshold_and_raises_the_validation_metric() -> None:
    samples, scores = _drifted()
    fit = fit_task("PM", samples, scores)
    assert fit["val_before"] == 0.0  # all `no`: F1 of the yes class is 0
    assert fit["val_after"] > 0.9
    # the shift was -1.5 nats on the margin, i.e. +1.5 on `no` relative to `yes`
    assert -2.1 < fit["offsets"]["no"] < -0.9


def test_fit_keeps_zero_offsets_when_they_do_not_help() -> None:
    samples = [_pm(i, "yes" if i % 2 == 0 else "no") for i in range(20)]
    scores = [{"yes": 1.0, "no": 0.0} if s.output == "yes" else {"yes": 0.0, "no": 1.0} for s in samples]
    fit = fit_task("PM", samples, scores)
    assert fit["offsets"] == {} and fit["val_after"] == fit["val_before"] == 1.0


def test_fit_skips_tasks_with_too_many_labels() -> None:
    samples = [
        Sample(
            id=f"SA-{i}", task="SA", instruction="i", input="x", options=["A: a", "B: b", "C: c"], output="A"
        )
        for i in range(6)
    ]
    scores = [{"A: a": 0.0, "B: b": -1.0, "C: c": -2.0}] * 6
    assert fit_task("SA", samples, scores, max_labels=2)["skipped"] == "3 labels"


def test_fit_offsets_file_round_trip_and_apply_to_records(tmp_path) -> None:
    samples, scores = _drifted()
    records = [
        {"id": s.id, "task": "PM", "prediction": "no", "raw": "no", "choice_scores": sc}
        for s, sc in zip(samples, scores, strict=True)
    ]
    records.append({"id": "AG-1", "task": "AG", "prediction": "text", "raw": "text"})  # not a choice
    fitted = fit_offsets(samples, list(reversed(records)))
    assert fitted == fit_offsets(samples, records)  # independent of the record order
    path = write_offsets(tmp_path, fitted)
    off = read_offsets(path)
    assert set(off) == {"PM"}
    out = list(apply_offsets(records, off))
    assert {r["prediction"] for r in out[:-1]} == {"yes", "no"} and out[-1] == records[-1]
    assert all(r["offsets"] for r in out[:-1])


def test_read_offsets_refuses_a_malformed_file(tmp_path) -> None:
    bad = tmp_path / "offsets.json"
    bad.write_text(json.dumps({"version": 99, "tasks": {}}))
    with pytest.raises(InputError, match="version"):
        read_offsets(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match=str(bad)):
        read_offsets(bad)


class _Fixed:
    name = "fixed"
    supported_modes = frozenset({"generate", "choice"})

    def describe(self) -> dict:
        return {"backend": self.name}

    def run(self, requests):
        for r in requests:
            yield Completion(id=r.id, text="no", choice_logprobs={"yes": -1.0, "no": -0.4}, mode="choice")


def test_offset_backend_re_picks_choice_answers_of_its_tasks_only() -> None:
    from ecellm.infer.base import Request

    reqs = [
        Request("a", "p", mode="choice", choices=["yes", "no"], task="PM"),
        Request("b", "p", mode="choice", choices=["yes", "no"], task="PSI"),
    ]
    out = {c.id: c.text for c in OffsetBackend(_Fixed(), {"PM": {"yes": 1.0}}).run(reqs)}
    assert out == {"a": "yes", "b": "no"}


def test_predict_applies_the_adapters_offsets_by_default_and_records_them(tmp_path) -> None:
    from ecellm.infer.predict import manifest_path, predict

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    write_offsets(adapter, {"version": 1, "tasks": {"PM": {"offsets": {"yes": 1.0}}}})
    samples = [_pm(0, "yes")]

    def run(name, **kw):
        out = predict(
            samples, out=tmp_path / name, backend=_Fixed(), template="alpaca", adapter=str(adapter), **kw
        )
        rec = json.loads(out.read_text().splitlines()[0])
        return rec, json.loads(manifest_path(out).read_text())["config"]

    rec, config = run("a.jsonl")
    assert rec["prediction"] == "yes" and rec["choice_scores"] == {"yes": -1.0, "no": -0.4}
    assert config["offsets"]["sha256"]
    rec, config = run("b.jsonl", offsets=False)
    assert rec["prediction"] == "no" and "offsets" not in config


def test_predict_refuses_a_malformed_offsets_file_before_the_model_loads(tmp_path) -> None:
    from ecellm.infer.predict import predict

    bad = tmp_path / "offsets.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="unreadable offsets"):  # the missing model is never reached
        predict([_pm(0, "yes")], out=tmp_path / "p.jsonl", model=str(tmp_path / "no-model"), offsets=str(bad))
    assert not (tmp_path / "p.jsonl").exists()


@given(seed=st.integers(0, 10_000), positives=st.integers(8, 32))
@settings(max_examples=25, deadline=None)
def test_fit_never_answers_one_label_to_every_validation_sample(seed: int, positives: int) -> None:
    """Margins with no signal: `yes` to everything would maximise F1 of the yes class, but a
    single-label rule is not a candidate while the gold has both labels."""
    rng = random.Random(seed)
    samples = [_pm(i, "yes" if i < positives else "no") for i in range(40)]
    scores = [{"yes": rng.gauss(0, 0.35), "no": rng.gauss(0, 0.35) - 3.0} for _ in samples]  # yes by 3 nats
    fit = fit_task("PM", samples, scores)
    picks = {decide("PM", sc, fit["offsets"]) for sc in scores}
    assert picks == {"yes", "no"}, fit
    assert fit.get("forced_two_labels")  # the unshifted rule said `yes` to all 40
