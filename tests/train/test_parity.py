"""Training parity with the reference: per-sample loss averaging, validation once per epoch, the
reference-parity configs and the Flan-T5 braceless AVE path."""

from __future__ import annotations

import json
import os

import pytest
import torch
from tests.conftest import FIXTURES, REPO_ROOT, tiny_llama

from ecellm.data.schema import Sample
from ecellm.train.data import IGNORE, encode, read_samples
from ecellm.train.loss import count_samples, per_sample_loss

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FIXTURE = FIXTURES / "train_samples.jsonl"
ROOT = REPO_ROOT


def _rows() -> list[dict[str, list[int]]]:
    """Four samples with 1, 2, 5 and 9 target tokens (prompt tokens masked)."""
    out = []
    for k, (n_prompt, n_target) in enumerate([(4, 1), (3, 2), (6, 5), (2, 9)]):
        ids = [(7 * k + 3 * i) % 47 + 2 for i in range(n_prompt + n_target)]
        out.append({"input_ids": ids, "labels": [IGNORE] * n_prompt + ids[n_prompt:]})
    return out


def _per_sample_means(model, rows) -> list[float]:
    with torch.no_grad():
        return [
            model(input_ids=torch.tensor([r["input_ids"]]), labels=torch.tensor([r["labels"]])).loss.item()
            for r in rows
        ]


def _padded(rows):
    n = max(len(r["input_ids"]) for r in rows)
    return {
        "input_ids": torch.tensor([r["input_ids"] + [0] * (n - len(r["input_ids"])) for r in rows]),
        "attention_mask": torch.tensor(
            [[1] * len(r["input_ids"]) + [0] * (n - len(r["input_ids"])) for r in rows]
        ),
        "labels": torch.tensor([r["labels"] + [IGNORE] * (n - len(r["labels"])) for r in rows]),
    }


def _packed(rows):
    from transformers import DataCollatorWithFlattening

    flat = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)
    return flat([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])


def test_per_sample_loss_is_the_mean_of_per_sample_token_means():
    model, rows = tiny_llama(), _rows()
    means = _per_sample_means(model, rows)
    want = sum(means) / len(means)
    n_tok = [sum(t != IGNORE for t in r["labels"][1:]) for r in rows]
    per_token = sum(m * n for m, n in zip(means, n_tok, strict=True)) / sum(n_tok)
    assert abs(want - per_token) > 1e-3  # the two normalisations differ on these lengths
    with torch.no_grad():
        for batch in (_padded(rows), _packed(rows)):
            assert per_sample_loss(model, batch).item() == pytest.approx(want, rel=1e-5)
            assert per_sample_loss(model, batch, target_only=False).item() == pytest.approx(want, rel=1e-5)
            # the denominator of a whole accumulation step (here: twice as many samples)
            assert per_sample_loss(model, batch, torch.tensor(8)).item() == pytest.approx(want / 2, rel=1e-5)
            assert count_samples([batch]) == 4
        assert count_samples([_packed(rows[:1]), _padded(rows[1:])]) == 4


def test_trainer_averages_per_sample_over_the_accumulation_step(tmp_path):
    from transformers import TrainingArguments

    from ecellm.train.data import ListDataset
    from ecellm.train.loss import LossOptions, make_trainer_class

    model, rows = tiny_llama(), _rows()
    want = sum(_per_sample_means(model, rows)) / len(rows)
    model.train()
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=1,
        learning_rate=0.0,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        remove_unused_columns=False,
        seed=0,
        logging_steps=1,
    )
    trainer = make_trainer_class(LossOptions(per_sample=True))(
        model=model, args=args, train_dataset=ListDataset(rows), data_collator=_padded
    )
    assert trainer.train().training_loss == pytest.approx(want, rel=1e-4)  # dropout-free tiny model
    # per token (the default): the token-weighted mean instead
    n_tok = [sum(t != IGNORE for t in r["labels"][1:]) for r in rows]
    means = _per_sample_means(model.eval(), rows)
    token_mean = sum(m * n for m, n in zip(means, n_tok, strict=True)) / sum(n_tok)
    model.train()
    again = make_trainer_class()(
        model=model, args=args, train_dataset=ListDataset(rows), data_collator=_padded
    )
    assert again.train().training_loss == pytest.approx(token_mean, rel=1e-4)


