"""The one prompt renderer shared by training and inference, and the one response extractor.

Templates:
- ``alpaca``: the paper's Alpaca-style text (preamble, ``### Instruction:``, ``### Input:``,
  ``### Options:`` when the sample has options, ``### Response:``).
- ``mistral``: the same body wrapped in ``[INST] ... [/INST]`` before the response marker.
- ``chat``: the body as one user turn through the tokenizer's own chat template (for instruct
  models); requires a tokenizer that has one.
- ``alpaca-ref``, ``mistral-ref``: the reference eCeLLM ``Prompter`` output, byte for byte (the
  released eCeLLM checkpoints were tuned on these). They differ from ``alpaca``/``mistral`` in
  two ways: the options field is pasted as the reference stores it (a JSON list string, a
  Python-repr list for SR) instead of one option per line, and the Mistral variant closes with
  ``"\n\n [/INST] ### Response:\n"``.
- ``flan-t5-ref``: the reference's Flan-T5 encoder input, which is the ``alpaca-ref`` text (the
  answer goes to the decoder, so there is no response to split off).

In ``alpaca``/``mistral`` options are rendered one per line, in order, exactly as stored.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from ecellm.data.schema import Sample

Template = Literal["alpaca", "mistral", "chat", "alpaca-ref", "mistral-ref", "flan-t5-ref"]
TEMPLATES: tuple[str, ...] = ("alpaca", "mistral", "chat", "alpaca-ref", "mistral-ref", "flan-t5-ref")
REFERENCE_TEMPLATES: tuple[str, ...] = ("alpaca-ref", "mistral-ref", "flan-t5-ref")

PREAMBLE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
RESPONSE_MARKER = "### Response:"
# Text a model may continue with after its answer; generation stops there.
STOP_STRINGS: tuple[str, ...] = ("### Instruction:", "### Input:", "### Response:", "\n\n\n", "[INST]")


def render_body(sample: Sample) -> str:
    """Instruction, input and options as the sectioned text both paper templates share."""
    parts = [f"### Instruction:\n{sample.instruction}", f"### Input:\n{sample.input}"]
    if sample.options:
        parts.append("### Options:\n" + "\n".join(sample.options))
    return "\n\n".join(parts)


def reference_options(sample: Sample) -> str:
    """The options field as the reference stores and pastes it: the string a loader read from a
    reference file when it differs from the canonical form (``meta["options_text"]``), else the
    canonical form of the reference's builders: ``json.dumps`` of the list, or Python ``repr`` where
    the task says so (``extra['options_format']``);
    ``""`` when there are no options."""
    raw = sample.meta.get("options_text")
    if isinstance(raw, str):
        return raw
    if not sample.options:
        return ""
    from ecellm.tasks import get_task

    as_repr = get_task(sample.task).extra.get("options_format") == "repr"
    return repr(list(sample.options)) if as_repr else json.dumps(list(sample.options))


def render_reference(sample: Sample, template: str) -> str:
    """The reference ``Prompter.generate_prompt`` text: the options section only when the options
    field is non-empty; instruction, input and options substituted as they are."""
    options = reference_options(sample)
    body = f"### Instruction:\n{sample.instruction}\n\n### Input:\n{sample.input}\n\n"
    if options:
        body += f"### Options:\n{options}\n\n"
    if template == "mistral-ref":
        return f"[INST] {PREAMBLE}\n\n{body} [/INST] {RESPONSE_MARKER}\n"
    return f"{PREAMBLE}\n\n{body}{RESPONSE_MARKER}\n"


def render_prompt(sample: Sample, template: str = "alpaca", tokenizer: Any = None) -> str:
    """Everything the model sees before its answer. A task family that renders its own prompts
    (ShopBench: whole questions under a system prompt) is asked through its ``render`` hook, so
    training and inference build the same text."""
    from ecellm.tasks import get_task

    own = get_task(sample.task).extra.get("render")
    if own is not None:
        return own(sample, tokenizer, template)
    if template in REFERENCE_TEMPLATES:
        return render_reference(sample, template)
    body = render_body(sample)
    if template == "alpaca":
        return f"{PREAMBLE}\n\n{body}\n\n{RESPONSE_MARKER}\n"
    if template == "mistral":
        return f"[INST] {PREAMBLE}\n\n{body} [/INST]\n\n{RESPONSE_MARKER}\n"
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "template 'chat' needs a tokenizer with a chat template; use 'alpaca' or 'mistral'"
            )
        messages = [{"role": "user", "content": f"{PREAMBLE}\n\n{body}"}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise ValueError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")


def turn_parts(template: str) -> tuple[str, str]:
    """The text around one user turn in a paper template: ``prefix + content + suffix``.

    The turn's content takes the instruction's place, so a message ``"Judge.\n\n### Input:\nNice."``
    renders exactly as a sample with that instruction and input would; the server's chat endpoint
    and the chat template written into exported GGUF files both use these parts."""
    if template not in TEMPLATES or template == "chat":
        raise ValueError(f"template {template!r} has no fixed turn text")
    head = f"{PREAMBLE}\n\n### Instruction:\n"
    if template == "mistral":
        return f"[INST] {head}", f" [/INST]\n\n{RESPONSE_MARKER}\n"
    if template == "mistral-ref":
        return f"[INST] {head}", f"\n\n [/INST] {RESPONSE_MARKER}\n"
    return head, f"\n\n{RESPONSE_MARKER}\n"


def render_chat(messages: list[dict[str, str]], template: str, tokenizer: Any = None) -> str:
    """Chat messages as the prompt a model tuned with ``template`` expects. ``chat`` uses the
    tokenizer's own chat template; the paper templates are single-turn, so system texts and the
    user message are joined into one turn and an assistant turn is refused."""
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("this model's tokenizer has no chat template; use /v1/completions")
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if any(m["role"] not in ("system", "user") for m in messages):
        raise ValueError(f"template {template!r} is single-turn: send system and user messages only")
    prefix, suffix = turn_parts(template)
    return prefix + "\n\n".join(m["content"] for m in messages) + suffix


def render_target(sample: Sample, eos_token: str | None = None, template: str | None = None) -> str:
    """The training target that follows the prompt: the gold output, then EOS. A task may write
    its answer differently under ``template`` (``Task.answer_forms``: AVE under ``flan-t5-ref``
    drops its braces, see :func:`ecellm.tasks.parsing.braceless`)."""
    from ecellm.tasks import get_task

    form = get_task(sample.task).answer_forms.get(template or "")
    output = form.encode(sample.output) if form is not None else sample.output
    return output + (eos_token or "")


def extract_response(text: str, stop: tuple[str, ...] = STOP_STRINGS) -> str:
    """The answer part of generated text: after the last response marker, before any stop string.

    Accepts either the full decoded sequence (prompt included) or only the new tokens.
    """
    if RESPONSE_MARKER in text:
        text = text.rsplit(RESPONSE_MARKER, 1)[1]
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut].strip()
