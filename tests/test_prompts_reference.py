"""``alpaca-ref`` / ``mistral-ref`` reproduce the reference eCeLLM Prompter byte for byte.

The expected texts come from the reference's template files (``templates/alpaca.json`` and
``templates/mistral.json``: ``prompt_input`` when the options field is non-empty,
``prompt_no_options`` otherwise, filled with ``str.format``), written out here as data, and
from rows in the reference's storage format (options as the JSON or Python-repr string the
reference keeps), read through ecellm's loader.
"""

from __future__ import annotations

import json

import pytest

from ecellm.data.loaders import row_to_sample
from ecellm.prompts import render_prompt
from ecellm.tasks import get_task

_PRE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
)
REF = {
    "alpaca-ref": {
        "prompt_input": _PRE + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
        "### Options:\n{options}\n\n### Response:\n",
        "prompt_no_options": _PRE
        + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
    },
    "mistral-ref": {
        "prompt_input": "[INST] "
        + _PRE
        + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Options:\n{options}\n\n [/INST] "
        "### Response:\n",
        "prompt_no_options": "[INST] "
        + _PRE
        + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n [/INST] ### Response:\n",
    },
}


def reference_prompt(template: str, instruction: str, input: str, options: str) -> str:
    t = REF[template]
    if options:
        return t["prompt_input"].format(instruction=instruction, input=input, options=options)
    return t["prompt_no_options"].format(instruction=instruction, input=input)


SA_OPTIONS = '["A: very positive", "B: positive", "C: neutral", "D: negative", "E: very negative"]'
PRP_OPTIONS = (
    '["A: Users who buy product 1 also tend to buy product 2.", "B: Users who view product 1 also tend to '
    'view product 2.", "C: Product 1 is similar to product 2."]'
)
MPC_OPTIONS = (
    '["A: The product is relevant to the query, and satisfies all the query specifications.", '
    '"B: The product is somewhat relevant. It fails to fulfill some aspects of the query but the product '
    'can be used as a functional substitute.", "C: The product does not fulfill the query, but could be '
    'used in combination with a product exactly matching the query.", "D: The product is irrelevant to '
    'the query."]'
)
# Python-repr list as the reference stores SR options: quotes switch around an apostrophe, non-ASCII kept
SR_OPTIONS = str(
    [f"{chr(65 + i)}: Gift card {i}. Gift Cards. Amazon." for i in range(18)]
    + ["S: Olivia's Heartland Deluxe Crème Burlap Tree Skirt.", 'T: Dr.Fish Teaser 6" Built-in LED Light.']
)
DOC = json.dumps({"question": "Is it dishwasher safe?", "document": ["Hand wash only.", "Ceramic."]})

# One row per task, in the reference's storage format: (task, input, options, output)
ROWS = [
    (
        "Attribute_Value_Extraction",
        json.dumps(
            {
                "product title": "Nike Air red shoes",
                "product description": "Red.",
                "target attributes": "Color",
            }
        ),
        "",
        '[{"attribute": "color", "value": "red", "source": "product title"}]',
    ),
    (
        "Product_Relation_Predicition",
        json.dumps({"Product 1:": "Gift card a", "Product 2:": "Gift card b"}),
        PRP_OPTIONS,
        "A",
    ),
    (
        "Product_Matching",
        json.dumps({"product 1": {"title": "x", "price": None}, "product 2": {"title": "y", "price": 9.5}}),
        "",
        "no",
    ),
    (
        "Sentiment_Analysis",
        "Great pan, heats evenly and cleans up in seconds.",
        SA_OPTIONS,
        "A: very positive",
    ),
    ("Sequential_Recommendation", str(["1st: Gift card red", "2nd: Gift card blue"]), SR_OPTIONS, "T"),
    (
        "Multiclass_Product_Classification",
        json.dumps({"query": "red mug", "product title": "Red ceramic mug"}),
        MPC_OPTIONS,
        MPC_OPTIONS.split('", "')[0][2:],
    ),
    ("Product_Substitue_Identification", json.dumps({"query": "red mug", "product": "Blue mug"}), "", "yes"),
    (
        "Query_Product_Ranking",
        json.dumps({"query": "red mug", "product list": ["A: Red mug", "B: Hose", "C: Blue mug"]}),
        "",
        "A,C,B",
    ),
    ("Answerability_Prediction", DOC, "", "no"),
    ("Answer_Generation", DOC, "", "No, wash it by hand."),
]
# The reference's held-out (Unseen) instruction of each task, as its data notebooks printed them.
UNSEEN = {
    "AVE": "Retrieve the value associated with the target attribute from the product information and specify "
    "the source (e.g., title, description, feature, or title) where the value was found.",
    "PRP": "Analyze the titles of Product 1 and Product 2 and select the option that indicates the relation "
    "of the two products.",
    "PM": "Determine whether the two products are the same by comparing their title, description, "
    "manufacturer, and price, and provide a simple yes or no answer as the output.",
    "SA": "Analyze the user's review and determine the sentiment based on the listed options.",
    "SR": "Estimate the user's intent based on the user's purchase history, and predict the next product "
    "that the user is most likely to purchase from the given options.",
    "MPC": "Compare the query and the product title to determine if the product fully meets the query "
    "specifications. Choose the option that best describes the relevance between them.",
    "PSI": "Assess whether the product is a substitute for the query and provide a yes or no response.",
    "QPR": "Evaluate the query against each product's title, determine the relevance between the query and "
    "the product, and organize the products in descending order of relevance, ensuring that the product "
    "with the highest relevance is positioned at the top of the list.",
    "AP": "Predict whether it is possible to answer the given question using the supporting document, and "
    "output a yes or no response.",
    "AG": "Utilize the information provided in the supporting document to generate an answer to the given "
    "question.",
}
SA_UNSEEN = UNSEEN["SA"]


