"""Choice scoring: pick the allowed answer with the highest log-likelihood after the prompt.

What is scored: each request's ``score_texts`` (default: the choices themselves). The request
builder passes the option *letter* for option tasks (SA, MPC), because a gold answer starts with
the letter and scoring the full option text would favour short descriptions; for letters and
yes/no the scored text is the answer. Scores are sums of token log-probabilities, not
length-normalised: in these tasks every scored text is one or two tokens. The log-probabilities
come from an fp32 head even when the model runs in 16 bits (:mod:`ecellm.infer.fp32_head`).

How: when every scored text is a single token after its prompt (the usual case), one forward
pass over the batch of prompts gives all scores from the last position's distribution, so the
prompt is computed once per request. Otherwise each (prompt, candidate) pair is scored as a full
sequence in one padded batch. Prompt and candidate are tokenised jointly and the prompt's tokens
must be a prefix of the joint tokens; when a merge crosses the boundary the candidate is
tokenised on its own and appended, which is what generation after that prompt would produce.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ecellm.infer.fp32_head import fp32_head

if TYPE_CHECKING:
    from ecellm.infer.prefix import SharedPrefix


def candidate_ids(tokenizer: Any, prompt: str, texts: list[str]) -> list[list[int]]:
    """Token ids of each of ``texts`` as a continuation of ``prompt`` (see the module docstring).
    One batched call encodes the prompt and every joint text."""
    plain, *joints = tokenizer([prompt, *(prompt + t for t in texts)], add_special_tokens=False)["input_ids"]
    out = []
    for text, joint in zip(texts, joints, strict=True):
        if joint[: len(plain)] == plain and len(joint) > len(plain):
            out.append(joint[len(plain) :])
        else:
            out.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return out


def _positions(mask: Any) -> Any:
    """Position ids that ignore padding, so a padded row scores like an unpadded one."""
    pos = mask.long().cumsum(-1) - 1
    return pos.clamp(min=0)


def score_batch(
    model: Any,
    tokenizer: Any,
    prompt_ids: list[list[int]],
    prompts: list[str],
    texts: list[list[str]],
    prefix: SharedPrefix | None = None,
) -> list[list[float]]:
    """Log-likelihood of every text of ``texts[i]`` after prompt ``i`` (``prompt_ids[i]`` are the
    ids the model sees, special tokens and truncation included; ``prompts[i]`` its text).

    With ``prefix`` (see :mod:`ecellm.infer.prefix`) row ``i``'s first ``prefix.lengths[i]`` ids
    are already in ``prefix``'s cache and only the rest is run; the scores are those of the full
    prompt.
    """
    import torch

    cands = [candidate_ids(tokenizer, pr, list(ts)) for pr, ts in zip(prompts, texts, strict=True)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    lengths = prefix.lengths if prefix is not None else [0] * len(prompt_ids)
    if all(len(c) == 1 for cs in cands for c in cs):
        suffixes = [p[n:] for p, n in zip(prompt_ids, lengths, strict=True)]
        ids, mask, pos, cache = _inputs(suffixes, pad, device, prefix, None)
        with torch.no_grad(), fp32_head(model):
            logits = model(
                input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, logits_to_keep=1
            ).logits[:, -1, :]
        logp = torch.log_softmax(logits.float(), dim=-1)
        return [[float(logp[i, c[0]]) for c in cs] for i, cs in enumerate(cands)]
    seqs, spans, rows = [], [], []
    for i, (p, n, cs) in enumerate(zip(prompt_ids, lengths, cands, strict=True)):
        for c in cs:
            seqs.append(p[n:] + c)
            spans.append(len(c))
            rows.append(i)
    ids, mask, pos, cache = _inputs(seqs, pad, device, prefix, rows)
    # Only the last max(span) + 1 positions predict candidate tokens (left padding aligns the
    # ends), so the full-vocabulary projection and softmax run on those alone.
    keep = max(spans) + 1
    with torch.no_grad(), fp32_head(model):
        logits = model(
            input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, logits_to_keep=keep
        ).logits
    logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    target = ids[:, -(keep - 1) :]
    tok_lp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    flat = [float(tok_lp[k, -n:].sum()) for k, n in enumerate(spans)]
    out, k = [], 0
    for cs in cands:
        out.append(flat[k : k + len(cs)])
        k += len(cs)
    return out


def _inputs(
    rows: list[list[int]], pad: int, device: Any, prefix: SharedPrefix | None, select: list[int] | None
) -> tuple[Any, Any, Any, Any]:
    """``(input_ids, attention_mask, position_ids, cache)`` for left-padded ``rows`` placed after
    ``prefix``'s cached rows (``select`` maps each row to its prefix row; default: the same)."""
    import torch

    ids, mask = _left_pad(rows, pad, device)
    if prefix is None or prefix.width == 0:
        return ids, mask, _positions(mask), None
    cache, pmask = prefix.cache(select), prefix.mask.to(device)
    if select is not None:
        pmask = pmask[torch.tensor(select, device=device)]
    full = torch.cat([pmask, mask], dim=1)
    return ids, full, _positions(full)[:, pmask.shape[1] :], cache


