"""Backend registry: one name per engine, imported only when asked for.

``hf`` (transformers, this package's default), ``llamacpp`` (llama-cpp-python on a GGUF file),
``openai`` (any OpenAI-compatible API, e.g. GPT-4 or ``ecellm serve``) and ``vllm`` (GPU). The
optional engines' libraries are not installed by default, so their modules are imported lazily
and a missing library is reported by the backend itself with its install command.
"""

from __future__ import annotations

import importlib
from typing import Any

from ecellm.errors import InputError

BACKENDS: dict[str, str] = {
    "hf": "ecellm.infer.hf:HFBackend",
    "llamacpp": "ecellm.infer.llamacpp:LlamaCppBackend",
    "openai": "ecellm.infer.openai_backend:OpenAIBackend",
    "vllm": "ecellm.infer.vllm_backend:VLLMBackend",
}


def backend_class(name: str) -> type:
    """The class registered under ``name``."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}", field="backend")
    module, _, cls = BACKENDS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"backend {name!r} is not available: {exc}", field="backend") from exc


def get_backend(name: str, **kw: Any) -> Any:
    """Build a backend by name.

    ``hf`` takes ``loaded`` (a :class:`~ecellm.models.loading.LoadedModel`) or ``model`` (any
    spec :func:`~ecellm.models.registry.resolve_model` accepts) plus ``adapter``,
    ``trust_remote_code``, ``batch_size`` and ``threads``; the other backends receive ``kw`` as
    their constructors define it.
    """
    cls = backend_class(name)
    if name != "hf":
        return cls(**kw)
    loaded = kw.pop("loaded", None)
    load_kw = {k: kw.pop(k) for k in ("adapter", "trust_remote_code", "dtype", "device") if k in kw}
    spec = kw.pop("model", None)
    if loaded is None:
        from ecellm.models.loading import load_model_and_tokenizer

        loaded = load_model_and_tokenizer(spec, **load_kw)
    return cls(loaded, **kw)
