"""The one sample schema every stage speaks.

An ecellm sample is an ECInstruct row (instruction, input, options, output) plus the
identity fields the reference keeps implicit (task, setting, split) and a stable ``id``, so
predictions are joined to references by id instead of by position.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from ecellm.tasks.base import Task

SPLITS = ("train", "val", "test")
SETTINGS = (
    "IND_Diverse_Instruction",
    "IND_Unseen_Instruction",
    "IND_Single_Instruction",
    "OOD_Diverse_Instruction",
    "OOD_Unseen_Instruction",
    "OOD_Single_Instruction",
)


class Sample(BaseModel):
    """One instruction sample.

    ``task`` is the registry abbreviation (``"PRP"``); loaders map the reference's spellings.
    ``options`` is a list of option strings (the reference stores a JSON or Python-repr string).
    ``meta`` carries provenance: source ids, category, ``labels`` (QPR: the ESCI label of each
    listed product, in display order), ``target_item`` (SR), ...
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    task: str
    setting: str = "IND_Diverse_Instruction"
    split: str = "test"
    instruction: str
    input: str
    options: list[str] = Field(default_factory=list)
    output: str
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("split")
    @classmethod
    def _split(cls, v: str) -> str:
        v = "val" if v == "validation" else v
        if v not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {v!r}")
        return v

    @field_validator("task")
    @classmethod
    def _task(cls, v: str) -> str:
        from ecellm.tasks.registry import get_task

        try:
            return get_task(v).abbr
        except KeyError as exc:  # pydantic reports ValueError as a validation error on this field
            raise ValueError(str(exc.args[0])) from None

    def to_record(self) -> dict[str, Any]:
        """The JSONL record (ecellm's own format)."""
        return self.model_dump()


def sample_from(task: Task, fields: dict[str, Any], sample_id: str = "input") -> Sample:
    """A sample of ``task`` built from plain input ``fields`` (already validated against
    ``task.inputs``): the seed instruction, the composed input, the task's options unless
    ``compose`` gives the sample's own, and no gold output."""
    if task.compose is not None:
        parts = dict(task.compose(fields))
    else:
        payload = {f.key or f.name: fields[f.name] for f in task.inputs}
        parts = {"input": json.dumps(payload, ensure_ascii=False)}
    parts.setdefault("instruction", task.instructions[0] if task.instructions else "")
    parts.setdefault("options", list(task.options))
    return Sample(id=sample_id, task=task.abbr, output="", **parts)
