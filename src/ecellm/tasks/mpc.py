"""MPC: query-product relevance class (ESCI). Output: the full option string, e.g. ``A: exact``."""

from functools import partial

from ecellm.tasks.base import InputField, Task
from ecellm.tasks.parsing import parse_letter

OPTIONS = (
    "A: exact, the product is relevant to the query and satisfies all its specifications",
    "B: substitute, the product is somewhat relevant: it fails some aspects of the query but can "
    "serve as a functional substitute",
    "C: complement, the product does not fulfil the query but could be used together with an exact item",
    "D: irrelevant, the product is irrelevant to the query",
)
LETTERS = ("A", "B", "C", "D")
# ESCI label of each option letter, used by builders.
ESCI = {"E": "A", "S": "B", "C": "C", "I": "D"}

TASK = Task(
    abbr="MPC",
    name="Multiclass_Product_Classification",
    aliases=("multiclass product classification", "query product classification"),
    category="query understanding",
    metric="accuracy",
    answer_kind="option",
    instructions=(
        "Given a search query and a product title, choose the option that describes how relevant the "
        "product is to the query. Answer with the full option.",
        "Classify the relation between the query and the product into exact, substitute, complement or "
        "irrelevant, and reply with the chosen option.",
        "How well does the product answer the shopper's query? Select one option and write it out.",
        "Judge the product against the search query and output the option that fits their relevance.",
        "For the query and product shown, pick the relevance class from the options and respond with it.",
    ),
    unseen_instruction=(
        "A shopper typed this query and saw this product. Which option describes the match? Repeat the "
        "option you choose."
    ),
    decode="choice",
    max_new_tokens=8,
    has_ood=False,
    options=OPTIONS,
    option_letters=LETTERS,
    parser=partial(parse_letter, letters=LETTERS, options=OPTIONS),
    inputs=(
        InputField("query", str, "the shopper's search query", "usb c to hdmi adapter"),
        InputField(
            "product_title",
            str,
            "the product title",
            "USB-C to HDMI 4K adapter, aluminium, for MacBook and iPad",
            key="product title",
        ),
    ),
    quality={"min_information": {"required": ["query", "product title"]}},
    primary="accuracy",
    builder="ecellm.data.builders.mpc",
)
