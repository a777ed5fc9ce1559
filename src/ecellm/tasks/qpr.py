"""QPR: rank 2-4 products for a query. Output: letters best first joined by ',' (``B,A,C``)."""

from functools import partial

from ecellm.tasks.base import Task
from ecellm.tasks.parsing import parse_ranking

LETTERS = ("A", "B", "C", "D")
# Order of ESCI labels in a gold ranking, and their gains in NDCG.
LABEL_ORDER = ("E", "S", "C", "I")
GAINS = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}

TASK = Task(
    abbr="QPR",
    name="Query_Product_Ranking",
    aliases=("query product ranking",),
    category="query understanding",
    metric="NDCG",
    answer_kind="ranking",
    instructions=(
        "Rank the listed products by how relevant they are to the search query, most relevant first. "
        "Answer with the product letters separated by commas, without spaces.",
        "Order the products from best to worst match for the query and output their letters joined by "
        "commas.",
        "Given a query and several products, sort the products by relevance to the query and reply with "
        "the letters in that order, comma-separated.",
        "Which products answer the query best? List all product letters from most to least relevant, "
        "separated by commas.",
        "Produce a relevance ranking of the products for this query as a comma-separated list of their "
        "letters, best first.",
    ),
    unseen_instruction=(
        "Put these products in order of how well they fit what the shopper searched for, best one first, "
        "as letters joined by commas."
    ),
    decode="constrained",
    max_new_tokens=12,
    has_ood=False,
    option_letters=LETTERS,
    parser=partial(parse_ranking, letters=LETTERS),
    extra={"gains": GAINS, "label_order": LABEL_ORDER},
)
