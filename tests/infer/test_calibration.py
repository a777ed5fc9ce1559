"""Calibrated choice scoring: the content-free prior is removed, computed once per prompt, and
everything that is not a choice request passes through."""

from __future__ import annotations

import math

from ecellm.data.schema import Sample
from ecellm.infer.base import Completion, Request
from ecellm.infer.calibration import CONTENT_FREE, calibrate
from ecellm.infer.predict import make_requests


class FakeBackend:
    """Scores ``yes`` 2 nats above ``no`` whatever the input (a label prior), plus 1 nat for
    ``yes`` when the input says "same" and 1 nat for ``no`` when it says "different"."""

    name = "fake"
    supported_modes = frozenset({"generate", "choice"})

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def describe(self) -> dict:
        return {"backend": self.name}

    def run(self, requests):
        for r in requests:
            self.prompts.append(r.prompt)
            if r.mode != "choice":
                yield Completion(id=r.id, text="free text")
                continue
            yes = 2.0 + (1.0 if "same" in r.prompt else 0.0)
            no = 1.0 if "different" in r.prompt else 0.0
            z = math.log(math.exp(yes) + math.exp(no))
            scores = {"yes": yes - z, "no": no - z}
            best = max(r.choices, key=lambda c: scores[c])
            yield Completion(id=r.id, text=best, choice_logprobs=scores, mode="choice")


def _pm(i: int, text: str, instruction: str = "Same product? Answer yes or no.") -> Sample:
    return Sample(id=f"PM-{i}", task="PM", instruction=instruction, input=text, output="yes", split="test")


def test_calibration_removes_the_label_prior_and_keeps_the_input_signal() -> None:
    samples = [_pm(0, "same item"), _pm(1, "different items"), _pm(2, "different again")]
    backend = FakeBackend()
    reqs = make_requests(backend, samples, mode="auto")
    raw = {c.id: c.text for c in backend.run(reqs)}
    assert set(raw.values()) == {"yes"}  # the prior wins for every sample
    out = {c.id: c for c in calibrate(backend, samples, reqs, "alpaca").run(reqs)}
    assert out["PM-0"].text == "yes" and out["PM-1"].text == "no" and out["PM-2"].text == "no"
    # calibrated scores: the "different" input moves 1 nat (minus the renormalisation) towards no
    assert out["PM-1"].choice_logprobs["no"] > out["PM-1"].choice_logprobs["yes"]


def test_prior_is_computed_once_per_content_free_prompt_and_cached() -> None:
    samples = [_pm(i, f"same {i}") for i in range(4)] + [_pm(9, "same", instruction="Other wording? yes/no")]
    backend = FakeBackend()
    reqs = make_requests(backend, samples, mode="auto")
    wrapped = calibrate(backend, samples, reqs, "alpaca")
    list(wrapped.run(reqs))
    content_free = [p for p in backend.prompts if "same" not in p]
    assert len(content_free) == 2 * len(CONTENT_FREE)  # two instructions x content-free inputs
    list(wrapped.run(reqs))  # a second pass reuses the cache
    assert len([p for p in backend.prompts if "same" not in p]) == 2 * len(CONTENT_FREE)
    assert wrapped.describe()["calibration"]["cached_priors"] == 2 * len(CONTENT_FREE)


def test_non_choice_requests_pass_through_unchanged() -> None:
    backend = FakeBackend()
    s = Sample(id="AG-0", task="AG", instruction="Answer.", input="q", output="a", split="test")
    reqs = [Request("AG-0", "prompt", mode="generate")]
    out = list(calibrate(backend, [s], reqs, "alpaca").run(reqs))
    assert out[0].text == "free text" and out[0].choice_logprobs is None


def test_predict_calibrate_changes_answers_and_is_recorded_in_the_manifest(tmp_path) -> None:
    import json

    from ecellm.infer.predict import manifest_path, predict

    samples = [_pm(0, "same item"), _pm(1, "different items")]
    out = predict(samples, out=tmp_path / "p.jsonl", backend=FakeBackend(), template="alpaca", calibrate=True)
    got = {r["id"]: r["prediction"] for r in map(json.loads, out.read_text().splitlines())}
    assert got == {"PM-0": "yes", "PM-1": "no"}
    assert json.loads(manifest_path(out).read_text())["config"]["calibrate"] is True
    plain = predict(samples, out=tmp_path / "q.jsonl", backend=FakeBackend(), template="alpaca")
    assert {json.loads(x)["prediction"] for x in plain.read_text().splitlines()} == {"yes"}
    assert "calibrate" not in json.loads(manifest_path(plain).read_text())["config"]
