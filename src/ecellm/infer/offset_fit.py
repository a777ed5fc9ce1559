"""Answer offsets fitted with a model: score the validation samples by choice, then fit.

Apart from :mod:`ecellm.offsets` because it runs prediction, and prediction applies offsets:
this module sits above both, so neither imports the other back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecellm.data.schema import Sample
from ecellm.infer.predict import predict
from ecellm.io import iter_jsonl
from ecellm.offsets import fit_offsets


def fit_with_model(
    val: Sequence[Sample],
    out: str | Path,
    *,
    model: str,
    adapter: str | None,
    template: str,
    backend: str = "hf",
    batch_size: int | None = 8,
    mode: str = "auto",
) -> dict[str, Any]:
    """Score ``val`` with the model (choice scoring, no offsets; records in ``out``, resumable)
    and fit offsets on the scores."""
    predict(
        list(val),
        out=out,
        model=model,
        adapter=adapter,
        backend=backend,
        mode=mode,
        template=template,
        resume=True,
        batch_size=batch_size,
        progress=False,
        source="val",
        offsets=False,
    )
    return fit_offsets(val, [r for _, r in iter_jsonl(out)])
