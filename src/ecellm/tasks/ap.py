"""AP: answerability prediction (can the question be answered from the documents?). yes/no."""

from ecellm.tasks.base import InputField, Task
from ecellm.tasks.parsing import parse_yes_no

TASK = Task(
    abbr="AP",
    name="Answerability_Prediction",
    aliases=("answerability prediction",),
    category="product question answering",
    metric="F1",
    answer_kind="yes_no",
    instructions=(
        "Given a shopper's question about a product and supporting documents, decide whether the "
        "documents contain enough information to answer the question. Answer yes or no.",
        "Can the question be answered using only the given product documents? Reply yes or no.",
        "Read the question and the evidence snippets, and output yes if the snippets answer the question, "
        "otherwise no.",
        "Determine whether the provided documents hold the answer to the product question; respond with "
        "yes or no.",
        "Judge if the question is answerable from the supporting text. Output yes or no only.",
    ),
    unseen_instruction=(
        "Is there enough in these snippets to answer what the customer asked? Say yes or no."
    ),
    decode="choice",
    max_new_tokens=3,
    has_ood=True,
    parser=parse_yes_no,
    inputs=(
        InputField(
            "question", str, "the shopper's question about the product", "does it come with a charger?"
        ),
        InputField(
            "document",
            list[str],
            "supporting snippets (reviews, descriptions)",
            ["the box had the tablet, a cable and a wall plug.", "battery lasts all day."],
            min_items=1,
        ),
    ),
    quality={"min_information": {"required": ["question", "document"]}},
    builder="ecellm.data.builders.ap",
)
