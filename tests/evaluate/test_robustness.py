"""No model output crashes a parser or scorer, and a 1 MB output is scored in under a second.

Every task of the registry is parsed (strict and lenient) and scored in each of its modes
(ECInstruct: paper and strict; ShopBench: official and strict), each with and without
--lenient, with one sample per ECInstruct task and one record per ShopBench task type and
metric. The neural models (BERTScore, sentence embeddings) are replaced by fakes that
check what they are given: valid Unicode, bounded length. The real BERTScore and jp-BLEU on a
lone surrogate are checked separately (test_scoring_survives_lone_surrogates).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import FIXTURES

from ecellm.data.loaders import load_samples
from ecellm.evaluate import evaluator
from ecellm.evaluate.bertscore import BertScoreModel
from ecellm.evaluate.generation import MAX_CHARS
from ecellm.tasks import all_tasks, get_task
from ecellm.tasks.qpr import listed_letters
from ecellm.tasks.shopbench import metrics as M

FIXTURE = FIXTURES / "samples_mixed.jsonl"
MB = 1_000_000
TRUTH = {  # a truth of each ShopBench task type (ranking: per-item gains, one of them huge)
    "multiple-choice": 1,
    "retrieval": [1, 2, 3],
    "ranking": [3.0, 1e6, 0.0, 1.0, 2.0],
    "named_entity_recognition": ["apple", "pie"],
    "generation": "a bright red desk lamp",
}


def _ecinstruct_samples() -> list:
    """One sample per ECInstruct task (QPR with ESCI labels), plus an OOD copy for AVE."""
    by_task = {}
    for s in load_samples(FIXTURE):
        by_task.setdefault(s.task, s)
    wanted = {t.abbr for t in all_tasks(None) if t.family == "ecinstruct"}
    assert set(by_task) == wanted, "the fixture must cover every ECInstruct task"
    out = []
    for s in by_task.values():
        if s.task == "QPR":
            labels = ["E", "S", "C", "I"] * 5
            s = s.model_copy(update={"meta": {**s.meta, "labels": labels[: len(listed_letters(s) or [])]}})
        out.append(s)
        if s.task == "AVE":
            out.append(s.model_copy(update={"id": s.id + "-ood", "setting": "OOD_Diverse_Instruction"}))
    return out


def _shopbench_samples(tmp: Path) -> list:
    """One record per ShopBench task type and metric of the registry, read by the loaders."""
    records = [
        {
            "id": f"r-{t.abbr}-{metric}",
            "input_field": "question",
            "output_field": TRUTH[t.extra["task_type"]],
            "task_name": f"t-{t.abbr}-{metric}",
            "task_type": t.extra["task_type"],
            "metric": metric,
            "track": "x",
        }
        for t in all_tasks(None)
        if t.family == "shopbench"
        for metric in t.extra["metrics"]
    ]
    assert {r["metric"] for r in records} == set(M.METRICS), "every ShopBench metric is covered"
    path = tmp / "shopbench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return load_samples(path)


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list:
    out = _ecinstruct_samples() + _shopbench_samples(tmp_path_factory.mktemp("shopbench"))
    assert {s.task for s in out} == {t.abbr for t in all_tasks(None)}, "every registered task is scored"
    return out


def _usable(texts) -> None:
    for t in texts:
        t.encode("utf-8")  # raises on a lone surrogate
        assert len(t) <= max(MAX_CHARS, M.MAX_OUTPUT_CHARS)


def _fake_bertscore(cands, refs, **kw):
    _usable(cands)
    _usable(refs)
    n = len(cands)
    return torch.full((n,), 0.5), torch.full((n,), 0.5), torch.full((n,), 0.5)


class _FakeScorer:
    """Stands in for ``bert_score.BERTScorer`` (what ecellm's BERTScore calls): no model load."""

    def __init__(self, **kw):
        pass

    def score(self, cands, refs, **kw):
        return _fake_bertscore(cands, refs)


class _FakeEncoder:
    location = "fake"

    def encode(self, texts):
        _usable(texts)
        return torch.nn.functional.normalize(torch.ones(len(texts), 4), dim=1)


@contextlib.contextmanager
def fake_models():
    import bert_score

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluator, "resolve_model", lambda name=None: BertScoreModel("fake", 1, "fake"))
        mp.setattr(bert_score, "BERTScorer", _FakeScorer)
        mp.setattr(M, "get_encoder", lambda metric, model=None: _FakeEncoder())
        yield