def _cases():
    for task, inp, opts, out in ROWS:
        abbr = get_task(task).abbr
        unseen = UNSEEN[abbr]
        for setting, instr in (
            ("IND_Diverse_Instruction", get_task(task).instructions[1]),
            ("IND_Unseen_Instruction", unseen),
        ):
            for template in ("alpaca-ref", "mistral-ref"):
                yield pytest.param(
                    task, setting, instr, inp, opts, out, template, id=f"{abbr}-{setting}-{template}"
                )


@pytest.mark.parametrize(("task", "setting", "instr", "inp", "opts", "out", "template"), list(_cases()))
def test_reference_templates_match_the_reference_prompter(task, setting, instr, inp, opts, out, template):
    row = {
        "id": "x",
        "task": task,
        "setting": setting,
        "split": "test",
        "instruction": instr,
        "input": inp,
        "options": opts,
        "output": out,
    }
    sample = row_to_sample(row, file="ref.json", record=1)
    assert bool(sample.options) == bool(opts)
    assert "options_text" not in sample.meta  # the canonical re-rendering is exact for these rows
    assert render_prompt(sample, template) == reference_prompt(template, instr, inp, opts)


def test_literal_sa_prompts():
    row = {
        "id": "x",
        "task": "Sentiment_Analysis",
        "setting": "IND_Unseen_Instruction",
        "split": "test",
        "instruction": SA_UNSEEN,
        "input": "Nice.",
        "options": SA_OPTIONS,
        "output": "A: very positive",
    }
    s = row_to_sample(row, file="ref.json", record=1)
    body = (
        "### Instruction:\nAnalyze the user's review and determine the sentiment based on the listed options."
        "\n\n### Input:\nNice.\n\n### Options:\n"
        '["A: very positive", "B: positive", "C: neutral", "D: negative", "E: very negative"]\n\n'
    )
    assert render_prompt(s, "alpaca-ref") == _PRE + body + "### Response:\n"
    assert render_prompt(s, "mistral-ref") == "[INST] " + _PRE + body + " [/INST] ### Response:\n"
    assert render_prompt(s, "flan-t5-ref") == render_prompt(s, "alpaca-ref")
    # ecellm's own templates keep one option per line
    assert "### Options:\nA: very positive\nB: positive\n" in render_prompt(s, "alpaca")


def test_options_string_the_canonical_form_cannot_recreate_is_pasted_as_stored():
    opts = json.dumps(["A: très positif", "B: positif"], ensure_ascii=False, separators=(",", ":"))
    row = {
        "id": "x",
        "task": "SA",
        "setting": "IND_Diverse_Instruction",
        "split": "test",
        "instruction": "i",
        "input": "n",
        "options": opts,
        "output": "A: très positif",
    }
    s = row_to_sample(row, file="ref.json", record=1)
    assert s.options == ["A: très positif", "B: positif"] and s.meta["options_text"] == opts
    assert render_prompt(s, "alpaca-ref") == reference_prompt("alpaca-ref", "i", "n", opts)


def test_samples_built_as_lists_render_in_the_reference_storage_form():
    from ecellm.data.schema import Sample

    sr = Sample(id="s", task="SR", instruction="i", input="h", options=["A: it's", 'B: "x"'], output="A")
    sa = Sample(id="a", task="SA", instruction="i", input="n", options=["A: é"], output="A: é")
    assert "### Options:\n" + str(["A: it's", 'B: "x"']) + "\n\n" in render_prompt(sr, "alpaca-ref")
    assert '### Options:\n["A: \\u00e9"]\n\n' in render_prompt(sa, "alpaca-ref")
