"""ecellm: turn general LLMs into e-commerce LLMs and measure them honestly.

The data flows one way::

    raw sources -> data.builders -> Sample -> prompts -> infer backends -> predictions
    -> evaluate metrics -> report

Heavy imports (torch, transformers) stay inside the functions that need them so that
``import ecellm`` and the CLI start fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]


def load_model(*args: Any, **kwargs: Any) -> Any:
    """Load a model for prediction; see :func:`ecellm.infer.api.load_model`."""
    from ecellm.infer.api import load_model as _load

    return _load(*args, **kwargs)
