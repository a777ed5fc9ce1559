"""Typed task calls: a task's plain fields in, its parsed answer out.

Why: the paper's promise is one model for many shop tasks, and a caller should not have to
write instructions, option lists or prompt templates, or parse answers, to use it. Everything
here is read off the task registry (:mod:`ecellm.tasks.registry`): each task declares its plain
input fields (``Task.inputs``) and how they become a sample (``Task.compose``); this module
builds from them

- one pydantic input model and one result model per task (:func:`input_model`,
  :func:`result_model`), which the HTTP endpoints (:mod:`ecellm.serve.tasks_router`) reuse as
  their JSON schemas;
- backend requests rendered with the model's template and decoded in the task's default mode,
  exactly as ``ecellm predict --mode auto`` builds them (:func:`to_requests`);
- results from completions: the parsed answer, the raw text, whether it was valid
  (:func:`to_results`);
- the methods of :class:`ecellm.infer.api.Model`: ``model.run(task, **fields)`` and one named
  method per task (``model.<method_name(task)>(**fields)``), added by :func:`attach`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from ecellm.infer.base import Completion, Request
from ecellm.tasks.base import Invalid, Task
from ecellm.tasks.registry import all_tasks, get_task
from ecellm.tasks.sample import sample_from

# What a valid answer looks like, by answer kind (the parsers' return types).
ANSWER_TYPES: dict[str, Any] = {
    "attribute_values": list[Any],
    "letter": str,
    "option": str,
    "yes_no": str,
    "ranking": list[str],
    "text": str,
    "option_number": int,
    "item_order": list[int],
    "item_numbers": list[int],
    "entities": list[str],
}


class TaskInput(BaseModel):
    """Base of every task's input model: unknown fields are refused (a misspelt field would
    otherwise be dropped silently); pydantic refuses texts that are not valid Unicode (a lone
    surrogate, which JSON's ``\\ud800`` escape can carry, cannot be tokenized)."""

    model_config = ConfigDict(extra="forbid")


class TaskResult(BaseModel):
    """One task call's outcome: ``answer`` is the parsed answer (``None`` when the output could
    not be read as one; ``reason`` then says why), ``text`` the model's raw output, ``mode``
    the decoding used (``choice``, ``constrained`` or ``generate``)."""

    task: str
    answer: Any = None
    text: str
    valid: bool
    reason: str | None = None
    mode: str


def method_name(task: Task) -> str:
    """The Python name of a task's method and endpoint: its canonical name in snake case
    (``Product_Matching`` -> ``product_matching``)."""
    return re.sub(r"[^0-9a-z]+", "_", task.name.lower()).strip("_")


@cache
def methods() -> dict[str, Task]:
    """Every registered task (all families) that declares its plain inputs, by
    :func:`method_name`, in registry order (a task without ``inputs`` gets no method and no
    endpoint; the tests require every registered task to have them)."""
    out: dict[str, Task] = {}
    for task in all_tasks(None):
        name = method_name(task)
        if not name.isidentifier() or name in out:
            raise RuntimeError(f"task {task.abbr}: method name {name!r} is not a free identifier")
        if task.inputs:
            out[name] = task
    return out


def resolve(task: Task | str) -> Task:
    """A task object, its method name, or any name the registry resolves."""
    if isinstance(task, Task):
        return task
    return methods().get(task) or get_task(task)


def _class_name(task: Task) -> str:
    return "".join(part.capitalize() for part in method_name(task).split("_"))


def input_model(task: Task | str) -> type[TaskInput]:
    """The pydantic model of ``task``'s plain inputs (every field required)."""
    return _input_model(resolve(task).abbr)


@cache
def _input_model(abbr: str) -> type[TaskInput]:
    task = get_task(abbr)
    fields: dict[str, Any] = {}
    for f in task.inputs:
        bounds = {"min_length": f.min_items, "max_length": f.max_items}
        if f.type is str:
            bounds["min_length"] = 1
        fields[f.name] = (
            f.type,
            Field(
                ..., description=f.description, examples=[f.example], **{k: v for k, v in bounds.items() if v}
            ),
        )
    model = create_model(f"{_class_name(task)}Input", __base__=TaskInput, **fields)
    model.__doc__ = f"Plain inputs of {task.name} ({task.abbr})."
    return model


def result_model(task: Task | str) -> type[TaskResult]:
    """:class:`TaskResult` with ``answer`` typed by the task's answer kind."""
    return _result_model(resolve(task).abbr)


@cache
def _result_model(abbr: str) -> type[TaskResult]:
    task = get_task(abbr)
    answer = ANSWER_TYPES.get(task.answer_kind, Any)
    model = create_model(f"{_class_name(task)}Result", __base__=TaskResult, answer=(answer | None, None))
    model.__doc__ = f"Result of {task.name} ({task.abbr}): answer kind {task.answer_kind!r}."
    return model


def example(task: Task | str) -> dict[str, Any]:
    """The task's declared example inputs, as one call's fields."""
    return {f.name: f.example for f in resolve(task).inputs}


def check_fields(task: Task, fields: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    """``fields`` validated against the task's input model, as plain values (raises pydantic's
    ``ValidationError``, a ``ValueError``, naming the field)."""
    model = input_model(task)
    if isinstance(fields, model):
        return fields.model_dump()
    data = fields.model_dump() if isinstance(fields, BaseModel) else dict(fields)
    return model.model_validate(data).model_dump()


def samples(task: Task, items: Sequence[Mapping[str, Any] | BaseModel]) -> list[Any]:
    """One :class:`~ecellm.data.schema.Sample` per call (ids ``<abbr>-<index>``)."""
    return [sample_from(task, check_fields(task, it), f"{task.abbr}-{i}") for i, it in enumerate(items)]


def to_requests(
    target: Any,
    task: Task | str,
    items: Sequence[Mapping[str, Any] | BaseModel],
    *,
    template: str | None = None,
    max_new_tokens: int | None = None,
) -> list[Request]:
    """The backend requests of ``items`` (each a dict of ``task``'s plain fields).

    ``target`` is a :class:`~ecellm.infer.api.Model` (its backend and template) or a backend
    (then ``template`` names the prompt template, default ``alpaca``). Decoding is the task's
    default, fitted to what the backend supports, as ``predict --mode auto`` does.
    ``max_new_tokens`` caps each request's budget (a constrained answer cut short reads as
    invalid).
    """
    from ecellm.infer.predict import make_requests

    task = resolve(task)
    backend = getattr(target, "backend", target)
    template = template or getattr(target, "template", None) or "alpaca"
    reqs = make_requests(backend, samples(task, items), mode="auto", template=template)
    if max_new_tokens is not None:
        reqs = [replace(r, max_new_tokens=min(r.max_new_tokens, int(max_new_tokens))) for r in reqs]
    return reqs


def to_results(
    task: Task | str,
    completions: Sequence[Completion],
    items: Sequence[Mapping[str, Any] | BaseModel] | None = None,
) -> list[TaskResult]:
    """Results of ``completions`` (in the order of the requests). ``items``, when given, are
    the calls' fields again: parsers that check an answer against the call's own options (a
    letter beyond the listed candidates) need them."""
    task = resolve(task)
    context = samples(task, items) if items is not None else [None] * len(completions)
    if len(context) != len(completions):
        raise ValueError(f"{len(completions)} completions for {len(context)} inputs")
    model = result_model(task)
    out = []
    for c, sample in zip(completions, context, strict=True):
        answer = task.parse(c.text, sample)
        text = c.raw if c.raw is not None else c.text
        if isinstance(answer, Invalid):
            out.append(model(task=task.abbr, text=text, valid=False, reason=answer.reason, mode=c.mode))
        else:
            out.append(model(task=task.abbr, answer=answer, text=text, valid=True, mode=c.mode))
    return out


def run(
    target: Any,
    task: Task | str,
    items: Sequence[Mapping[str, Any] | BaseModel],
    *,
    template: str | None = None,
    max_new_tokens: int | None = None,
) -> list[TaskResult]:
    """Run ``items`` through ``target``'s backend; results in the items' order."""
    task = resolve(task)
    items = list(items)
    reqs = to_requests(target, task, items, template=template, max_new_tokens=max_new_tokens)
    backend = getattr(target, "backend", target)
    got = {c.id: c for c in backend.run(reqs)}
    return to_results(task, [got[r.id] for r in reqs], items)


def _method(name: str, task: Task) -> Any:
    def call(self: Any, /, *, max_new_tokens: int | None = None, **fields: Any) -> TaskResult:
        (result,) = run(self, task, [fields], max_new_tokens=max_new_tokens)
        return result

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
    params += [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=f.type) for f in task.inputs
    ]
    params.append(
        inspect.Parameter(
            "max_new_tokens", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=int | None
        )
    )
    call.__signature__ = inspect.Signature(params, return_annotation=result_model(task))  # type: ignore[attr-defined]
    call.__name__ = call.__qualname__ = name
    fields = "\n".join(f"    {f.name}: {f.description}" for f in task.inputs)
    call.__doc__ = (
        f"{task.name} ({task.abbr}, {task.category}): decoded by {task.decode}, answer kind "
        f"{task.answer_kind!r}.\n\nFields:\n{fields}"
    )
    return call


def attach(cls: type) -> type:
    """Give ``cls`` (:class:`~ecellm.infer.api.Model`) one method per task, named by
    :func:`method_name`; refuses a name ``cls`` already uses."""
    for name, task in methods().items():
        if name in vars(cls) and not getattr(vars(cls)[name], "_task_method", False):
            raise RuntimeError(f"task method {name!r} would hide {cls.__name__}.{name}")
        method = _method(name, task)
        method._task_method = True  # type: ignore[attr-defined]
        setattr(cls, name, method)
    return cls
