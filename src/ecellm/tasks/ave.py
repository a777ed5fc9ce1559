"""AVE: attribute value extraction. Output: JSON list of {attribute, value, source}, lower-cased."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ecellm.tasks.base import AnswerForm, InputField, Task
from ecellm.tasks.constraints import AttributeValues, name_ok
from ecellm.tasks.parsing import braceless, parse_json_list, restore_braces

if TYPE_CHECKING:
    from ecellm.tasks.sample import Sample


def constraint(sample: Sample) -> AttributeValues | None:
    """The sample's target attributes (lower-cased, as gold outputs are) and its text fields as
    sources, or ``None`` if the input is not a JSON object naming target attributes.

    The input is a JSON object of text fields plus ``"target attributes"`` (``"a and b"``);
    builders also keep the list in ``meta["target_attributes"]``, which wins.
    """
    try:
        payload = json.loads(sample.input)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(payload, dict):
        return None
    targets = (sample.meta or {}).get("target_attributes")
    if not targets:
        raw = payload.get("target attributes") or payload.get("target attribute")
        if not isinstance(raw, str) or not raw.strip():
            return None
        targets = [t.strip() for part in raw.split(" and ") for t in part.split(",") if t.strip()]
    attrs = [a for a in dict.fromkeys(str(t).strip().lower() for t in targets) if name_ok(a)]
    sources = sorted(k for k in payload if isinstance(k, str) and not k.startswith("target attribute"))
    if not attrs:
        return None
    return AttributeValues(tuple(attrs), tuple(s for s in sources if name_ok(s)))


def compose(fields: dict[str, Any]) -> dict[str, Any]:
    """The product's text fields plus ``"target attributes": "a and b"``, as the builder writes
    them; the list also goes to ``meta`` as builders keep it."""
    targets = list(fields["target_attributes"])
    payload = {**fields["product"], "target attributes": " and ".join(targets)}
    return {"input": json.dumps(payload, ensure_ascii=False), "meta": {"target_attributes": targets}}


TASK = Task(
    abbr="AVE",
    name="Attribute_Value_Extraction",
    aliases=("attribute value extraction",),
    category="product understanding",
    metric="F1",
    answer_kind="attribute_values",
    instructions=(
        "Read the product information and find the value of each target attribute. Answer with a JSON "
        "list of objects with the keys attribute, value and source (the field the value comes from); "
        "if an attribute has no value in the text, use \"None\" for value and source.",
        "For every target attribute, extract its value from the given product text and say which field "
        "it was found in. Reply with a JSON list of {\"attribute\", \"value\", \"source\"} objects, "
        "using \"None\" when the value is absent.",
        "You are given a product's text fields and a list of target attributes. Return, as a JSON list, "
        "one object per attribute holding the attribute name, the value span copied from the text, and "
        "the source field; write \"None\" for value and source when nothing matches.",
        "Identify the spans in the product description that state the requested attributes. Output a "
        "JSON array of objects with attribute, value and source; an attribute that is not mentioned gets "
        "value \"None\" and source \"None\".",
        "Extract attribute values for the listed target attributes from the product fields. The answer "
        "is a JSON list where each item has attribute, value (copied from the text) and source (the "
        "field name), with \"None\" for both when the attribute is missing.",
    ),
    unseen_instruction=(
        "Look through the product data and pull out what it says about each requested attribute. Give a "
        "JSON list of objects {attribute, value, source}; put \"None\" in value and source for any "
        "attribute the text does not mention."
    ),
    decode="constrained",
    max_new_tokens=160,
    has_ood=True,
    parser=parse_json_list,
    constraint=constraint,
    inputs=(
        InputField(
            "product",
            dict[str, str],
            "the product's text fields by name (the name is the answer's source)",
            {
                "product title": "trail runner women's lightweight mesh running shoe, grey",
                "product description": "breathable mesh upper, cushioned sole for road and trail",
            },
            min_items=1,
        ),
        InputField(
            "target_attributes",
            list[str],
            "the attributes to find",
            ["color", "gender"],
            min_items=1,
        ),
    ),
    compose=compose,
    # catalog text (titles, item lists, specs) is brand names and units, not prose: on the real
    # data every draft langid flagged here was English ("Texas Roadhouse Gift Card ..." -> Dutch
    # 0.999), so the language step judges review and question text only
    quality={"english_only": {"enabled": False}, "min_information": {"required": ["product title"]}},
    # T5's vocabulary has no braces: the reference trains Flan-T5 on braceless answers
    answer_forms={"flan-t5-ref": AnswerForm(encode=braceless, decode=restore_braces)},
    builder="ecellm.data.builders.ave",
)
