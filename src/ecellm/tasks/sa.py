"""SA: review sentiment on a five-point scale. Output: the full option string, e.g. ``B: positive``."""

from functools import partial

from ecellm.tasks.base import InputField, Task
from ecellm.tasks.parsing import parse_letter

OPTIONS = ("A: very positive", "B: positive", "C: neutral", "D: negative", "E: very negative")
LETTERS = ("A", "B", "C", "D", "E")
# Star rating of each option, used by builders (5 stars -> A).
STARS = {"A": 5, "B": 4, "C": 3, "D": 2, "E": 1}

TASK = Task(
    abbr="SA",
    name="Sentiment_Analysis",
    aliases=("sentiment analysis",),
    category="user understanding",
    metric="macro F1",
    answer_kind="option",
    instructions=(
        "Read the customer review and choose the option that matches the sentiment it expresses. Answer "
        "with the full option.",
        "What sentiment does this product review express? Select one of the options and write it out.",
        "Classify the review's overall sentiment into one of the five given levels and reply with that "
        "option.",
        "Given a shopper's review, judge how positive or negative it is and output the matching option.",
        "Assign the review to the sentiment option that fits it best; respond with the option as written.",
    ),
    unseen_instruction=(
        "How does the writer of this review feel about the product? Pick the fitting option and repeat it."
    ),
    decode="choice",
    max_new_tokens=8,
    has_ood=True,
    options=OPTIONS,
    option_letters=LETTERS,
    parser=partial(parse_letter, letters=LETTERS, options=OPTIONS),
    inputs=(
        InputField(
            "review",
            str,
            "the review text",
            "Fits my phone perfectly and the buttons still click. Great case for the price.",
        ),
    ),
    compose=lambda fields: {"input": fields["review"]},
    # near-duplicate reviews are found by word shingles (MinHash + Jaccard), not exact hashes
    quality={"near_duplicates": {"method": "shingles"}},
    builder="ecellm.data.builders.sa",
)
