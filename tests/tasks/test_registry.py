"""The task registry: names, aliases, instruction pools and the closed answer sets."""

from __future__ import annotations

import pytest

from ecellm.data.schema import Sample
from ecellm.tasks import all_tasks, get_task


def test_ten_tasks_in_paper_order() -> None:
    assert [t.abbr for t in all_tasks()] == ["AVE", "PRP", "PM", "SA", "SR", "MPC", "PSI", "QPR", "AP", "AG"]


@pytest.mark.parametrize(
    ("alias", "abbr"),
    [
        ("Product_Relation_Predicition", "PRP"),
        ("Product_Substitue_Identification", "PSI"),
        ("product relation prediction", "PRP"),
        ("answer_generation", "AG"),
        ("qpr", "QPR"),
    ],
)
def test_reference_spellings_resolve(alias: str, abbr: str) -> None:
    assert get_task(alias).abbr == abbr


def test_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown task 'Product_Mathcing'.*AVE"):
        get_task("Product_Mathcing")


def test_instruction_pools_are_distinct() -> None:
    for t in all_tasks():
        pool = (*t.instructions, t.unseen_instruction)
        assert len(t.instructions) == 5
        assert len(set(pool)) == 6, t.abbr


def test_ood_tasks_match_the_paper() -> None:
    assert {t.abbr for t in all_tasks() if t.has_ood} == {"AVE", "PRP", "SA", "SR", "AP", "AG"}


def test_choices_are_gold_output_forms() -> None:
    sa = Sample(
        id="x",
        task="Sentiment_Analysis",
        instruction="i",
        input="good",
        output="B: positive",
        options=list(get_task("SA").options),
    )
    assert get_task("SA").choices(sa)[1] == "B: positive"
    prp = Sample(
        id="y", task="PRP", instruction="i", input="{}", output="A", options=list(get_task("PRP").options)
    )
    assert get_task("PRP").choices(prp) == ["A", "B", "C"]
    pm = Sample(id="z", task="PM", instruction="i", input="{}", output="yes")
    assert get_task("PM").choices(pm) == ["yes", "no"]
    with pytest.raises(ValueError):
        get_task("AG").choices(pm)


def test_schema_rejects_unknown_split_and_task() -> None:
    with pytest.raises(ValueError, match="split"):
        Sample(id="a", task="PM", instruction="i", input="x", output="yes", split="dev")
    with pytest.raises(ValueError):
        Sample(id="a", task="Nope", instruction="i", input="x", output="yes")
    assert (
        Sample(id="a", task="PM", instruction="i", input="x", output="yes", split="validation").split == "val"
    )
