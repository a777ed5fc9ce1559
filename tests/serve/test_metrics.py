"""Prometheus text exposition of the server's counters."""

from __future__ import annotations

from ecellm.serve.metrics import Metrics


def test_render_counts_errors_histograms_and_tokens():
    m = Metrics()
    m.record_request("/v1/completions", 200, 0.03)
    m.record_request("/v1/completions", 200, 2.0)
    m.record_request("/v1/tasks/{task}", 422, 0.001)
    m.record_batch(rows=12, requests=5)
    m.record_tokens(prompt=40, completion=9)
    text = m.render()
    lines = text.splitlines()
    assert 'ecellm_requests_total{route="/v1/completions",status="200"} 2' in lines
    assert 'ecellm_errors_total{route="/v1/tasks/{task}",status="422"} 1' in lines
    assert not any(line.startswith('ecellm_errors_total{route="/v1/completions"') for line in lines)
    # cumulative buckets: 0.03 s falls in le=0.05 and above, 2.0 s from le=2.5 on
    assert 'ecellm_request_seconds_bucket{route="/v1/completions",le="0.025"} 0' in lines
    assert 'ecellm_request_seconds_bucket{route="/v1/completions",le="0.05"} 1' in lines
    assert 'ecellm_request_seconds_bucket{route="/v1/completions",le="2.5"} 2' in lines
    assert 'ecellm_request_seconds_bucket{route="/v1/completions",le="+Inf"} 2' in lines
    assert 'ecellm_request_seconds_count{route="/v1/completions"} 2' in lines
    assert 'ecellm_batch_rows_bucket{le="8"} 0' in lines and 'ecellm_batch_rows_bucket{le="16"} 1' in lines
    assert "ecellm_batch_requests_sum 5" in lines
    assert (
        'ecellm_tokens_total{kind="completion"} 9' in lines
        and 'ecellm_tokens_total{kind="prompt"} 40' in lines
    )
    # every sample line belongs to a family declared with HELP and TYPE
    families = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    for line in lines:
        if not line.startswith("#"):
            name = line.split("{")[0].split()[0]
            assert any(name == f or name.startswith(f + "_") for f in families), line
    assert text.endswith("\n")


def test_label_values_are_escaped():
    m = Metrics()
    m.record_request('/odd"path\\', 404, 0.1)
    assert 'route="/odd\\"path\\\\"' in m.render()
