"""Metric functions and the paper/strict scorers against values computed by hand."""

from __future__ import annotations

import json
import math
import random

import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from ecellm.evaluate import paper, strict
from ecellm.evaluate.metrics import dcg, macro_prf, max_matching
from ecellm.tasks import Invalid, get_task

GAINS = get_task("QPR").gains
SR_LETTERS = get_task("SR").option_letters

GS = 2**0.1 - 1  # gain of an S item
GC = 2**0.01 - 1  # gain of a C item
L3 = math.log2(3)


def test_macro_prf_matches_sklearn_on_random_labels():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 30)
        g = [rng.choice("ABCDE") for _ in range(n)]
        p = [rng.choice("ABCDE") for _ in range(n)]
        labels = sorted(set(g) | set(p))
        ours = macro_prf(g, p, labels)
        kw = {"average": "macro", "labels": labels, "zero_division": 0}
        assert ours["macro_precision"] == pytest.approx(precision_score(g, p, **kw))
        assert ours["macro_recall"] == pytest.approx(recall_score(g, p, **kw))
        assert ours["macro_f1"] == pytest.approx(f1_score(g, p, **kw))


def test_paper_binary_matches_sklearn_when_both_classes_remain():
    rng = random.Random(1)
    for _ in range(100):
        n = rng.randint(2, 25)
        g = ["yes", "no"] + [rng.choice(["yes", "no"]) for _ in range(n)]
        p = ["no", "yes"] + [rng.choice(["yes", "no", "Yes", "maybe", ""]) for _ in range(n)]
        m = paper.score_binary(g, p)["metrics"]
        kept = [
            (a, b.lower().strip()) for a, b in zip(g, p, strict=True) if b.lower().strip() in ("yes", "no")
        ]
        kg, kp = [a for a, _ in kept], [b for _, b in kept]
        assert m["accuracy"] == pytest.approx(accuracy_score(kg, kp))
        assert m["f1"] == pytest.approx(f1_score(kg, kp, pos_label="yes", zero_division=0))
        assert m["precision"] == pytest.approx(precision_score(kg, kp, pos_label="yes", zero_division=0))


def test_dcg_by_hand():
    assert dcg([1.0, 0.1]) == pytest.approx(1 + GS / L3)
    assert dcg([]) == 0.0


# --- QPR: the worked examples of ECINSTRUCT.md §6 (gold A=E, B=S) -----------------------------


@pytest.mark.parametrize(
    ("pred", "expected"), [("A,B", 1.0), ("B,A", 0.672), ("A", 1.0), ("B", 1.0), ("B,B", 1.0)]
)
def test_qpr_paper_worked_examples(pred, expected):
    out = paper.score_ranking([pred], [["E", "S"]], GAINS)
    assert round(out["metrics"]["ndcg"], 3) == expected
    assert out["invalid"] == 0


def test_qpr_paper_exact_values_and_invalid_tokens():
    ab = 1 + GS / L3
    assert paper.score_ranking(["B,A"], [["E", "S"]], GAINS)["metrics"]["ndcg"] == pytest.approx(
        (GS + 1 / L3) / (ab + 1e-6)
    )
    # a space after the comma makes the token ' A' unreadable in the reference; 'X' is unknown
    out = paper.score_ranking(["C, A,X", ""], [["C", "S", "E"], ["E", "S"]], GAINS)
    assert out["metrics"]["invalid_tokens"] == 3
    assert out["invalid"] == 2
    assert out["metrics"]["ndcg"] == pytest.approx((1 / (1 + 1e-6) + 0.0) / 2)


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("A,B", 1.0),
        ("B,A", (GS + 1 / L3) / (1 + GS / L3)),
        ("A", 1.0),  # missing B appended: A,B
        ("B", (GS + 1 / L3) / (1 + GS / L3)),  # missing A appended last: B,A
        ("B,B", (GS + 1 / L3) / (1 + GS / L3)),  # duplicate removed, then A appended
        ("B,A,Z", (GS + 1 / L3) / (1 + GS / L3)),  # unknown letter ignored
    ],
)
def test_qpr_strict_differs_on_partial_and_duplicated_rankings(pred, expected):
    answer = get_task("QPR").parse(pred)
    assert strict.score_ranking([answer], [["E", "S"]], GAINS)["metrics"]["ndcg"] == pytest.approx(expected)


def test_qpr_strict_invalid_gets_worst_order():
    labels = ["E", "S", "C", "I"]
    worst = dcg([0.0, 0.01, 0.1, 1.0])
    ideal = dcg([1.0, 0.1, 0.01, 0.0])
    out = strict.score_ranking([Invalid("empty")], [labels], GAINS)
    assert out["metrics"]["ndcg"] == pytest.approx(worst / ideal)
    assert worst == pytest.approx(GC / L3 + GS / 2 + 1 / math.log2(5))
    assert out["invalid"] == 1


# --- AVE -------------------------------------------------------------------------------------


def _t(*items):
    return json.dumps([{"attribute": a, "value": v, "source": s} for a, v, s in items])


def test_ave_duplicates_count_twice_in_paper_once_in_strict():
    gold = [_t(("color", "red", "product title"))]
    pred = [_t(("color", "red", "product title"), ("color", "red", "product title"))]
    p = paper.score_ave(gold, pred, "IND_Diverse_Instruction")["metrics"]
    assert (p["hits"], p["n_gold"], p["n_pred"]) == (2, 1, 2)
    assert p["recall"] == 2.0  # the reference's recall can exceed 1
    assert p["precision"] == pytest.approx(2 / (2 + 1e-6))
    assert p["f1"] == pytest.approx(2 * 2.0 * p["precision"] / (2.0 + p["precision"] + 1e-6))
    s = strict.score_ave(
        [json.loads(g) for g in gold], [json.loads(x) for x in pred], "IND_Diverse_Instruction"
    )
    assert (s["metrics"]["hits"], s["metrics"]["n_pred"]) == (1, 1)
    assert s["metrics"]["f1"] == 1.0


