"""Model sources (HF id, folder, GGUF file, PEFT adapter, embedded defaults) and loading."""

from ecellm.models.registry import EMBEDDED, ModelSource, resolve_model

__all__ = ["EMBEDDED", "ModelSource", "resolve_model"]
