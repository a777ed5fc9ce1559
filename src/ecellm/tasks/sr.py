"""SR: sequential recommendation, pick the next item among 20 candidates. Output: one letter A-T."""

import json
from functools import partial
from typing import Any

from ecellm.tasks.base import InputField, Task
from ecellm.tasks.parsing import parse_letter

LETTERS = tuple("ABCDEFGHIJKLMNOPQRST")


def ordinal(n: int) -> str:
    """1 -> "1st", 2 -> "2nd", 3 -> "3rd", 11 -> "11th", 22 -> "22nd"."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def compose(fields: dict[str, Any]) -> dict[str, Any]:
    """The history as the builder writes it (``"1st: item"``, oldest first, a JSON list) and the
    candidates as lettered options (``"A: item"``)."""
    history = [f"{ordinal(i)}: {item}" for i, item in enumerate(fields["history"], start=1)]
    return {
        "input": json.dumps(history, ensure_ascii=False),
        "options": [f"{LETTERS[i]}: {item}" for i, item in enumerate(fields["candidates"])],
    }

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
    inputs=(
        InputField(
            "history",
            list[str],
            "the items the user interacted with, oldest first",
            [
                "Olive Garden gift card | category: Gift Cards",
                "Red Lobster gift card | category: Gift Cards",
                "Outback Steakhouse gift card | category: Gift Cards",
            ],
            min_items=1,
        ),
        InputField(
            "candidates",
            list[str],
            f"the candidate next items (2 to {len(LETTERS)}), lettered A, B, ... in this order",
            [
                "Netflix gift card | category: Gift Cards | brand: Netflix",
                "Home Depot gift card | category: Gift Cards | brand: Home Depot",
                "Cheesecake Factory gift card | category: Gift Cards | brand: The Cheesecake Factory",
                "Steam wallet code | category: Gift Cards",
            ],
            min_items=2,
            max_items=len(LETTERS),
        ),
    ),
    compose=compose,
    # catalog text (titles, item lists, specs) is brand names and units, not prose: on the real
    # data every draft langid flagged here was English ("Texas Roadhouse Gift Card ..." -> Dutch
    # 0.999), so the language step judges review and question text only
    quality={"english_only": {"enabled": False}},
    scoring="hit_rate",
    builder="ecellm.data.builders.sr",
)