def test_seq2seq_per_sample_loss():
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(
        T5Config(
            vocab_size=40, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0
        )
    ).eval()
    rows = [([5, 6, 7, 1], [9, 1]), ([8, 9, 1], [4, 5, 6, 7, 1])]
    with torch.no_grad():
        means = [model(input_ids=torch.tensor([x]), labels=torch.tensor([y])).loss.item() for x, y in rows]
        batch = {
            "input_ids": torch.tensor([[5, 6, 7, 1], [8, 9, 1, 0]]),
            "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
            "labels": torch.tensor([[9, 1, IGNORE, IGNORE, IGNORE], [4, 5, 6, 7, 1]]),
        }
        got = per_sample_loss(model, batch, seq2seq=True).item()
    assert got == pytest.approx(sum(means) / 2, rel=1e-5)
    assert count_samples([batch], causal=False) == 2


def test_validation_once_per_epoch_when_eval_steps_is_unset(tmp_path):
    from ecellm.train.config import load_config
    from ecellm.train.run import Prepared, training_arguments

    cfg = load_config({"data": {"train": str(FIXTURE)}, "output_dir": str(tmp_path), "eval_steps": None})
    p = Prepared(cfg, None, False, [], [{"input_ids": [1]}], {}, None)
    args = training_arguments(p)
    assert (str(args.eval_strategy), str(args.save_strategy), args.load_best_model_at_end) == (
        "IntervalStrategy.EPOCH",
        "SaveStrategy.EPOCH",
        True,
    )


@pytest.mark.parametrize(
    ("name", "template"),
    [("llama2-7b-chat-lora.yaml", "alpaca-ref"), ("flan-t5-xxl-lora.yaml", "flan-t5-ref")],
)
def test_reference_parity_configs(name, template):
    from ecellm.train.config import load_config

    cfg = load_config(ROOT / "configs" / name)
    assert (cfg.template, cfg.loss_normalization, cfg.eval_steps, cfg.load_best) == (
        template,
        "per_sample",
        None,
        True,
    )
    assert cfg.micro_batch_size * cfg.gradient_accumulation_steps == 128


def test_flan_t5_ave_targets_have_no_braces_and_predictions_get_them_back():
    from ecellm.infer.requests import build_request
    from ecellm.prompts import render_target
    from ecellm.tasks.parsing import parse_braceless, restore_braces

    aves = read_samples(str(FIXTURE), tasks=["AVE"], settings=None, splits=None)
    for s in aves:
        target = render_target(s, "</s>", "flan-t5-ref")
        assert "{" not in target and "}" not in target and target.endswith("</s>")
        assert json.loads(restore_braces(target.removesuffix("</s>"))) == json.loads(s.output)
        assert render_target(s, None, "alpaca-ref") == s.output
    two = (
        '["attribute": "color", "value": "red, dark", "source": "product title", "attribute": "size", '
        '"value": "None", "source": "None"]'
    )
    assert [d["attribute"] for d in parse_braceless(two)] == ["color", "size"]
    assert not parse_braceless("no idea") and parse_braceless('[{"a": 1}]') == [{"a": 1}]
    req = build_request(aves[0], template="flan-t5-ref")
    assert (req.mode, req.postprocess) == ("generate", restore_braces)
    assert build_request(aves[0], template="alpaca").postprocess is None
    psi = Sample(id="p", task="PSI", instruction="i", input="x", output="yes")
    assert render_target(psi, None, "flan-t5-ref") == "yes"


def test_hf_backend_restores_braces_of_a_braceless_answer():
    from ecellm.infer.backends.hf import HFBackend
    from ecellm.infer.base import Request
    from ecellm.tasks.parsing import restore_braces

    class Tok:
        eos_token_id = 1

        def decode(self, toks, skip_special_tokens=True):
            return '["attribute": "color", "value": "red", "source": "product title"]'

    backend = HFBackend.__new__(HFBackend)
    backend.tokenizer = Tok()
    req = Request("a", "p", postprocess=restore_braces, task="AVE")
    (c,) = backend._completions([req], [[5]], [[7, 1]], None, constrained=False)
    assert json.loads(c.text) == [{"attribute": "color", "value": "red", "source": "product title"}]
    assert c.raw.startswith('["attribute"')


def test_encode_uses_braceless_targets_under_flan_t5_ref():
    class Tok:
        eos_token_id = 1

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [ord(ch) for ch in text]}

    (s,) = read_samples(str(FIXTURE), tasks=["AVE"], settings=None, splits=["val"])
    (row,) = encode([s], Tok(), template="flan-t5-ref", cutoff=4096, seq2seq=True)
    assert ord("{") not in row["labels"] and row["labels"][-1] == 1
