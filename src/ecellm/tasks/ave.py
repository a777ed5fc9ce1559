"""AVE: attribute value extraction. Output: JSON list of {attribute, value, source}, lower-cased."""

from ecellm.tasks.base import Task
from ecellm.tasks.parsing import parse_json_list

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
)
