"""Chat templates a run can set on a base tokenizer, and the one an adapter folder carries."""

from __future__ import annotations

import json

from ecellm.train.chat_formats import LLAMA3_TEMPLATE, adapter_chat_template, chat_template_text


def test_named_file_and_inline_templates(tmp_path):
    assert chat_template_text("llama-3") == LLAMA3_TEMPLATE
    (tmp_path / "t.jinja").write_text("{{ messages }}", encoding="utf-8")
    assert chat_template_text(str(tmp_path / "t.jinja")) == "{{ messages }}"
    assert chat_template_text("{{ x }}") == "{{ x }}"


def test_llama3_template_renders_system_user_and_generation_prompt():
    from jinja2 import Template

    text = Template(LLAMA3_TEMPLATE).render(
        messages=[{"role": "system", "content": "Be brief. "}, {"role": "user", "content": "Hi"}],
        bos_token="<|begin_of_text|>",
        add_generation_prompt=True,
    )
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_adapter_folder_template(tmp_path):
    assert adapter_chat_template(tmp_path) is None
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "T"}), encoding="utf-8")
    assert adapter_chat_template(tmp_path) == "T"
    (tmp_path / "chat_template.jinja").write_text("J", encoding="utf-8")
    assert adapter_chat_template(tmp_path) == "J"
