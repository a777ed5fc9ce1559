"""Incremental detokenisation for streamed replies, on SmolLM2's byte-level BPE tokenizer."""

from __future__ import annotations

from ecellm.serve.streaming import DONE, TextStream, event


def stream_all(tok, text: str, stop: list[str]) -> tuple[list[str], TextStream]:
    ts = TextStream(tok, stop, tok.eos_token_id)
    return [ts.push(t) for t in tok(text, add_special_tokens=False)["input_ids"]], ts


def test_deltas_rebuild_the_text_without_broken_characters(smollm2):
    tok = smollm2.tokenizer
    text = "Größe: 42 — très bien 😀 ok"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text.split())  # some characters span several tokens
    deltas, ts = stream_all(tok, text, [])
    assert "".join(deltas) == text
    assert not any("\ufffd" in d for d in deltas)
    assert ts.finish(text) == ""


def test_a_stop_string_split_over_tokens_is_never_sent(smollm2):
    tok = smollm2.tokenizer
    text = "Answer: yes\n### Instruction: more"
    deltas, ts = stream_all(tok, text, ["### Instruction"])
    assert "".join(deltas) == "Answer: yes\n" and ts.ended
    assert all("#" not in d for d in deltas)
    assert ts.push(tok.eos_token_id) == ""  # nothing after the stop


def test_held_back_text_is_released_at_the_end(smollm2):
    tok = smollm2.tokenizer
    text = "Paris is the capital"
    deltas, ts = stream_all(tok, text, ["capitals"])  # the tail could still grow into the stop
    sent = "".join(deltas)
    assert text.startswith(sent) and len(sent) < len(text)
    assert sent + ts.finish(text) == text


def test_end_of_sequence_ends_the_stream(smollm2):
    tok = smollm2.tokenizer
    ts = TextStream(tok, [], tok.eos_token_id)
    first = tok("Hi", add_special_tokens=False)["input_ids"][0]
    assert ts.push(first) == "Hi"
    assert ts.push(tok.eos_token_id) == "" and ts.push(first) == "" and ts.ended


def test_event_format():
    assert event({"a": "é"}) == 'data: {"a": "é"}\n\n' and DONE == "data: [DONE]\n\n"
