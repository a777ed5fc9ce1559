"""PRP: product relation prediction between two products. Output: one option letter."""

from functools import partial

from ecellm.tasks.base import InputField, Task
from ecellm.tasks.parsing import parse_letter

OPTIONS = (
    "A: Users who buy product 1 also tend to buy product 2.",
    "B: Users who view product 1 also tend to view product 2.",
    "C: Product 1 is similar to product 2.",
)
LETTERS = ("A", "B", "C")

TASK = Task(
    abbr="PRP",
    name="Product_Relation_Prediction",
    aliases=("Product_Relation_Predicition", "product relation prediction"),
    category="product understanding",
    metric="macro F1",
    answer_kind="letter",
    instructions=(
        "Given the titles of two products, choose the option that best describes how they are related. "
        "Answer with the option letter only.",
        "Decide which relation holds between product 1 and product 2 from their titles, and reply with "
        "the letter of the matching option.",
        "Two product titles are shown. Pick the relation between them from the options and output just "
        "its letter.",
        "Based on the two product titles, predict whether shoppers buy them together, view them together, "
        "or regard them as similar. Respond with the corresponding option letter.",
        "Classify the relationship between the two listed products using the options provided; give only "
        "the option letter.",
    ),
    unseen_instruction=(
        "Looking at these two product names, which of the listed relations connects them? Reply with the "
        "single option letter."
    ),
    decode="choice",
    max_new_tokens=4,
    has_ood=True,
    options=OPTIONS,
    option_letters=LETTERS,
    parser=partial(parse_letter, letters=LETTERS, options=OPTIONS),
    inputs=(
        InputField("product_1", str, "the first product's title", "Starbucks gift card", key="Product 1:"),
        InputField(
            "product_2", str, "the second product's title", "Dunkin coffee gift card", key="Product 2:"
        ),
    ),
    # catalog text (titles, item lists, specs) is brand names and units, not prose: on the real
    # data every draft langid flagged here was English ("Texas Roadhouse Gift Card ..." -> Dutch
    # 0.999), so the language step judges review and question text only
    quality={
        "english_only": {"enabled": False},
        "min_information": {"required": ["Product 1:", "Product 2:"]},
    },
    builder="ecellm.data.builders.prp",
)
