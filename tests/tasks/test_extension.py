"""An eleventh task from outside the package: one task file plus one builder, installed as a
plugin (an ``ecellm.tasks`` entry point), then built, predicted (choice and constrained) and
evaluated through the ordinary commands and API (predict is the function ``ecellm predict``
calls, with the session's embedded model), with no file of ecellm changed."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecellm.cli import app
from ecellm.data.loaders import load_samples
from ecellm.infer.backends import open_backend
from ecellm.infer.predict import predict
from ecellm.tasks import get_task
from ecellm.tasks.registry import reload_tasks

TASK_FILE = '''
"""PCP: which of two products is cheaper? Output: the letter A or B."""

import json
from functools import partial

from ecellm.tasks.base import InputField, Task
from ecellm.tasks.constraints import OneOf
from ecellm.tasks.parsing import parse_letter

LETTERS = ("A", "B")
OPTIONS = ("A: the first product", "B: the second product")


def compose(fields):
    return {"input": json.dumps({"product A": fields["a"], "product B": fields["b"]})}


TASK = Task(
    abbr="PCP",
    name="Price_Comparison",
    aliases=("price comparison",),
    category="product understanding",
    metric="macro F1",
    answer_kind="letter",
    instructions=(
        "Which of the two products costs less? Answer with its letter.",
        "Compare the prices of product A and product B and reply with the letter of the cheaper one.",
        "Pick the cheaper product and output only its letter, A or B.",
        "Read both listings and say which one has the lower price: A or B.",
        "Answer with A if product A is cheaper, otherwise with B.",
    ),
    unseen_instruction="Tell me which listing is the better deal on price, as a single letter.",
    decode="choice",
    max_new_tokens=4,
    has_ood=False,
    options=OPTIONS,
    option_letters=LETTERS,
    parser=partial(parse_letter, letters=LETTERS, options=OPTIONS),
    constraint=lambda sample: OneOf(LETTERS),
    family="toy",
    builder="ecellm_toy_builder",
    inputs=(
        InputField("a", str, "product A with its price", "usb cable, $4.99"),
        InputField("b", str, "product B with its price", "usb cable 2-pack, $7.49"),
    ),
    compose=compose,
)
'''

BUILDER_FILE = '''
"""PCP builder: pairs of listings from ``<raw>/toy/prices.jsonl`` ({"title", "price"} a line)."""

import json
import random
from pathlib import Path

from ecellm.data.builders.base import BuildResult, Draft

DEFAULTS = {"sizes": {"train": 16, "val": 4, "test": 6}}


def build(raw_dir, config, seed):
    src = Path(raw_dir) / "toy" / "prices.jsonl"
    rows = sorted((json.loads(x) for x in src.read_text().splitlines()), key=lambda r: r["title"])
    random.Random(seed).shuffle(rows)
    pairs = [(rows[i], rows[i + 1]) for i in range(0, len(rows) - 1, 2)]
    dropped = {"equal price": sum(a["price"] == b["price"] for a, b in pairs)}
    pairs = [(a, b) for a, b in pairs if a["price"] != b["price"]]
    drafts, start = {}, 0
    for split, n in config["sizes"].items():
        drafts[("IND", split)] = [
            Draft(
                input=json.dumps({"product A": f"{a['title']}, ${a['price']:.2f}",
                                  "product B": f"{b['title']}, ${b['price']:.2f}"}),
                output="A" if a["price"] < b["price"] else "B",
            )
            for a, b in pairs[start : start + n]
        ]
        start += n
    return BuildResult(task="PCP", drafts=drafts, dropped=dropped, sources=[src])
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The two files, made importable and declared as an installed distribution would."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "ecellm_toy_task.py").write_text(textwrap.dedent(TASK_FILE), encoding="utf-8")
    (root / "ecellm_toy_builder.py").write_text(textwrap.dedent(BUILDER_FILE), encoding="utf-8")
    info = root / "ecellm_toy-0.1.dist-info"
    info.mkdir()
    metadata = "Metadata-Version: 2.1\nName: ecellm-toy\nVersion: 0.1\n"
    (info / "METADATA").write_text(metadata, encoding="utf-8")
    (info / "entry_points.txt").write_text("[ecellm.tasks]\npcp = ecellm_toy_task\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    reload_tasks()
    yield root
    monkeypatch.undo()
    reload_tasks()


def _raw(tmp_path: Path) -> Path:
    """60 listings with distinct prices (30 pairs)."""
    r = random.Random(3)
    words = ["usb cable", "phone case", "desk lamp", "water bottle", "notebook", "hdmi adapter", "pad"]
    prices = r.sample(range(199, 9999), 60)
    raw = tmp_path / "raw"
    (raw / "toy").mkdir(parents=True)
    lines = [json.dumps({"title": f"{words[i % 7]} {i}", "price": p / 100}) for i, p in enumerate(prices)]
    (raw / "toy" / "prices.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return raw


def _run(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)


def test_a_plugin_task_is_built_predicted_and_evaluated(plugin, tmp_path, smollm2):
    task = get_task("price comparison")
    assert (task.abbr, task.family, task.score_kind) == ("PCP", "toy", "multiclass")
    build = tmp_path / "build"
    _run("data", "build", "--raw-dir", str(_raw(tmp_path)), "--out", str(build), "--tasks", "PCP")
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["tasks"] == ["PCP"]
    assert manifest["counts"]["PCP"]["IND_Diverse_Instruction"] == {"train": 16, "val": 4, "test": 6}

    backend = open_backend("hf", smollm2, autocast="off")  # the session's embedded model
    for mode in ("choice", "constrained"):
        preds, metrics = tmp_path / f"{mode}.jsonl", tmp_path / f"{mode}.json"
        samples = load_samples(build, settings="IND_Diverse_Instruction", splits="test")
        predict(samples, out=preds, backend=backend, mode=mode, template="alpaca", progress=False)
        records = [json.loads(x) for x in preds.read_text().splitlines()]
        assert len(records) == 6 and {r["mode"] for r in records} == {mode}
        assert {r["prediction"] for r in records} <= {"A", "B"}
        _run(
            "evaluate", "--data", str(build), "--predictions", str(preds), "--mode", "strict",
            "--settings", "IND_Diverse_Instruction", "--output", str(metrics),
        )  # fmt: skip
        (row,) = json.loads(metrics.read_text())["results"]
        assert (row["task"], row["metric"], row["n"], row["invalid"]) == ("PCP", "macro_f1", 6, 0)
        assert 0.0 <= row["score"] <= 1.0


def test_without_the_plugin_the_task_is_unknown():
    with pytest.raises(KeyError, match="unknown task 'PCP'"):
        get_task("PCP")
