"""Choice scoring: pick the allowed answer with the highest log-likelihood after the prompt.

What is scored: each request's ``score_texts`` (default: the choices themselves). The request
builder passes the option *letter* for option tasks (SA, MPC), because a gold answer starts with
the letter and scoring the full option text would favour short descriptions; for letters and
yes/no the scored text is the answer. Scores are sums of token log-probabilities, not
length-normalised: in these tasks every scored text is one or two tokens.

How: when every scored text is a single token after its prompt (the usual case), one forward
pass over the batch of prompts gives all scores from the last position's distribution, so the
prompt is computed once per request. Otherwise each (prompt, candidate) pair is scored as a full
sequence in one padded batch. Prompt and candidate are tokenised jointly and the prompt's tokens
must be a prefix of the joint tokens; when a merge crosses the boundary the candidate is
tokenised on its own and appended, which is what generation after that prompt would produce.
"""

from __future__ import annotations

from typing import Any


def candidate_ids(tokenizer: Any, prompt: str, text: str) -> list[int]:
    """Token ids of ``text`` as a continuation of ``prompt`` (see the module docstring)."""
    joint = tokenizer(prompt + text, add_special_tokens=False)["input_ids"]
    plain = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if joint[: len(plain)] == plain and len(joint) > len(plain):
        return joint[len(plain) :]
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _positions(mask: Any) -> Any:
    """Position ids that ignore left padding, so a padded row scores like an unpadded one."""
    pos = mask.long().cumsum(-1) - 1
    return pos.clamp(min=0)


def score_batch(
    model: Any, tokenizer: Any, prompt_ids: list[list[int]], prompts: list[str], texts: list[list[str]]
) -> list[list[float]]:
    """Log-likelihood of every text of ``texts[i]`` after prompt ``i`` (``prompt_ids[i]`` are the
    ids the model sees, special tokens and truncation included; ``prompts[i]`` its text)."""
    import torch

    cands = [[candidate_ids(tokenizer, pr, t) for t in ts] for pr, ts in zip(prompts, texts, strict=True)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    if all(len(c) == 1 for cs in cands for c in cs):
        ids, mask = _left_pad(prompt_ids, pad, device)
        with torch.inference_mode():
            logits = model(
                input_ids=ids, attention_mask=mask, position_ids=_positions(mask), logits_to_keep=1
            ).logits[:, -1, :]
        logp = torch.log_softmax(logits.float(), dim=-1)
        return [[float(logp[i, c[0]]) for c in cs] for i, cs in enumerate(cands)]
    seqs, spans = [], []
    for p, cs in zip(prompt_ids, cands, strict=True):
        for c in cs:
            seqs.append(p + c)
            spans.append(len(c))
    ids, mask = _left_pad(seqs, pad, device)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask)).logits
    logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    target = ids[:, 1:]
    tok_lp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    flat = [float(tok_lp[k, -n:].sum()) for k, n in enumerate(spans)]
    out, k = [], 0
    for cs in cands:
        out.append(flat[k : k + len(cs)])
        k += len(cs)
    return out


def _left_pad(rows: list[list[int]], pad: int, device: Any) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)
