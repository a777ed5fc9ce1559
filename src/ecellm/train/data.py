"""Training data: select samples, render them with the shared prompt renderer, tokenize with
completion-only labels, and batch them (padding-free packing or length-grouped padding).

Why this is not the reference's recipe: the reference tokenizes prompt+answer, truncates at the
cutoff and keeps a sample even when its whole answer was cut away (every label masked, so the
sample costs compute and teaches nothing). Here such a sample is dropped and counted.
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ecellm.data.schema import SETTINGS, Sample
from ecellm.errors import InputError
from ecellm.io import iter_jsonl
from ecellm.prompts import render_prompt, render_target
from ecellm.tasks import get_task

IGNORE = -100


def _read_jsonl_samples(path: Path) -> list[Sample]:
    out = []
    for line, rec in iter_jsonl(path):
        try:
            out.append(Sample(**rec))
        except (ValidationError, TypeError) as exc:
            err = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": (), "msg": str(exc)}
            fld = ".".join(str(x) for x in err["loc"]) or None
            raise InputError(err["msg"], file=str(path), record=line, field=fld) from None
    return out


def read_samples(
    path: str, *, tasks: Sequence[str] | None, settings: Sequence[str] | None, splits: Sequence[str] | None
) -> list[Sample]:
    """Samples from any distribution the evaluator's loader knows; a local JSONL reader otherwise.

    The shared loader (``ecellm.data.loaders.load_samples``) is preferred so training reads
    exactly what evaluation reads; the fallback covers ecellm JSONL files and build folders.
    ``settings`` choose among ECInstruct's instruction settings; samples of another family (a
    ShopBench task name as their setting) are not filtered by them.
    """
    try:
        from ecellm.data.loaders import load_samples
    except ImportError:
        load_samples = None
    if load_samples is not None:
        got = load_samples(path, tasks=tasks, splits=splits)
        return [s for s in got if not settings or s.setting in settings or s.setting not in SETTINGS]
    p = Path(path)
    if not p.exists():
        raise InputError("training data not found", file=path)
    files = sorted((p / "jsonl").glob("*/*/*.jsonl")) if p.is_dir() else [p]
    if p.is_dir() and not files:
        raise InputError("folder has no jsonl/{TASK}/{setting}/{split}.jsonl files", file=path)
    abbrs = {get_task(t).abbr for t in tasks} if tasks else None
    out = [
        s
        for f in files
        for s in _read_jsonl_samples(f)
        if (abbrs is None or s.task in abbrs)
        and (not settings or s.setting in settings)
        and (not splits or s.split in splits)
    ]
    return sorted(out, key=lambda s: s.id)


def _balanced(group: list[Sample], cap: int, rng: random.Random) -> list[Sample]:
    """Up to ``cap`` samples with the gold answers as evenly represented as the data allows, so a
    small budget does not teach a tiny model the majority answer instead of the task."""
    by_out: dict[str, list[Sample]] = defaultdict(list)
    for s in group:
        by_out[s.output].append(s)
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_out.items())]
    out: list[Sample] = []
    while len(out) < cap and any(pools):
        for pool in pools:
            if pool and len(out) < cap:
                out.append(pool.pop())
    return out


def select(
    samples: list[Sample],
    *,
    seed: int,
    per_task: int | None = None,
    weights: dict[str, float] | None = None,
    limit: int | None = None,
    balance: bool = False,
) -> list[Sample]:
    """A seeded, order-independent subset: sort by id, cap each task (optionally weighted), cap all.

    ECInstruct tasks are capped per task; a family's named tasks (a ShopBench ``task_name``, kept
    as the setting) are capped one by one, so a type with two named tasks gets both. A weight
    keyed by a named task (``review-rating``) overrides its type's weight (``SB-MC``), so one
    named task can be drawn more than its siblings; a named key is matched before task names
    and aliases (``query-product-ranking`` is also an alias of QPR)."""
    rng = random.Random(seed)
    by_task: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.id):
        # a family task type holds several named tasks (ShopBench task_name as setting): each is capped
        by_task[(s.task, "" if s.setting in SETTINGS else s.setting)].append(s)
    named = {name for _, name in by_task if name}
    w = {k if k in named else _task_abbr(k): v for k, v in (weights or {}).items()}
    chosen: list[Sample] = []
    for key in sorted(by_task):
        task, group = key[0], by_task[key]
        weight = w.get(key[1], w.get(task, 1.0))  # a named task's own weight, else its type's
        cap = len(group) if per_task is None else max(0, round(per_task * weight))
        spec = get_task(task)  # balance a fixed answer set only (per-sample options carry no label)
        fixed = spec.answer_kind in ("option", "letter") and bool(spec.options)
        closed = spec.answer_kind == "yes_no" or fixed
        if balance and closed:
            chosen.extend(_balanced(group, cap, rng))
        else:
            chosen.extend(rng.sample(group, cap) if cap < len(group) else group)
    if limit is not None and limit < len(chosen):
        chosen = rng.sample(chosen, limit)
    rng.shuffle(chosen)
    return chosen


def _task_abbr(key: str) -> str:
    try:
        return get_task(key).abbr
    except KeyError:  # a named task of another source (checked by check_weights)
        return key


def check_weights(weights: dict[str, float] | None, samples: list[Sample]) -> None:
    """Refuse a ``task_weights`` key that is neither a task nor a named task of the training data,
    so a misspelt name cannot silently leave its task at weight 1."""
    named = {s.setting for s in samples if s.setting not in SETTINGS}
    for key in weights or {}:
        if key in named:
            continue
        try:
            get_task(key)
        except KeyError:
            known = ", ".join(sorted(named)) or "none"
            raise InputError(
                f"{key!r} is neither a task nor a named task of the training data (named tasks: {known})",
                field="data.task_weights",
            ) from None


@dataclass
class EncodeStats:
    """What tokenization kept and dropped; goes into the run manifest and the model card."""

    samples: int = 0
    kept: int = 0
    dropped_target_cut: int = 0
    prompt_tokens: list[int] = field(default_factory=list)
    target_tokens: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def q(xs: list[int]) -> dict[str, float]:
            if not xs:
                return {}
            return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}

        return {
            "samples": self.samples,
            "kept": self.kept,
            "dropped_target_cut": self.dropped_target_cut,
            "prompt_tokens": q(self.prompt_tokens),
            "target_tokens": q(self.target_tokens),
        }


def encode(
    samples: list[Sample],
    tokenizer: Any,
    *,
    template: str,
    cutoff: int,
    seq2seq: bool,
    stats: EncodeStats | None = None,
) -> list[dict[str, list[int]]]:
    """Token ids and completion-only labels (prompt tokens are IGNORE), EOS closing the target.

    The prompt is tokenized on its own, exactly as inference tokenizes it, so the model is trained
    on the same token boundary it will see at prediction time. With ``seq2seq`` the prompt is the
    encoder input and the labels are only the answer + EOS (the decoder input is derived from
    them by the collator); a sample whose prompt or answer exceeds ``cutoff`` is dropped and
    counted, like a decoder-only sample whose prompt + answer does not fit.
    """
    stats = stats if stats is not None else EncodeStats()
    eos = tokenizer.eos_token_id
    out = []
    for s in samples:
        stats.samples += 1
        prompt = render_prompt(s, template, tokenizer)
        bos = getattr(tokenizer, "bos_token", None)  # a chat template may already open with BOS
        prompt_ids = tokenizer(prompt, add_special_tokens=not (bos and prompt.startswith(bos)))["input_ids"]
        target = render_target(s, None, template)
        target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [eos]
        stats.prompt_tokens.append(len(prompt_ids))
        stats.target_tokens.append(len(target_ids))
        if seq2seq:
            if len(prompt_ids) > cutoff or len(target_ids) > cutoff:
                stats.dropped_target_cut += 1
                continue
            out.append(
                {"input_ids": prompt_ids, "attention_mask": [1] * len(prompt_ids), "labels": target_ids}
            )
        else:
            if len(prompt_ids) + len(target_ids) > cutoff:
                stats.dropped_target_cut += 1
                continue
            ids = prompt_ids + target_ids
            out.append(
                {
                    "input_ids": ids,
                    "attention_mask": [1] * len(ids),
                    "labels": [IGNORE] * len(prompt_ids) + target_ids,
                }
            )
        stats.kept += 1
    return out


def check_cutoff(stats: EncodeStats, cutoff: int, *, what: str, file: str, seq2seq: bool = False) -> None:
    """Fail before training when the cutoff leaves nothing to learn from, with the numbers.

    A decoder-only sample needs prompt + answer tokens within the cutoff; a seq2seq sample needs
    the prompt (encoder) and the answer (decoder) each within it.
    """
    if stats.samples and stats.kept == 0:
        pairs = list(zip(stats.prompt_tokens, stats.target_tokens, strict=True))
        if seq2seq:
            need = min(max(p, t) for p, t in pairs)
            fits = f"the shortest encoder/decoder pair needs {need} tokens"
        else:
            need = min(p + t for p, t in pairs)
            fits = f"the shortest prompt+answer {need} tokens"
        raise InputError(
            f"cutoff_len={cutoff} drops every {what} sample: the shortest prompt is "
            f"{min(stats.prompt_tokens)} tokens and {fits}; "
            f"raise cutoff_len to at least {need}",
            file=file,
            field="cutoff_len",
        )


class ListDataset:
    """A map-style dataset over encoded rows (lengths exposed for length-grouped sampling)."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


