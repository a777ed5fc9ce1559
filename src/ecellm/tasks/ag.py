"""AG: answer generation for a product question from supporting documents. Output: free text."""

from ecellm.tasks.base import InputField, Task
from ecellm.tasks.parsing import parse_text

TASK = Task(
    abbr="AG",
    name="Answer_Generation",
    aliases=("answer generation",),
    category="product question answering",
    metric="BERTScore F1",
    answer_kind="text",
    instructions=(
        "Answer the shopper's question about the product using only the information in the supporting "
        "documents. Write a short, helpful answer.",
        "Using the given documents as evidence, write a concise answer to the product question.",
        "Read the question and the related snippets, then reply with an answer grounded in those snippets.",
        "Generate a brief answer to the customer's question based on the supporting product documents.",
        "Write the answer a helpful seller would give to this question, relying on the provided documents.",
    ),
    unseen_instruction=(
        "Here is a customer question and some product information. Respond to the question in a sentence "
        "or two, based on that information."
    ),
    decode="generate",
    max_new_tokens=96,
    has_ood=True,
    parser=parse_text,
    inputs=(
        InputField("question", str, "the shopper's question about the product", "is the blender loud?"),
        InputField(
            "document",
            list[str],
            "supporting snippets (reviews, descriptions)",
            ["it is louder than my old one but crushes ice in seconds.", "very noisy on the highest speed."],
            min_items=1,
        ),
    ),
    quality={"min_information": {"required": ["question", "document"]}},
    builder="ecellm.data.builders.ag",
)
