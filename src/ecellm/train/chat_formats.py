"""The prompt template of an exported model, in the formats other runtimes read.

A GGUF file carries a Jinja chat template (``tokenizer.chat_template``, used by llama.cpp's
server) and Ollama reads a ``Modelfile`` (a Go ``TEMPLATE`` and ``PARAMETER stop`` lines). Both
are written from the same turn text as ``ecellm serve`` uses (:func:`ecellm.prompts.turn_parts`:
a user message takes the instruction's place), so an exported model is prompted the way it was
tuned. The ``chat`` template keeps the tokenizer's own chat template; its Ollama form is written
for ChatML tokenizers (SmolLM2, Qwen) and left to Ollama's GGUF detection otherwise.
"""

from __future__ import annotations

from pathlib import Path

from ecellm.prompts import STOP_STRINGS, turn_parts

# Meta's Llama-3 Instruct turn format (header tokens, <|eot_id|> after each turn), for training
# the *base* Llama-3-8B in chat form as the follow-up system does; its tokenizer has no template.
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
NAMED_TEMPLATES = {"llama-3": LLAMA3_TEMPLATE}


def chat_template_text(value: str) -> str:
    """A configured chat template: a name in :data:`NAMED_TEMPLATES`, a ``.jinja`` file or Jinja text."""
    if value in NAMED_TEMPLATES:
        return NAMED_TEMPLATES[value]
    if value.endswith(".jinja") and Path(value).is_file():
        return Path(value).read_text(encoding="utf-8")
    return value


def adapter_chat_template(adapter: str | Path) -> str | None:
    """The chat template a training run saved beside its adapter, or None."""
    import json

    folder = Path(adapter)
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    cfg = folder / "tokenizer_config.json"
    if cfg.is_file():
        value = json.loads(cfg.read_text(encoding="utf-8")).get("chat_template")
        return value if isinstance(value, str) else None
    return None

_CHATML_GO = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
)


def jinja_chat_template(template: str, tokenizer_template: str | None = None) -> str | None:
    """The GGUF chat template: each user (or system) turn wrapped in the paper template, each
    assistant turn followed by EOS; ``chat`` returns the tokenizer's own."""
    if template == "chat":
        return tokenizer_template
    prefix, suffix = turn_parts(template)
    return (
        "{% for message in messages %}{% if message['role'] == 'assistant' %}"
        "{{ message['content'] + eos_token }}{% else %}"
        f"{prefix}{{{{ message['content'] }}}}{suffix}"
        "{% endif %}{% endfor %}"
    )


def stop_strings(template: str, tokenizer_template: str | None = None) -> tuple[str, ...]:
    if template != "chat":
        return STOP_STRINGS
    chatml = bool(tokenizer_template) and "<|im_start|>" in str(tokenizer_template)
    return ("<|im_end|>", "<|im_start|>") if chatml else ()


def _quote(text: str) -> str:
    """A Modelfile value: double quotes, or triple quotes when it spans lines or holds a quote."""
    if "\n" in text or '"' in text:
        return f'"""{text}"""'
    return f'"{text}"'


def modelfile(gguf_name: str, template: str, source: str, tokenizer_template: str | None = None) -> str:
    """An Ollama Modelfile for ``gguf_name`` (a file in the same folder)."""
    lines = [
        f"# Ollama Modelfile written by ecellm export: prompt template {template!r} ({source}).",
        "# Create the model with: ollama create NAME -f Modelfile",
        f"FROM ./{gguf_name}",
    ]
    if template != "chat":
        prefix, suffix = turn_parts(template)
        lines.append(f'TEMPLATE """{prefix}{{{{ .Prompt }}}}{suffix}{{{{ .Response }}}}"""')
    elif tokenizer_template and "<|im_start|>" in tokenizer_template:
        lines.append(f'TEMPLATE """{_CHATML_GO}"""')
    else:
        lines.append("# no TEMPLATE: Ollama reads the chat template stored in the GGUF file")
    lines += [f"PARAMETER stop {_quote(s)}" for s in stop_strings(template, tokenizer_template)]
    lines.append("PARAMETER temperature 0")
    return "\n".join(lines) + "\n"
