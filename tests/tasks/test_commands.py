"""``ecellm tasks`` and ``describe_tasks``: every registered task, as its task object says."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial

from typer.testing import CliRunner

from ecellm.cli import app
from ecellm.data.schema import SETTINGS
from ecellm.tasks import all_tasks, describe_tasks
from ecellm.tasks.constraints import Ranking
from ecellm.tasks.describe import constraint_types

runner = CliRunner()


def test_json_lists_every_task_with_its_metric_and_decoding() -> None:
    res = runner.invoke(app, ["tasks", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    tasks = all_tasks(None)
    assert [r["abbr"] for r in rows] == [t.abbr for t in tasks]
    assert {r["family"] for r in rows} == {"ecinstruct", "shopbench"}
    for r, t in zip(rows, tasks, strict=True):
        assert (r["family"], r["name"], r["metric"]) == (t.family, t.name, t.metric)
        assert (r["decode"], r["answer_kind"]) == (t.decode, t.answer_kind)
        assert r["max_new_tokens"] == t.max_new_tokens
        assert r["primary_metric"]
        assert r["modes"] == list(t.modes)
        # a task that decodes constrained by default declares which spec it constrains with
        if t.decode == "constrained":
            assert r["constraint"] and "unknown" not in r["constraint"], t.abbr
        if t.instructions:
            assert any(s.startswith("IND") for s in r["settings"])
            assert any(s.startswith("OOD") for s in r["settings"]) == t.has_ood, t.abbr
            assert set(r["settings"]) <= set(SETTINGS)


def test_table_names_every_task_and_metric() -> None:
    res = runner.invoke(app, ["tasks"])
    assert res.exit_code == 0, res.output
    for t in all_tasks(None):
        assert t.abbr in res.output and t.name in res.output
    for metric in {t.metric for t in all_tasks()}:  # ECInstruct metrics are short enough not to wrap
        assert metric in res.output


def test_family_filter_and_unknown_family() -> None:
    rows = json.loads(runner.invoke(app, ["tasks", "--json", "--family", "ecinstruct"]).output)
    assert [r["abbr"] for r in rows] == [t.abbr for t in all_tasks("ecinstruct")]
    res = runner.invoke(app, ["tasks", "--family", "nope"])
    assert res.exit_code != 0


def test_constraint_types_read_from_the_task_not_its_name() -> None:
    base = all_tasks()[0]

    def ranked(sample: object) -> Ranking | None:
        return None

    assert constraint_types(replace(base, constraint=None)) == []
    assert constraint_types(replace(base, constraint=ranked)) == ["Ranking"]
    assert constraint_types(replace(base, constraint=partial(ranked))) == ["Ranking"]
    assert describe_tasks("ecinstruct")[0]["abbr"] == base.abbr