def _left_pad(rows: list[list[int]], pad: int, device: Any) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)


def seq2seq_candidate_ids(tokenizer: Any, text: str) -> list[int]:
    """Decoder token ids of ``text`` for an encoder-decoder model.

    The decoder starts from its own start token, not from the prompt, so the candidate is
    tokenised on its own, which is also how training tokenises an answer (without the EOS that
    closes it: a gold answer may continue after the scored text, e.g. ``"B: positive"``).
    """
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"choice {text!r} tokenizes to nothing")
    return ids


def score_batch_seq2seq(
    model: Any,
    tokenizer: Any,
    input_ids: Any,
    attention_mask: Any,
    texts: list[list[str]],
    start_id: int,
    pad_id: int,
) -> list[list[float]]:
    """Log-likelihood of every text of ``texts[i]`` as the decoder's output for encoder input
    ``i`` (``input_ids``/``attention_mask``: the padded encoder batch).

    The encoder runs once per prompt and its states are shared by all of that prompt's
    candidates. When every candidate is one token, one decoder step from the start token scores
    them all; otherwise each (prompt, candidate) pair is a decoder row (input: start token plus
    the candidate without its last token, right-padded; causal attention makes the padding
    invisible to the real positions) and a candidate's score is the sum of its tokens'
    log-probabilities, i.e. ``-loss * len(candidate)`` of ``model(..., labels=candidate)``.
    """
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    cands = [[seq2seq_candidate_ids(tokenizer, t) for t in ts] for ts in texts]
    with torch.no_grad(), fp32_head(model):
        hidden = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        device = hidden.device
        if all(len(c) == 1 for cs in cands for c in cs):
            start = torch.full((len(cands), 1), start_id, dtype=torch.long, device=device)
            logits = model(
                encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                attention_mask=attention_mask,
                decoder_input_ids=start,
                use_cache=False,
            ).logits[:, 0, :]
            logp = torch.log_softmax(logits.float(), dim=-1)
            return [[float(logp[i, c[0]]) for c in cs] for i, cs in enumerate(cands)]
        rows = [i for i, cs in enumerate(cands) for _ in cs]
        flat_cands = [c for cs in cands for c in cs]
        width = max(len(c) for c in flat_cands)
        dec = torch.full((len(flat_cands), width), pad_id, dtype=torch.long)
        target = torch.zeros((len(flat_cands), width), dtype=torch.long)
        for k, c in enumerate(flat_cands):
            dec[k, : len(c)] = torch.tensor([start_id] + c[:-1], dtype=torch.long)
            target[k, : len(c)] = torch.tensor(c, dtype=torch.long)
        sel = torch.tensor(rows, dtype=torch.long, device=device)
        logits = model(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden.index_select(0, sel)),
            attention_mask=attention_mask.index_select(0, sel),
            decoder_input_ids=dec.to(device),
            use_cache=False,
        ).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        tok_lp = logp.gather(-1, target.to(device).unsqueeze(-1)).squeeze(-1)
    flat = [float(tok_lp[k, : len(c)].sum()) for k, c in enumerate(flat_cands)]
    out, k = [], 0
    for cs in cands:
        out.append(flat[k : k + len(cs)])
        k += len(cs)
    return out
