"""The hf backend on the embedded SmolLM2 with real-format samples: every mode, checked by hand."""

from __future__ import annotations

import pytest
from tests.conftest import FIXTURES

from ecellm.data.loaders import load_samples
from ecellm.infer.backends.hf import HFBackend, generate_texts
from ecellm.infer.base import Request
from ecellm.infer.predict import make_requests
from ecellm.tasks import get_task

FIXTURE = FIXTURES / "samples_mixed.jsonl"
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ECELLM_THREADS", "1")


def test_choice_scores_equal_an_unpadded_forward_pass(smollm2) -> None:
    """Scores from a padded batch must match log-softmax of one unpadded prompt, by hand."""
    import torch

    samples = [s for s in load_samples(FIXTURE) if s.task in ("PSI", "PM")]
    backend = HFBackend(smollm2, batch_size=8, autocast="off")  # fp32, like the hand computation
    reqs = make_requests(backend, samples)
    got = {c.id: c for c in backend.run(reqs)}
    tok, model = smollm2.tokenizer, smollm2.model
    for r in reqs:
        ids = torch.tensor([backend.encode(r.prompt)])
        with torch.inference_mode():
            logp = torch.log_softmax(model(ids).logits[0, -1].float(), dim=-1)
        want = {c: float(logp[tok(c, add_special_tokens=False).input_ids[0]]) for c in ("yes", "no")}
        c = got[r.id]
        assert c.choice_logprobs == pytest.approx(want, abs=2e-3)
        assert c.text == max(want, key=want.get)
        assert c.prompt_tokens == ids.shape[1]


def test_batched_generation_equals_one_by_one(smollm2) -> None:
    """Left padding with pad == eos must not change greedy outputs."""
    prompts = [
        "### Instruction:\nName a fruit.\n\n### Response:\n",
        "### Instruction:\nWrite a short product title for a red ceramic coffee mug with a lid."
        "\n\n### Response:\n",
        "Hi",
    ]
    # fp32: bf16 rounding depends on matrix shapes, so only fp32 makes padding exactly invisible
    batched = generate_texts(smollm2, prompts, max_new_tokens=10, batch_size=3, autocast="off")
    single = [
        generate_texts(smollm2, [p], max_new_tokens=10, batch_size=1, autocast="off")[0] for p in prompts
    ]
    assert batched == single
    assert all(isinstance(t, str) for t in batched)


def test_stop_strings_end_generation(smollm2) -> None:
    backend = HFBackend(smollm2)
    prompt = "Count: 1, 2, 3, 4,"
    free = next(iter(backend.run([Request("a", prompt, max_new_tokens=12)])))
    cut = next(iter(backend.run([Request("b", prompt, max_new_tokens=12, stop=(" 6",))])))
    assert " 6" in free.raw
    assert " 6" not in cut.text and cut.completion_tokens < free.completion_tokens


def test_choice_and_constrained_outputs_always_parse(smollm2) -> None:
    samples = [s for s in load_samples(FIXTURE) if s.task != "AG"]
    backend = HFBackend(smollm2, batch_size=8)
    reqs = make_requests(backend, samples)
    done = {c.id: c for c in backend.run(reqs)}
    assert sorted(done) == sorted(s.id for s in samples)
    for s in samples:
        c = done[s.id]
        task = get_task(s.task)
        parsed = task.parse(c.text, s)
        assert parsed, (s.id, c.text, parsed)
        if s.task == "QPR":
            letters = [x.split(":")[0] for x in __import__("json").loads(s.input)["product list"]]
            assert sorted(parsed) == sorted(letters) and c.mode == "constrained"
        elif s.task == "AVE":
            assert [it["attribute"] for it in parsed] == s.meta["target_attributes"]
            assert c.completion_tokens <= next(r for r in reqs if r.id == s.id).max_new_tokens
        else:
            assert c.mode == "choice" and c.text in task.choices(s)


def test_step_listener_sees_every_generated_token_by_row(smollm2) -> None:
    """The server streams from ``step_listener``: per row, the tokens it relays are the reply's."""
    backend = HFBackend(smollm2, batch_size=8, autocast="off")
    reqs = [
        Request(id="a", prompt="The capital of France is", max_new_tokens=5),
        Request(id="b", prompt="Customer review: great shoes, but too small. Sentiment:", max_new_tokens=5),
    ]
    seen: dict[str, list[int]] = {"a": [], "b": []}

    def listen(rows: list[str], tokens: list[int]) -> None:
        assert len(rows) == len(tokens)
        for rid, t in zip(rows, tokens, strict=True):
            seen[rid].append(t)

    backend.step_listener = listen
    got = {c.id: c for c in backend.run(reqs)}
    tok = smollm2.tokenizer
    for rid, c in got.items():
        until_eos = seen[rid][: c.completion_tokens]
        assert tok.decode(until_eos, skip_special_tokens=True) == c.raw
    backend.step_listener = None
    assert {c.id: c.raw for c in backend.run(reqs)} == {k: c.raw for k, c in got.items()}
