"""Decoding presets: ecellm's deterministic default and the reference's sampling protocol.

``greedy`` (default): each task's own mode and budget (choice scoring, constrained or greedy
generation), so a run is reproducible to the token. ``reference``: what the eCeLLM inference
scripts do, so their numbers can be reproduced and their run-to-run variance seen: free
generation for every task, sampling at temperature 0.15 with top_p 0.95, at most 100 new tokens,
and the answer taken as the text up to the template's next response marker (no other stop
string). Unlike the reference, the sampling is seeded (``seed``), so one seed reproduces one run
and several seeds show the spread.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ecellm.infer.base import Request
from ecellm.prompts import RESPONSE_MARKER


@dataclass(frozen=True)
class Decoding:
    name: str
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int | None = None  # None = each task's own budget
    mode: str | None = None  # forced decoding mode; None = as requested

    def describe(self, seed: int) -> dict[str, Any]:
        return {**asdict(self), "seed": seed}


PRESETS = {
    "greedy": Decoding("greedy"),
    "reference": Decoding("reference", temperature=0.15, top_p=0.95, max_new_tokens=100, mode="generate"),
}


def get_preset(name: str) -> Decoding:
    if name not in PRESETS:
        raise ValueError(f"unknown decoding {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def check_mode(preset: Decoding, mode: str) -> str:
    """The request mode under ``preset``: a forcing preset accepts only ``auto`` or its own."""
    if preset.mode is None:
        return mode
    if mode not in ("auto", preset.mode):
        raise ValueError(f"decoding {preset.name!r} runs mode {preset.mode!r}, not {mode!r}")
    return preset.mode


def response_split(template: str) -> str:
    """The marker the reference splits generated text at (its templates' ``response_split``)."""
    return f"[/INST] {RESPONSE_MARKER}" if template == "mistral-ref" else RESPONSE_MARKER


def apply_preset(requests: list[Request], preset: Decoding, template: str) -> list[Request]:
    """Requests with the preset's sampling, budget and stop marker (unchanged for ``greedy``)."""
    if preset.temperature <= 0 and preset.max_new_tokens is None:
        return requests
    return [
        replace(
            r,
            temperature=preset.temperature,
            top_p=preset.top_p,
            max_new_tokens=preset.max_new_tokens or r.max_new_tokens,
            stop=(response_split(template),),
        )
        for r in requests
    ]
