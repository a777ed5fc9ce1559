"""PM: product matching (do two listings describe the same product?). Output: yes/no."""

from ecellm.tasks.base import InputField, Task
from ecellm.tasks.parsing import parse_yes_no

TASK = Task(
    abbr="PM",
    name="Product_Matching",
    aliases=("product matching",),
    category="product understanding",
    metric="F1",
    answer_kind="yes_no",
    instructions=(
        "Decide whether product 1 and product 2 are the same real-world product, using their titles, "
        "descriptions, manufacturers and prices. Answer yes or no.",
        "Do these two product listings refer to the same item? Reply with yes or no.",
        "Compare the two product records and answer yes if they describe one identical product, "
        "otherwise no.",
        "Given two product entries from different stores, determine whether they match. Output yes or no.",
        "Check whether the two products below are the same product sold under different listings; "
        "respond with yes or no only.",
    ),
    unseen_instruction=("Are the two listed products one and the same item? Answer with yes or no."),
    decode="choice",
    max_new_tokens=3,
    has_ood=False,
    parser=parse_yes_no,
    inputs=(
        InputField(
            "product_1",
            dict[str, str | int | float | None],
            "the first listing: title, description, manufacturer, price",
            {
                "title": "adobe photoshop elements 12 (win/mac)",
                "description": "edit photos with guided edits",
                "manufacturer": "adobe",
                "price": 79.99,
            },
            key="product 1",
        ),
        InputField(
            "product_2",
            dict[str, str | int | float | None],
            "the second listing, same keys",
            {
                "title": "photoshop elements 12",
                "description": None,
                "manufacturer": "adobe systems",
                "price": 74.95,
            },
            key="product 2",
        ),
    ),
    # catalog text (titles, item lists, specs) is brand names and units, not prose: on the real
    # data every draft langid flagged here was English ("Texas Roadhouse Gift Card ..." -> Dutch
    # 0.999), so the language step judges review and question text only
    quality={
        "english_only": {"enabled": False},
        "min_information": {"required": ["product 1.title", "product 2.title"]},
    },
    builder="ecellm.data.builders.pm",
)
