"""Completion-only loss that computes vocabulary logits only where there is something to learn.

With prompt tokens masked, most positions of an instruction sample carry no label, yet a stock
causal LM still projects every position onto the whole vocabulary (49k columns for SmolLM2) and
keeps those logits and their gradients in memory. Here the model is asked for logits only at the
positions whose next token is a target (``logits_to_keep`` with explicit indices); the loss is
the same cross-entropy over the same tokens, so the result equals the model's own loss.
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


def make_trainer_class() -> type:
    """A ``Trainer`` whose causal-LM loss uses :func:`completion_loss` (seq2seq keeps the default)."""
    from transformers import Trainer

    class CompletionOnlyTrainer(Trainer):
        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            if return_outputs or getattr(self, "_ecellm_stock_loss", False) or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = completion_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # mirror Trainer's cross-device token averaging
            return loss

    return CompletionOnlyTrainer