def test_ave_relaxed_match_only_in_ood_and_empty_value_only_in_paper():
    gold = [_t(("scent", "lavender", "product title"))]
    pred = [_t(("scent", "", "product title"))]
    assert paper.score_ave(gold, pred, "OOD_Diverse_Instruction")["metrics"]["hits"] == 1
    assert paper.score_ave(gold, pred, "IND_Diverse_Instruction")["metrics"]["hits"] == 0
    s = strict.score_ave([json.loads(gold[0])], [json.loads(pred[0])], "OOD_Diverse_Instruction")
    assert s["metrics"]["hits"] == 0
    # a genuine partial span is a relaxed hit in both modes
    pred2 = [_t(("scent", "Lavender ", "title"))]
    assert paper.score_ave(gold, pred2, "OOD_Diverse_Instruction")["metrics"]["hits"] == 0  # case differs
    s2 = strict.score_ave([json.loads(gold[0])], [json.loads(pred2[0])], "OOD_Diverse_Instruction")
    assert s2["metrics"]["hits"] == 1  # normalised case and whitespace, 'title' within 'product title'


def test_ave_unparsable_and_non_object_items():
    gold = [_t(("brand", "acme", "product title"))] * 3
    preds = [
        "not json",
        '{"attribute": "brand"}',
        '["junk", {"attribute": "brand", "value": "acme", "source": "product title"}]',
    ]
    p = paper.score_ave(gold, preds, "IND_Diverse_Instruction")
    # not json -> invalid; a JSON object that is not a list -> no predictions but not invalid (reference)
    assert p["invalid"] == 1
    assert (p["metrics"]["hits"], p["metrics"]["n_gold"], p["metrics"]["n_pred"]) == (1, 3, 1)
    answers = [get_task("AVE").parse(x) for x in preds]
    assert isinstance(answers[0], Invalid) and isinstance(answers[1], Invalid)
    s = strict.score_ave([json.loads(g) for g in gold], answers, "IND_Diverse_Instruction")
    # "junk" counts as a predicted item in strict mode
    assert (s["metrics"]["hits"], s["metrics"]["n_pred"], s["invalid"]) == (1, 2, 2)
    assert s["metrics"]["precision"] == 0.5
    assert s["metrics"]["recall"] == pytest.approx(1 / 3)


def test_max_matching_is_one_to_one():
    assert max_matching({0: [0, 1], 1: [0]}) == 2
    assert max_matching({0: [0], 1: [0], 2: [0]}) == 1
    assert max_matching({}) == 0


# --- classification edge cases ---------------------------------------------------------------


def test_binary_one_class_left_does_not_crash():
    out = paper.score_binary(["no", "no", "no"], ["no", "no", "nope"])
    m = out["metrics"]
    assert out["invalid"] == 1
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"]) == (1.0, 0.0, 0.0, 0.0)
    assert m["specificity"] == pytest.approx(2 / (2 + 1e-8))
    s = strict.score_binary(["no", "no", "no"], [get_task("PSI").parse(x) for x in ["no", "no", "nope"]])[
        "metrics"
    ]
    assert s["accuracy"] == pytest.approx(2 / 3)
    assert s["specificity"] == pytest.approx(2 / 3)
    assert s["npv"] == 1.0


def test_everything_invalid_or_empty_scores_zero():
    for scorer in (
        paper.score_binary,
        paper.score_multiclass,
        lambda g, p: paper.score_hit_rate(g, p, SR_LETTERS),
    ):
        out = scorer(["yes", "A"], ["", "   "])
        assert out["invalid"] == 2
        assert all(v == 0.0 for k, v in out["metrics"].items() if isinstance(v, float))
    assert paper.score_binary([], [])["metrics"]["f1"] == 0.0
    assert strict.score_multiclass([], [])["metrics"]["macro_f1"] == 0.0
    assert paper.score_ranking([], [], GAINS)["metrics"]["ndcg"] == 0.0
    assert strict.score_ave([], [], "IND")["metrics"]["f1"] == 0.0


def test_multiclass_paper_drops_invalids_and_uses_label_union():
    out = paper.score_multiclass(["A", "B", "A", "C", "B"], ["A", "B", "D", "", "B"])
    m = out["metrics"]
    assert out["invalid"] == 1
    assert m["labels"] == ["A", "B", "D"]
    assert m["accuracy"] == 0.75
    assert m["macro_precision"] == pytest.approx(2 / 3)
    assert m["macro_recall"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1) / 3)
    task = get_task("PRP")
    s = strict.score_multiclass(["A", "B", "A", "C", "B"], [task.parse(x) for x in ["A", "B", "D", "", "B"]])
    assert s["invalid"] == 2
    assert s["metrics"]["labels"] == ["A", "B", "C"]
    assert s["metrics"]["accuracy"] == 0.6


def test_sr_paper_requires_exact_letter():
    out = paper.score_hit_rate(["C", "T", "A"], ["C", "T.", "U"], SR_LETTERS)
    assert out["invalid"] == 2 and out["metrics"]["hr@1"] == 1.0
    s = strict.score_hit_rate(["C", "T", "A"], [get_task("SR").parse(x) for x in ["C", "T.", "U"]])
    assert s["invalid"] == 2 and s["metrics"]["hr@1"] == pytest.approx(1 / 3)
