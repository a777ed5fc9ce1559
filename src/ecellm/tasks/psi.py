"""PSI: product substitute identification (is the product a substitute for the query?). yes/no."""

from ecellm.tasks.base import InputField, Task
from ecellm.tasks.parsing import parse_yes_no

TASK = Task(
    abbr="PSI",
    name="Product_Substitute_Identification",
    aliases=("Product_Substitue_Identification", "product substitute identification"),
    category="query understanding",
    metric="F1",
    answer_kind="yes_no",
    instructions=(
        "Given a search query and a product, decide whether the product could serve as a substitute for "
        "what the query asks for, even though it does not match every detail. Answer yes or no.",
        "Is the product a functional substitute for the item the query describes? Reply yes or no.",
        "Determine whether the product is somewhat relevant to the query and could replace the requested "
        "item. Output yes or no.",
        "Answer yes if the product fails some aspects of the query but could still be used in its place, "
        "and no otherwise.",
        "Would a shopper searching this query accept the product as a substitute? Respond with yes or no.",
    ),
    unseen_instruction=(
        "Could this product stand in for what the shopper searched for, without being an exact match? "
        "Say yes or no."
    ),
    decode="choice",
    max_new_tokens=3,
    has_ood=False,
    parser=parse_yes_no,
    inputs=(
        InputField("query", str, "the shopper's search query", "iphone 13 case clear"),
        InputField("product", str, "the product title", "Clear case for iPhone 14 Pro Max, anti-yellowing"),
    ),
    quality={"min_information": {"required": ["query", "product"]}},
    builder="ecellm.data.builders.psi",
)
