"""Completion-only loss that computes vocabulary logits only where there is something to learn.

With prompt tokens masked, most positions of an instruction sample carry no label, yet a stock
causal LM still projects every position onto the whole vocabulary (49k columns for SmolLM2) and
keeps those logits and their gradients in memory. Here the model is asked for logits only at the
positions whose next token is a target; the loss is the same cross-entropy over the same
tokens, so the result equals the model's own loss. :func:`target_logits` takes exactly the
(row, position) pairs with a target: the decoder's hidden states there go through the output
head. ``logits_to_keep`` (one set of positions for every row) would also project the other
rows' answer positions, 3.3x the rows needed in micro-batches of four samples whose prompts
differ in length; it remains the path for a model whose head is more than its output layer
(checked once per model, see :func:`_head_is_output_layer`).

Encoder-decoder models get :func:`seq2seq_loss`: their decoder only ever sees the answer, so
there is nothing to skip, but the normalisation must match the Trainer's accumulation.
:func:`per_sample_loss` is the reference's normalisation (``loss_normalization: per_sample``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ecellm.speedups.cross_entropy import cross_entropy_sum

IGNORE = -100


def completion_loss(
    model: Any, inputs: dict[str, torch.Tensor], num_items_in_batch: Any = None
) -> torch.Tensor:
    """Mean token cross-entropy over target tokens (sum / ``num_items_in_batch`` when given, as
    transformers does for gradient accumulation)."""
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    targets = inputs["labels"][:, 1:]
    if not bool((targets != IGNORE).any()):  # nothing to learn in this micro-batch; keep the graph connected
        return model(**forward, logits_to_keep=1).logits.sum() * 0.0
    logits, wanted, _ = target_logits(model, forward, targets)
    total = cross_entropy_sum(logits, wanted)
    denom = num_items_in_batch if num_items_in_batch is not None else wanted.numel()
    if torch.is_tensor(denom):
        denom = denom.to(total.device)
    return total / denom


_HEAD_ONLY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def target_logits(
    model: Any, forward: dict[str, torch.Tensor], targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Vocabulary logits at every (row, position) of ``targets`` (labels shifted by one) that
    holds a target, those targets, and the (rows, positions) index; row-major order."""
    rows, cols = (targets != IGNORE).nonzero(as_tuple=True)
    if _head_is_output_layer(model, forward):
        hidden = model.get_decoder()(**forward, use_cache=False).last_hidden_state
        logits = model.get_output_embeddings()(hidden[rows, cols])
    else:
        keep = torch.unique(cols)  # sorted: the positions any row needs
        logits = model(**forward, logits_to_keep=keep).logits[rows, torch.searchsorted(keep, cols)]
    return logits, targets[rows, cols], (rows, cols)


def _head_is_output_layer(model: Any, forward: dict[str, torch.Tensor]) -> bool:
    """Whether the model's logits are its output layer applied to its decoder's last hidden
    states, so :func:`target_logits` may apply the two itself (no logit soft-capping, scaling or
    other head step that ``get_decoder``/``get_output_embeddings`` would skip). Checked once per
    model by comparing both on a slice of the first micro-batch, in eval mode (no dropout drawn)
    and without gradients."""
    known = _HEAD_ONLY.get(model)
    if known is not None:
        return known
    ok = False
    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
        if _unwrapped(model) and decoder is not None and head is not None and decoder is not model:
            probe = {k: v[:1, :16] for k, v in forward.items() if torch.is_tensor(v) and v.dim() == 2}
            was = model.training
            model.eval()
            try:
                with torch.no_grad():
                    want = model(**probe).logits.float()
                    got = head(decoder(**probe, use_cache=False).last_hidden_state).float()
            finally:
                model.train(was)
            scale = want.abs().max().item()
            ok = got.shape == want.shape and torch.allclose(got, want, atol=0.01 * scale, rtol=0.01)
    except (AttributeError, NotImplementedError, TypeError, KeyError, ValueError):
        ok = False
    _HEAD_ONLY[model] = ok
    return ok


def _unwrapped(model: Any) -> bool:
    """Whether ``model`` is the model itself (transformers or PEFT), not a DDP/FSDP/DeepSpeed or
    compiled wrapper. Calling a wrapped model's decoder directly would skip the wrapper's forward,
    where FSDP gathers its shards and DDP prepares the gradient all-reduce; FSDP and DeepSpeed
    forward attribute lookups, so ``get_decoder`` alone would not tell."""
    from transformers import PreTrainedModel

    try:
        from peft import PeftModel
    except ImportError:
        return isinstance(model, PreTrainedModel)
    return isinstance(model, (PreTrainedModel, PeftModel))


