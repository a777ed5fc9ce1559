"""Inference engines, one file each, opened by name through :func:`open_backend`.

``hf`` (transformers, this package's default), ``llamacpp`` (llama-cpp-python on a GGUF file),
``openai`` (any OpenAI-compatible API, e.g. GPT-4 or ``ecellm serve``) and ``vllm`` (GPU). The
optional engines' libraries are not installed by default, so their modules are imported lazily
and a missing library is reported by the backend itself with its install command.

Why one opening function: the rest of the package (predict loop, Python API, CLI, calibration,
decoding presets) never compares backend names. It opens a backend here and then asks the
object (or, before anything loads, :func:`capabilities`) what it can do: ``supported_modes``,
``supports_sampling``, the options its ``open`` accepts. A new engine is one file in this
folder with a class that has ``open(model, *, adapter, dtype, batch_size, **options)`` and the
:class:`~ecellm.infer.base.Backend` methods, plus one line in :data:`BACKENDS`.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from ecellm.errors import InputError

BACKENDS: dict[str, str] = {
    "hf": "hf:HFBackend",
    "llamacpp": "llamacpp:LlamaCppBackend",
    "openai": "openai:OpenAIBackend",
    "vllm": "vllm:VLLMBackend",
}


class MissingDependency(InputError, ImportError):
    """An optional engine is not installed; the message says which extra to install.

    It is an :class:`InputError` so the CLI prints one line and exits non-zero, and an
    :class:`ImportError` so library callers can catch it as the missing import it is.
    """


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, known before it loads anything (class attributes and the
    signature of its ``open``). ``modes`` may shrink once opened (an API backend without
    log-probabilities cannot score choices): ask the opened object's ``supported_modes``."""

    name: str
    modes: frozenset[str]
    supports_sampling: bool
    options: frozenset[str]


def _class(name: str) -> type:
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}", field="backend")
    module, _, cls = BACKENDS[name].partition(":")
    try:
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"backend {name!r} is not available: {exc}", field="backend") from exc


def capabilities(name: str) -> Capabilities:
    """The capabilities of the backend registered as ``name`` (an unknown name is an
    :class:`InputError` listing the known ones); nothing is loaded."""
    cls = _class(name)
    options = set()
    for fn in (cls.open, cls.__init__):
        for p in inspect.signature(fn).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                options.add(p.name)
    return Capabilities(
        name=name,
        modes=frozenset(getattr(cls, "supported_modes", frozenset({"generate"}))),
        supports_sampling=bool(getattr(cls, "supports_sampling", False)),
        options=frozenset(options),
    )


def check_options(name: str, options: dict[str, Any] | Any) -> None:
    """Refuse options ``name``'s backend does not take, before anything loads."""
    known = capabilities(name).options
    unknown = sorted(k for k in options if k not in known)
    if unknown:
        raise InputError(
            f"backend {name!r} takes no option {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(sorted(known))}",
            field="backend",
        )


def open_backend(
    name: str,
    model: Any = None,
    *,
    adapter: str | None = None,
    dtype: str = "auto",
    batch_size: int | None = None,
    **options: Any,
) -> Any:
    """Open the backend registered as ``name`` on ``model``.

    ``model`` is what the backend runs: for ``hf`` any spec
    :func:`~ecellm.models.registry.resolve_model` accepts or an already loaded
    :class:`~ecellm.models.loading.LoadedModel`; for ``llamacpp`` a ``.gguf`` file or an
    embedded GGUF name; for ``openai`` and ``vllm`` the model name. Every backend is asked
    about ``adapter`` and ``dtype`` (``auto`` = its default) and refuses what it cannot
    honour (a fully fine-tuned folder given as ``adapter`` becomes the model); ``batch_size``
    is a hint (None = the backend's default) that backends which do not batch ignore;
    ``options`` are the backend's own (:func:`capabilities` lists them).
    """
    from ecellm.models.loading import full_model_as_adapter

    check_options(name, options)
    model, adapter = full_model_as_adapter(model, adapter)
    return _class(name).open(model, adapter=adapter, dtype=dtype, batch_size=batch_size, **options)


def refuse(name: str, setting: str, value: Any) -> InputError:
    """The error a backend raises for a common setting it cannot honour."""
    return InputError(f"backend {name!r} does not support {setting} {value!r}", field=setting)


def refuse_fixed(name: str, *, adapter: str | None, dtype: str) -> None:
    """For backends whose weights and precision are fixed elsewhere (a GGUF file, a remote
    server): refuse an adapter or a dtype other than ``auto``."""
    for setting, value, default in (("adapter", adapter, None), ("dtype", dtype, "auto")):
        if value != default:
            raise refuse(name, setting, value)
