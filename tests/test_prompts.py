"""The shared prompt renderer and response extractor."""

from __future__ import annotations

import pytest

from ecellm.data.schema import Sample
from ecellm.prompts import PREAMBLE, extract_response, render_prompt, render_target


def _sample(**kw) -> Sample:
    base = {
        "id": "SA-1",
        "task": "SA",
        "instruction": "Judge the review.",
        "input": "Great pan.",
        "options": ["A: very positive", "B: positive"],
        "output": "A: very positive",
    }
    return Sample(**{**base, **kw})


def test_alpaca_layout_exactly() -> None:
    got = render_prompt(_sample(), "alpaca")
    assert got == (
        f"{PREAMBLE}\n\n### Instruction:\nJudge the review.\n\n### Input:\nGreat pan.\n\n"
        "### Options:\nA: very positive\nB: positive\n\n### Response:\n"
    )


def test_options_section_only_when_there_are_options() -> None:
    got = render_prompt(_sample(task="PSI", options=[], output="yes"), "alpaca")
    assert "### Options:" not in got and got.endswith("### Input:\nGreat pan.\n\n### Response:\n")


def test_mistral_wraps_the_same_body() -> None:
    got = render_prompt(_sample(), "mistral")
    assert got.startswith(f"[INST] {PREAMBLE}\n\n### Instruction:") and got.endswith(
        " [/INST]\n\n### Response:\n"
    )


def test_chat_template_needs_a_tokenizer_with_one() -> None:
    with pytest.raises(ValueError, match="chat template"):
        render_prompt(_sample(), "chat")
    with pytest.raises(ValueError, match="unknown template"):
        render_prompt(_sample(), "vicuna")


class _ChatTok:
    chat_template = "x"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert not tokenize and add_generation_prompt
        return "<user>" + messages[0]["content"] + "</user><assistant>"


def test_chat_template_uses_the_tokenizer() -> None:
    got = render_prompt(_sample(), "chat", _ChatTok())
    assert got.startswith(f"<user>{PREAMBLE}\n\n### Instruction:") and got.endswith("</user><assistant>")


def test_target_is_output_then_eos() -> None:
    assert render_target(_sample(), "</s>") == "A: very positive</s>"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("prompt ... ### Response:\n B \n### Instruction: more", "B"),
        (" yes\n\n\n\nrambling", "yes"),
        ("A,B [INST] again", "A,B"),
        ("", ""),
        ("### Response:\n### Response:\nno", "no"),
    ],
)
def test_extract_response(text: str, want: str) -> None:
    assert extract_response(text) == want
