"""The prompt template of an exported model, in the formats other runtimes read.

A GGUF file carries a Jinja chat template (``tokenizer.chat_template``, used by llama.cpp's
server) and Ollama reads a ``Modelfile`` (a Go ``TEMPLATE`` and ``PARAMETER stop`` lines). Both
are written from the same turn text as ``ecellm serve`` uses (:func:`ecellm.prompts.turn_parts`:
a user message takes the instruction's place), so an exported model is prompted the way it was
tuned. The ``chat`` template keeps the tokenizer's own chat template; its Ollama form is written
for ChatML tokenizers (SmolLM2, Qwen) and left to Ollama's GGUF detection otherwise.
"""

from __future__ import annotations

from ecellm.prompts import STOP_STRINGS, turn_parts

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