def make_collator(batching: str, tokenizer: Any, model: Any, seq2seq: bool) -> Any:
    """Packed: one row per micro-batch, ``position_ids`` restarting per sample, no padding at all
    (transformers derives a block-diagonal mask from the position ids, so samples never attend to
    each other). Grouped/padded: right-padding to the longest row in the micro-batch."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if batching == "packed" and not seq2seq:
        flat = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)
        return lambda feats: flat([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in feats])
    return DataCollatorForSeq2Seq(
        tokenizer,
        model=model if seq2seq else None,
        label_pad_token_id=IGNORE,
        padding=True,
        return_tensors="pt",
    )


def read_mixture(data: Any, *, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Training and validation samples of ``data.mixture`` (a list of ``{path, weight, tasks}``).

    Each source is selected on its own, as a single ``train`` source would be, with its
    per-task cap scaled by its weight; with ``max_train_samples`` each source gets its weight's
    share of that total (or all it has, when fewer). Validation: ``data.val`` when given, else
    every source's ``val`` split, seeded down to ``max_val_samples``. Ids are prefixed with the
    source's position (``m0:``, ``m1:``) so two sources can never collide.
    """
    total = sum(src.weight for src in data.mixture)
    train: list[Sample] = []
    val: list[Sample] = []
    for i, src in enumerate(data.mixture):
        tasks = src.tasks if src.tasks is not None else data.tasks
        got = read_samples(src.path, tasks=tasks, settings=data.settings, splits=["train"])
        if not got:
            raise InputError(
                f"no training samples (tasks={tasks}, split=train)", file=src.path, field=f"data.mixture.{i}"
            )
        per_task = None if data.per_task_train is None else max(1, round(data.per_task_train * src.weight))
        limit = None if data.max_train_samples is None else round(data.max_train_samples * src.weight / total)
        picked = select(
            got,
            seed=seed,
            per_task=per_task,
            weights=data.task_weights,
            limit=limit,
            balance=data.balance_labels,
        )
        train.extend(_tagged(picked, i))
        if data.use_val and not data.val:
            held = read_samples(src.path, tasks=tasks, settings=data.settings, splits=["val"])
            val.extend(_tagged(held, i))
    check_weights(data.task_weights, train)
    if data.use_val and data.val:
        val = read_samples(data.val, tasks=data.tasks, settings=data.settings, splits=None)
    random.Random(seed).shuffle(train)
    return train, select(val, seed=seed, limit=data.max_val_samples) if val else []


def _tagged(samples: list[Sample], source: int) -> list[Sample]:
    return [s.model_copy(update={"id": f"m{source}:{s.id}"}) for s in samples]
