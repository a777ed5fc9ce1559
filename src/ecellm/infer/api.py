"""The Python API: ``ecellm.load_model(...)`` then ``model.predict(samples)``, or a task called
with its plain fields: ``model.run("PM", product_1=..., product_2=...)`` and the same as a named
method per task, ``model.product_matching(...)`` (see :mod:`ecellm.infer.task_api`).

The CLI's ``ecellm predict`` is this plus file handling; a notebook user gets the same
requests, decoding and records without touching files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecellm.data.schema import Sample
from ecellm.infer import task_api
from ecellm.infer.predict import make_requests, predict, run_records


@dataclass
class Model:
    """A loaded backend plus the prompt template it is used with (and where that came from, see
    :mod:`ecellm.infer.template`)."""

    backend: Any
    spec: str
    adapter: str | None = None
    template: str = "alpaca"
    template_source: str = "explicit"

    @property
    def tokenizer(self) -> Any:
        return getattr(self.backend, "tokenizer", None)

    def predict(
        self, samples: Sequence[Sample], mode: str = "auto", *, decoding: str = "greedy", seed: int = 0
    ) -> list[dict[str, Any]]:
        """One prediction record per sample, in the samples' order (see
        :func:`ecellm.infer.predict.to_record` for the fields); ``decoding`` is a preset of
        :mod:`ecellm.infer.decoding`."""
        import torch

        from ecellm.infer import decoding as presets

        preset = presets.get_preset(decoding)
        if preset.temperature > 0 and not getattr(self.backend, "supports_sampling", False):
            raise ValueError(f"decoding {decoding!r} samples; this backend cannot")
        samples = list(samples)
        reqs = make_requests(
            self.backend, samples, mode=presets.check_mode(preset, mode), template=self.template
        )
        reqs = presets.apply_preset(reqs, preset, self.template)
        torch.manual_seed(seed)
        got = {rec["id"]: rec for rec in run_records(self.backend, samples, reqs)}
        return [got[s.id] for s in samples]

    def run(self, task: str, /, *, max_new_tokens: int | None = None, **fields: Any) -> task_api.TaskResult:
        """Call ``task`` (any registry name, or its method name) on its plain ``fields``: the
        task's prompt in this model's template, the task's default decoding, the answer parsed.
        ``max_new_tokens`` caps the task's budget."""
        (result,) = task_api.run(self, task, [fields], max_new_tokens=max_new_tokens)
        return result

    def run_many(
        self, task: str, items: Sequence[dict[str, Any]], *, max_new_tokens: int | None = None
    ) -> list[task_api.TaskResult]:
        """:meth:`run` on many calls at once (batched by the backend), results in their order."""
        return task_api.run(self, task, items, max_new_tokens=max_new_tokens)

    def predict_file(
        self, samples: Sequence[Sample] | str | os.PathLike[str], out: str | os.PathLike[str], **kw: Any
    ) -> Path:
        """Like :func:`ecellm.infer.predict.predict` with this model (resumable JSONL output)."""
        return predict(
            samples,
            out=out,
            model=self.spec,
            adapter=self.adapter,
            backend=self.backend,
            template=self.template,
            template_source=self.template_source,
            **kw,
        )

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 100) -> list[str]:
        """Plain greedy completions of raw prompts, for backends that offer raw generation
        (``generate`` method; the hf backend does)."""
        if not callable(getattr(self.backend, "generate", None)):
            raise TypeError(f"backend {getattr(self.backend, 'name', '?')!r} has no raw generate()")
        return self.backend.generate(prompts, max_new_tokens=max_new_tokens)


task_api.attach(Model)  # model.product_matching(...), ...: one method per registered task


def load_model(
    spec: str = "smollm2-135m",
    *,
    adapter: str | None = None,
    backend: str = "hf",
    template: str | None = None,
    **kw: Any,
) -> Model:
    """Load ``spec`` (embedded name, HF id or folder, ``.gguf`` file; for API backends the
    remote model name) behind ``backend``. ``kw`` goes to
    :func:`ecellm.infer.backends.open_backend` (``dtype``, ``batch_size``, ``threads``,
    ``trust_remote_code`` for hf; ``base_url``... for openai). ``template=None`` uses the
    model's own (:func:`ecellm.infer.template.resolve_template`)."""
    from ecellm.infer.backends import open_backend
    from ecellm.infer.template import resolve_template

    choice = resolve_template(spec, adapter, template)
    engine = open_backend(backend, spec, adapter=adapter, **kw)
    return Model(
        backend=engine, spec=spec, adapter=adapter, template=choice.template, template_source=choice.source
    )
