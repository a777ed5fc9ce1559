"""The typed task API: every registered task gets an input model, a result model and a named
method; plain fields compose into the very samples the builders write, requests equal what
``predict --mode auto`` builds, answers are parsed (invalid ones say why), and a real model
answers through ``model.run`` and the named methods exactly as through ``model.predict``."""

from __future__ import annotations

import inspect
import json

import pytest
from pydantic import ValidationError
from tests.conftest import FIXTURES

from ecellm.data.schema import Sample
from ecellm.infer import task_api
from ecellm.infer.api import Model
from ecellm.infer.base import Completion
from ecellm.infer.requests import build_request
from ecellm.tasks.registry import all_tasks
from ecellm.tasks.sample import sample_from

# Plain fields of the first fixture sample of each ECInstruct task (tests may name tasks).
FIXTURE_FIELDS = {
    "AVE": {
        "product": {"product title": "trail runner women's lightweight mesh running shoe, grey"},
        "target_attributes": ["color", "gender"],
    },
    "QPR": {
        "query": "wireless earbuds with charging case",
        "products": [
            "Over-ear studio headphones with coiled cable",
            "True wireless earbuds, bluetooth 5.3, USB-C charging case",
            "Replacement silicone ear tips, 3 sizes",
        ],
    },
}


def first_fixture_samples() -> dict[str, Sample]:
    out: dict[str, Sample] = {}
    for line in (FIXTURES / "samples_mixed.jsonl").read_text().splitlines():
        s = Sample.model_validate(json.loads(line))
        out.setdefault(s.task, s)
    return out


class FakeBackend:
    name = "fake"
    supported_modes = frozenset({"generate", "choice", "constrained"})
    tokenizer = None


def test_every_task_has_models_and_a_method():
    tasks = all_tasks(None)
    assert len(task_api.methods()) == len(tasks) >= 15
    for task in tasks:
        name = task_api.method_name(task)
        method = getattr(Model, name)
        params = inspect.signature(method).parameters
        assert [f.name for f in task.inputs] == [p for p in params if p not in ("self", "max_new_tokens")]
        fields = task_api.example(task)
        assert task_api.input_model(task).model_validate(fields).model_dump() == fields
        assert task_api.resolve(name) is task and task_api.resolve(task.abbr) is task
        assert "answer" in task_api.result_model(task).model_json_schema()["properties"]


def test_fields_compose_into_the_builders_samples():
    """The fixture samples are builder-shaped; the same content as plain fields composes into the
    same input and options (examples that are the fixture's own content are reused)."""
    fixture = first_fixture_samples()
    for abbr, sample in fixture.items():
        task = task_api.resolve(abbr)
        fields = FIXTURE_FIELDS.get(abbr) or task_api.example(task)
        got = sample_from(task, fields, sample.id)
        assert (got.input, got.options) == (sample.input, sample.options), abbr
        assert got.instruction == task.instructions[0] and got.output == ""


def test_requests_are_predicts_requests():
    backend = FakeBackend()
    for task in all_tasks(None):
        fields = task_api.example(task)
        (req,) = task_api.to_requests(backend, task, [fields], template="alpaca")
        sample = sample_from(task, fields, req.id)
        want = build_request(sample, mode="auto", template="alpaca")
        assert (req.prompt, req.mode, req.max_new_tokens, req.choices, req.constraint) == (
            want.prompt,
            want.mode,
            want.max_new_tokens,
            want.choices,
            want.constraint,
        ), task.abbr
        assert req.mode == task.decode or (task.decode == "constrained" and req.mode == "choice"), task.abbr
    (capped,) = task_api.to_requests(backend, "AG", [task_api.example("AG")], max_new_tokens=5)
    assert capped.max_new_tokens == 5


def test_results_parse_answers_and_say_why_not():
    items = [task_api.example("SR")]  # four candidates: A-D
    ok, bad, beyond = task_api.to_results(
        "SR",
        [
            Completion("0", "C", mode="choice"),
            Completion("1", "maybe", mode="generate"),
            Completion("2", "Q"),
        ],
        items * 3,
    )
    assert (ok.answer, ok.valid, ok.text, ok.mode) == ("C", True, "C", "choice")
    assert not bad.valid and bad.answer is None and "letter" in bad.reason
    assert not beyond.valid and "not an option" in beyond.reason  # the call's own four candidates
    (raw,) = task_api.to_results("AG", [Completion("0", "It is loud.", raw="It is loud.\n### Input:")])
    assert raw.answer == "It is loud." and raw.text.endswith("### Input:")
    with pytest.raises(ValueError, match="2 completions for 1 inputs"):
        task_api.to_results("SR", [Completion("0", "A"), Completion("1", "B")], items)


@pytest.mark.parametrize(
    ("task", "fields", "field"),
    [
        ("PSI", {"query": "x"}, "product"),
        ("PSI", {"query": "x", "product": "y", "instruction": "z"}, "instruction"),
        ("QPR", {"query": "x", "products": ["a", "b", "c", "d", "e"]}, "products"),
        ("SR", {"history": ["a"], "candidates": ["only one"]}, "candidates"),
        ("SA", {"review": ""}, "review"),
        ("SA", {"review": "bad \ud800 text"}, "unicode"),
    ],
)
def test_invalid_fields_name_the_field(task, fields, field):
    with pytest.raises(ValidationError, match=field):
        task_api.to_requests(FakeBackend(), task, [fields])


@pytest.fixture(scope="module")
def model(smollm2):
    from ecellm.infer.backends import open_backend

    return Model(backend=open_backend("hf", smollm2, autocast="off"), spec="smollm2-135m")


def test_run_and_named_methods_answer_as_predict_does(model):
    pm = task_api.example("PM")
    by_method = model.product_matching(**pm)
    by_run = model.run("PM", **pm)
    (record,) = model.predict([sample_from(task_api.resolve("PM"), pm, "s0")])
    assert by_method == by_run
    assert by_method.valid and by_method.answer in ("yes", "no") and by_method.mode == "choice"
    assert by_method.text == record["prediction"]
    ranked = model.run_many("query_product_ranking", [task_api.example("QPR")] * 2)
    assert ranked[0] == ranked[1] and ranked[0].mode == "constrained" and ranked[0].valid
    assert sorted(ranked[0].answer) == ["A", "B", "C"]  # constrained: every listed letter once
    with pytest.raises(TypeError):
        model.product_matching(pm["product_1"])  # fields are keyword-only
