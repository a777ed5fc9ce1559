"""AG builder: answer a product question from evidence documents (free text).

Sources, each used when present under ``raw_dir``:

- **hetPQA** answer generation (``pqa/hetPQA/answer_generation/{train,dev}.csv``): rows sharing an
  (ASIN, question) are one sample; document = their evidence candidates (file order, de-duplicated),
  answer = the first non-empty answer.
- **ePQA** (``pqa/ePQA/dev.csv``): per question, one label-2 candidate that has a written answer
  (seeded choice) plus up to ``doc_size - 1`` other candidates of the question, shuffled; the
  answer written from that candidate is the output.
- **AmazonQA**: descriptive, answerable questions; document = review snippets, output = the most
  up-voted answer. ``min_answer_votes: 1`` is the reference's rule: a question whose answers have
  no up-vote is dropped (the lite default keeps the first answer then).

Domains as in AP: categories of PQA products are inferred (title when ePQA has one, otherwise
the question and evidence text), products in ``ood_categories`` form the OOD test set and the rest
is split by product, so no ASIN crosses splits even when it appears in both PQA files.
``ind_categories`` restricts IND as in AP (the reference: Electronics + Home_and_Kitchen, OOD
Cell_Phones_and_Accessories).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ecellm.data.builders.ap import (
    EPQA,
    OUT_OF_DOMAIN,
    amazonqa_draft,
    cap_groups,
    domain_of,
    product_splits,
    qa_input,
    snippet,
)
from ecellm.data.builders.base import BuildResult, Draft
from ecellm.data.readers.amazonqa import amazonqa_files, read_amazonqa
from ecellm.data.readers.pqa import infer_category, read_epqa, read_hetpqa
from ecellm.data.splits import rng
from ecellm.errors import InputError

DEFAULTS: dict[str, Any] = {
    "sources": ["hetpqa", "epqa", "amazonqa"],
    "ood_categories": ["Electronics"],
    "ind_categories": None,  # None: every category not in ood_categories; a list: only those
    "fractions": [0.8, 0.1, 0.1],
    "doc_size": 5,
    "max_snippet_words": 120,
    "min_answer_words": 2,
    "min_answer_votes": 0,  # AmazonQA: up-votes the chosen answer needs (the reference: 1)
    "sizes": {"train": 2000, "val": 200, "test": 500},
    "ood_sizes": {"test": 500},
}

BELOW_VOTES = "amazonqa answers below min_answer_votes up-votes"
HETPQA = (Path("pqa/hetPQA/answer_generation/train.csv"), Path("pqa/hetPQA/answer_generation/dev.csv"))


def _answer(text: str | None, min_words: int) -> str:
    from ecellm.data.quality import clean_text

    out = clean_text(text)
    return out if len(out.split()) >= min_words else ""


def _hetpqa(raw_dir: Path, config: dict[str, Any], dropped: dict[str, int]) -> list[tuple[str, str, Draft]]:
    """(asin, category text, draft) per (ASIN, question) group of the hetPQA files present."""
    from ecellm.data.quality import clean_text

    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for rel in HETPQA:
        if (raw_dir / rel).exists():
            for row in read_hetpqa(raw_dir / rel).iter_rows(named=True):
                groups[(row["ASIN"], clean_text(row["question"]))].append({**row, "file": rel.name})
    out = []
    for (asin, question), rows in sorted(groups.items()):
        doc = list(
            dict.fromkeys(
                s for s in (snippet(r["candidate"], config["max_snippet_words"]) for r in rows) if s
            )
        )
        answers = [a for a in (_answer(r["answer"], config["min_answer_words"]) for r in rows) if a]
        if not question or not doc or not answers:
            dropped["hetpqa without question, evidence or answer"] += 1
            continue
        meta = {
            "source": "hetpqa",
            "asin": asin,
            "file": rows[0]["file"],
            "line": rows[0]["line"],
            "evidence_sources": [r["source"] for r in rows],
        }
        out.append(
            (
                asin,
                question + " " + " ".join(doc),
                Draft(input=qa_input(question, doc), output=answers[0], meta=meta),
            )
        )
    return out


def _epqa(
    path: Path, config: dict[str, Any], seed: int, dropped: dict[str, int]
) -> list[tuple[str, str, Draft]]:
    from ecellm.data.quality import clean_text

    df = read_epqa(path)
    r = rng(seed, "AG", "epqa")
    by_q: dict[int, list[dict]] = defaultdict(list)
    for row in df.iter_rows(named=True):
        by_q[row["qid"]].append(row)
    out = []
    for qid in sorted(by_q):
        rows = by_q[qid]
        question = clean_text(rows[0]["question"])
        cands = [(snippet(x["candidate"], config["max_snippet_words"]), x) for x in rows]
        cands = [c for c in cands if c[0]]
        answerable = [
            c for c in cands if c[1]["label"] == 2 and _answer(c[1]["answer"], config["min_answer_words"])
        ]
        if not question or not answerable:
            dropped["epqa question without a written answer"] += 1
            continue
        first = r.choice(answerable)
        others = [c for c in cands if c is not first]
        doc = [first, *r.sample(others, min(len(others), int(config["doc_size"]) - 1))]
        r.shuffle(doc)
        meta = {
            "source": "epqa",
            "qid": qid,
            "asin": rows[0]["ASIN"],
            "title": clean_text(rows[0]["title"]),
            "qa_pair_id": first[1]["qa_pair_id"],
            "candidate_labels": [c[1]["label"] for c in doc],
        }
        answer = _answer(first[1]["answer"], config["min_answer_words"])
        out.append(
            (
                rows[0]["ASIN"],
                rows[0]["title"],
                Draft(input=qa_input(question, [c[0] for c in doc]), output=answer, meta=meta),
            )
        )
    return out


def build(raw_dir: Path, config: dict[str, Any], seed: int) -> BuildResult:
    raw_dir = Path(raw_dir)
    config = {**DEFAULTS, **config}
    sources = config["sources"]
    dropped = {"hetpqa without question, evidence or answer": 0, "epqa question without a written answer": 0}
    used: list[Path] = []
    items: list[tuple[str, str, Draft]] = []
    if "hetpqa" in sources:
        used.extend(raw_dir / p for p in HETPQA if (raw_dir / p).exists())
        items.extend(_hetpqa(raw_dir, config, dropped))
    if "epqa" in sources and (raw_dir / EPQA).exists():
        used.append(raw_dir / EPQA)
        items.extend(_epqa(raw_dir / EPQA, config, seed, dropped))
    # one category per product: the ePQA title when there is one, else all of its hetPQA text
    titles = {asin: text for asin, text, d in items if d.meta["source"] == "epqa"}
    texts: dict[str, list[str]] = defaultdict(list)
    for asin, text, _ in items:
        texts[asin].append(text)
    cats = {a: infer_category(titles.get(a) or " ".join(texts[a])) for a in sorted(texts)}
    where = product_splits(cats, config, seed, "AG-pqa")
    groups: dict[tuple[str, str], list[Draft]] = defaultdict(list)
    for asin, _, d in items:
        d.meta["category"] = cats[asin]
        if asin in where:
            groups[where[asin]].append(d)
        else:
            dropped[OUT_OF_DOMAIN] = dropped.get(OUT_OF_DOMAIN, 0) + 1
    if "amazonqa" in sources:
        files = amazonqa_files(raw_dir)
        used.extend(files[s] for s in sorted(files))
        dropped["amazonqa not descriptive, unanswerable or unanswered"] = 0
        min_votes = int(config["min_answer_votes"])
        if min_votes:
            dropped[BELOW_VOTES] = 0
        for item in read_amazonqa(raw_dir):
            best = item.best_answer(min_votes)
            d = None
            wanted = item.question_type == "descriptive" and item.is_answerable
            if wanted and best is None and item.best_answer() is not None:
                dropped[BELOW_VOTES] += 1
                continue
            if wanted and best:
                d = amazonqa_draft(item, _answer(best, config["min_answer_words"]), config)
            if d is None or not d.output:
                dropped["amazonqa not descriptive, unanswerable or unanswered"] += 1
                continue
            domain = domain_of(item.category, config)
            if domain is None:
                dropped[OUT_OF_DOMAIN] = dropped.get(OUT_OF_DOMAIN, 0) + 1
                continue
            groups[(domain, item.split if domain == "IND" else "test")].append(d)
    if not used:
        raise InputError(
            "no AG source found (need pqa/hetPQA, pqa/ePQA or amazonqa files)", file=str(raw_dir)
        )
    return BuildResult(
        task="AG", drafts=cap_groups(groups, config, seed, "AG"), dropped=dropped, sources=used
    )