def score_everything(samples: list, text: str, *, budget: float | None = None) -> None:
    """Parse and score ``text`` as every task's answer in every mode; each call within ``budget``
    seconds of CPU time (CPU, not wall clock, so a busy shared machine does not fail the test)."""

    def timed(what: str, fn, *a, **kw):
        start = time.process_time()
        result = fn(*a, **kw)
        took = time.process_time() - start
        assert budget is None or took < budget, f"{what}: {took:.2f} s"
        return result

    if budget is None:  # parsers without a sample too (the timed runs parse inside evaluate)
        for task in all_tasks(None):
            for lenient in (False, True):
                task.parse(text, None, lenient=lenient)
    for s in samples:
        task = get_task(s.task)
        for lenient in (False, True) if task.family == "ecinstruct" else (False,):  # ShopBench has no lenient
            for mode in task.modes:
                res = timed(
                    f"{s.task}/{s.setting} {mode} lenient={lenient}",
                    evaluator.evaluate,
                    [s],
                    {s.id: text},
                    mode=mode,
                    lenient=lenient,
                )
                score = res["results"][0]["score"]
                assert isinstance(score, float) and 0.0 <= score <= 1.0 + 1e-6, (s.task, score)
                json.dumps(res)  # the report can be written


any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=200)  # includes lone surrogates
nested = st.tuples(
    st.sampled_from(["[", "{", "[{", '{"a":', "(", "{1:", "[{'a': {"]), st.integers(1, 3000)
).map(lambda t: t[0] * t[1])
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)
answers = st.one_of(
    any_text,
    nested,
    json_like.map(lambda v: json.dumps(v)),
    json_like.map(repr),  # Python literals: non-string keys, sets via repr of frozensets below
    st.frozensets(st.integers(), max_size=5).map(lambda s: repr([{1: s, "attribute": "a"}])),
    st.lists(st.sampled_from("ABCDEFGHIJKLMNOPQRST ,>.:"), max_size=80).map("".join),
    st.tuples(st.sampled_from(["Answer: ", "```json\n", "", "(", "yes, "]), any_text).map("".join),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=answers)
def test_no_output_crashes_a_parser_or_scorer(samples, text: str) -> None:
    with fake_models():
        score_everything(samples, text)


LONG = {
    "open brackets": "[" * MB,
    "letters and commas": "A," * (MB // 2),
    "python literal": "[" + "{1: 2, 'attribute': {3}}, " * (MB // 26) + "]",
    "fence of spaces": "```" + " " * MB + "x",
    "unicode with surrogates": ("é\ud800日 \U0001f600\n" * (MB // 6)),
    "huge valid AVE value": json.dumps([{"attribute": "a", "value": "x" * MB, "source": "s"}]),
    "deep nesting": '[{"a":' * (MB // 7),
}


@pytest.mark.parametrize("name", list(LONG))
def test_one_megabyte_output_is_scored_in_under_a_second(samples, name: str) -> None:
    with fake_models():
        score_everything(samples, LONG[name], budget=1.0)


def test_lenient_ave_is_linear_and_reads_python_literals() -> None:
    ave = evaluator.get_task("AVE")
    start = time.perf_counter()
    assert not ave.parse("[" * 200_000, None, lenient=True)
    assert time.perf_counter() - start < 0.5
    got = ave.parse("[{1: 2, 'attribute': {3, 1}}, {(1, 2)}]", None, lenient=True)
    assert got == [{"1": 2, "attribute": [1, 3]}, [[1, 2]]]
    assert not ave.parse("[" * 100 + "]" * 100, None, lenient=True)  # deeper than any answer


def test_ndcg_with_a_huge_gain_does_not_overflow() -> None:
    assert M.ndcg([2, 1], [1e6, 1.0]) == pytest.approx(1 / 1.5849625007211563)
    assert M.ndcg([1, 2], [3.0, 1.0]) == pytest.approx(1.0)
    assert M.ndcg([2, 1], [3.0, 1.0]) == pytest.approx(
        (1 + 7 / 1.5849625007211563) / (7 + 1 / 1.5849625007211563)
    )


def test_scoring_survives_lone_surrogates(samples) -> None:
    """Real BERTScore (MiniLM) and jp-BLEU on text with a lone surrogate."""
    from ecellm.evaluate.bertscore import resolve_model
    from ecellm.evaluate.generation import score_generation

    model = resolve_model(None)
    res = score_generation(
        ["a good lamp"], ["a good \ud800 lamp"], mode="strict", model=model, use_bleurt=False
    )
    assert 0.0 < res["metrics"]["bertscore_f1"] <= 1.0
    jp = next(s for s in samples if s.meta.get("metric") == "jp-bleu")
    jp = jp.model_copy(update={"meta": {**jp.meta, "truth": "良いランプ"}})
    out = evaluator.evaluate([jp], {jp.id: "良い\ud800ランプ"}, mode="official")
    assert 0.0 <= out["results"][0]["score"] <= 1.0
    assert 0.0 <= M.bleu(M.cut("良い\ud800ランプ"), "良いランプ", japanese=True) <= 1.0
