"""Completion-only loss that computes vocabulary logits only where there is something to learn.

With prompt tokens masked, most positions of an instruction sample carry no label, yet a stock
causal LM still projects every position onto the whole vocabulary (49k columns for SmolLM2) and
keeps those logits and their gradients in memory. Here the model is asked for logits only at the
positions whose next token is a target (``logits_to_keep`` with explicit indices); the loss is
the same cross-entropy over the same tokens, so the result equals the model's own loss.

Encoder-decoder models get :func:`seq2seq_loss`: their decoder only ever sees the answer, so
there is nothing to skip, but the normalisation must match the Trainer's accumulation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

IGNORE = -100


def completion_loss(
    model: Any, inputs: dict[str, torch.Tensor], num_items_in_batch: Any = None
) -> torch.Tensor:
    """Mean token cross-entropy over target tokens (sum / ``num_items_in_batch`` when given, as
    transformers does for gradient accumulation)."""
    labels = inputs["labels"]
    shifted = labels[:, 1:]
    keep = (shifted != IGNORE).any(dim=0).nonzero().squeeze(-1)  # positions predicting a target token
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    if keep.numel() == 0:  # nothing to learn in this micro-batch; keep the graph connected
        out = model(**forward, logits_to_keep=1)
        return out.logits.sum() * 0.0
    logits = model(**forward, logits_to_keep=keep).logits
    targets = shifted[:, keep]
    total = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    denom = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE).sum()
    if torch.is_tensor(denom):
        denom = denom.to(total.device)
    return total / denom


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


def make_trainer_class() -> type:
    """A ``Trainer`` whose training loss is :func:`completion_loss` for causal LMs (unless
    ``_ecellm_stock_loss``) and :func:`seq2seq_loss` for encoder-decoders (``_ecellm_seq2seq``);
    evaluation keeps the stock loss, a per-batch mean either way."""
    from transformers import Trainer

    class CompletionOnlyTrainer(Trainer):
        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            if return_outputs or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if getattr(self, "_ecellm_seq2seq", False):
                loss = seq2seq_loss(model, inputs, num_items_in_batch)
            elif getattr(self, "_ecellm_stock_loss", False):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            else:
                loss = completion_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # mirror Trainer's cross-device token averaging
            return loss

    return CompletionOnlyTrainer
