"""SR: sequential recommendation, pick the next item among 20 candidates. Output: one letter A-T."""

from functools import partial

from ecellm.tasks.base import Task
from ecellm.tasks.parsing import parse_letter

LETTERS = tuple("ABCDEFGHIJKLMNOPQRST")

TASK = Task(
    abbr="SR",
    name="Sequential_Recommendation",
    aliases=("sequential recommendation",),
    category="user understanding",
    metric="HR@1",
    answer_kind="letter",
    instructions=(
        "Given the products a user interacted with, in time order, predict which candidate the user will "
        "interact with next. Answer with the candidate's letter.",
        "Here is a user's purchase history in chronological order. Choose the product from the options "
        "that the user is most likely to buy next, and reply with its letter.",
        "Using the sequence of items the user has reviewed, recommend the next item from the candidate "
        "list. Output only the letter.",
        "Predict the user's next product from the options, based on the order of the products they "
        "engaged with before. Respond with one option letter.",
        "The user's past items are listed from oldest to newest. Which of the candidate items comes next? "
        "Give the option letter.",
    ),
    unseen_instruction=(
        "Considering what this shopper bought before, in order, which option would they pick next? Reply "
        "with its letter alone."
    ),
    decode="choice",
    max_new_tokens=4,
    has_ood=True,
    option_letters=LETTERS,
    parser=partial(parse_letter, letters=LETTERS),
    # the reference's SR builder stores its per-sample options as a Python list repr, not JSON
    extra={"options_format": "repr"},
)