def seq2seq_loss(model: Any, inputs: dict[str, torch.Tensor], num_items_in_batch: Any = None) -> torch.Tensor:
    """Token cross-entropy of an encoder-decoder's answer tokens, normalised like
    :func:`completion_loss` (sum / ``num_items_in_batch`` when given).

    Why not the model's own loss: T5's ``forward`` takes ``**kwargs``, so the Trainer believes it
    normalises by ``num_items_in_batch`` and skips its division by the gradient-accumulation
    steps, but T5 returns a per-micro-batch mean; with accumulation the gradient (and the logged
    loss) would be ``gradient_accumulation_steps`` times too large. Labels are the answer + EOS
    (the encoder sees the prompt), so every non-ignored label is a target.
    """
    labels = inputs["labels"]
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    if "decoder_input_ids" not in forward:
        forward["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(labels=labels)
    logits = model(**forward).logits
    total = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    denom = num_items_in_batch if num_items_in_batch is not None else (labels != IGNORE).sum()
    if torch.is_tensor(denom):
        denom = denom.to(total.device)
    return total / denom


def sample_ids(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """A sample number for every label position: rows are samples, except packed rows, whose
    ``position_ids`` restart at 0 where each sample begins."""
    labels = inputs["labels"]
    rows = torch.arange(labels.shape[0], device=labels.device).unsqueeze(1) * (labels.shape[1] + 1)
    pos = inputs.get("position_ids")
    if pos is None or pos.shape != labels.shape:
        return rows.expand_as(labels)
    return rows + torch.cumsum(pos == 0, dim=1)


def count_samples(batches: list[dict[str, Any]], causal: bool = True) -> int:
    """How many samples with at least one target token ``batches`` hold (a per-sample loss's
    denominator over a whole gradient-accumulation step)."""
    n = 0
    for b in batches:
        ids, labels = sample_ids(b), b["labels"]
        if causal:
            ids, labels = ids[:, 1:], labels[:, 1:]
        n += int(torch.unique(ids[labels != IGNORE]).numel())
    return n


def per_sample_loss(
    model: Any,
    inputs: dict[str, torch.Tensor],
    num_samples: Any = None,
    *,
    seq2seq: bool = False,
    target_only: bool = True,
) -> torch.Tensor:
    """The reference's normalisation (``loss_normalization: per_sample``): each sample's mean token
    cross-entropy, summed over the samples and divided by ``num_samples`` (the samples of the
    whole accumulation step; default: those in this micro-batch).

    The reference trains with micro-batches of one sample and the Trainer averages micro-batch
    losses, so a short answer weighs as much as a long one; ecellm's default (per token) weighs
    every answer token equally. Packed rows are split into their samples by ``position_ids``."""
    labels = inputs["labels"]
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    ids = sample_ids(inputs)
    if seq2seq:
        if "decoder_input_ids" not in forward:
            forward["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(labels=labels)
        logits, targets = model(**forward).logits, labels
    else:
        targets, ids = labels[:, 1:], ids[:, 1:]
        if not bool((targets != IGNORE).any()):  # nothing to learn; keep the graph connected
            return model(**forward, logits_to_keep=1).logits.sum() * 0.0
        if target_only:
            logits, targets, (rows, cols) = target_logits(model, forward, targets)
        else:
            rows, cols = (targets != IGNORE).nonzero(as_tuple=True)
            logits, targets = model(**forward).logits[:, :-1][rows, cols], targets[rows, cols]
        ids = ids[rows, cols]
    flat = logits.float().reshape(-1, logits.shape[-1])
    token = F.cross_entropy(flat, targets.reshape(-1), ignore_index=IGNORE, reduction="none")
    valid = targets.reshape(-1) != IGNORE
    _, which = torch.unique(ids.reshape(-1)[valid], return_inverse=True)
    n = int(which.max()) + 1 if which.numel() else 0
    sums = torch.zeros(n, device=token.device).index_add(0, which, token[valid])
    counts = torch.zeros(n, device=token.device).index_add(0, which, torch.ones_like(token[valid]))
    denom = num_samples if num_samples is not None else max(n, 1)
    if torch.is_tensor(denom):
        denom = denom.to(token.device)
    return (sums / counts).sum() / denom


@dataclass(frozen=True)
class LossOptions:
    """Which training loss the trainer computes: ``stock`` keeps the Trainer's own (full-vocab
    logits at every position), ``seq2seq`` marks answer-only labels of an encoder-decoder
    (:func:`seq2seq_loss`), ``per_sample`` averages per sample first (:func:`per_sample_loss`)."""

    stock: bool = False
    seq2seq: bool = False
    per_sample: bool = False


def make_trainer_class(options: LossOptions | None = None) -> type:
    """A ``Trainer`` whose training loss is :func:`completion_loss` for causal LMs (unless
    ``options.stock``) and :func:`seq2seq_loss` for encoder-decoders (``options.seq2seq``);
    evaluation keeps the stock loss, a per-batch mean either way. The options are fixed on the
    class, so nothing is set on a trainer after it is built."""
    from transformers import Trainer

    opts = options or LossOptions()

    class CompletionOnlyTrainer(Trainer):
        loss_options = opts

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            if return_outputs or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            o = self.loss_options
            if o.per_sample:
                loss = per_sample_loss(
                    model, inputs, num_items_in_batch, seq2seq=o.seq2seq, target_only=not o.stock
                )
            elif o.seq2seq:
                loss = seq2seq_loss(model, inputs, num_items_in_batch)
            elif o.stock:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            else:
                loss = completion_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # mirror Trainer's cross-device token averaging
            return loss

        def _get_num_items_in_batch(self, batch_samples: list, device: Any) -> Any:
            """Per-sample normalisation counts samples, not tokens, over the accumulation step
            (and across processes when tokens would be); None stays None (then the Trainer
            averages micro-batch means itself)."""
            tokens = super()._get_num_items_in_batch(batch_samples, device)
            if tokens is None or not self.loss_options.per_sample:
                return tokens
            causal = not self.loss_options.seq2seq
            n = torch.tensor(count_samples(batch_samples, causal=causal), device=device)
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                n = self.accelerator.gather(n).sum()
            return n

    return CompletionOnlyTrainer
