"""``GET /metrics``: the server's counters in Prometheus' text format (version 0.0.4).

Why not the ``prometheus_client`` package: five metric families do not justify a dependency,
and its process-global registry would mix the figures of two apps in one process (tests run
several). Families: requests and errors by route and status, request latency (whole response,
streams included), rows and requests per shared model call (how much batching happens), and
prompt and completion tokens.
"""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    """Cumulative-bucket histogram of one label set."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, edge in enumerate(self.buckets):
            if value <= edge:
                self.counts[i] += 1

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out = [
            f'{name}_bucket{{{labels}{sep}le="{_num(e)}"}} {c}'
            for e, c in zip(self.buckets, self.counts, strict=True)
        ]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        braces = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{braces} {_num(self.sum)}", f"{name}_count{braces} {self.count}"]
        return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _labels(**kw: str) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{esc(v)}"' for k, v in sorted(kw.items()))


class Metrics:
    """Thread-safe counters of one app (the model thread records batches, the loop requests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch_rows = Histogram(BATCH_BUCKETS)
        self.batch_requests = Histogram(BATCH_BUCKETS)
        self.tokens = {"prompt": 0, "completion": 0}

    def record_request(self, route: str, status: int, seconds: float) -> None:
        key = _labels(route=route, status=str(status))
        with self._lock:
            self.requests[key] += 1
            if status >= 400:
                self.errors[key] += 1
            hist = self.latency.setdefault(_labels(route=route), Histogram(LATENCY_BUCKETS))
            hist.observe(seconds)

    def record_batch(self, rows: int, requests: int) -> None:
        """One shared model call: ``rows`` prompts gathered from ``requests`` HTTP-level calls."""
        with self._lock:
            self.batch_rows.observe(rows)
            self.batch_requests.observe(requests)

    def record_tokens(self, prompt: int, completion: int) -> None:
        with self._lock:
            self.tokens["prompt"] += prompt
            self.tokens["completion"] += completion

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP ecellm_requests_total HTTP requests answered, by route and status.",
                "# TYPE ecellm_requests_total counter",
                *(f"ecellm_requests_total{{{k}}} {v}" for k, v in sorted(self.requests.items())),
                "# HELP ecellm_errors_total HTTP requests answered with a 4xx or 5xx status.",
                "# TYPE ecellm_errors_total counter",
                *(f"ecellm_errors_total{{{k}}} {v}" for k, v in sorted(self.errors.items())),
                "# HELP ecellm_request_seconds Time from request to the end of the response body.",
                "# TYPE ecellm_request_seconds histogram",
            ]
            for key, hist in sorted(self.latency.items()):
                lines += hist.lines("ecellm_request_seconds", key)
            lines += [
                "# HELP ecellm_batch_rows Prompts per shared model call.",
                "# TYPE ecellm_batch_rows histogram",
                *self.batch_rows.lines("ecellm_batch_rows", ""),
                "# HELP ecellm_batch_requests Callers (HTTP requests) merged into one model call.",
                "# TYPE ecellm_batch_requests histogram",
                *self.batch_requests.lines("ecellm_batch_requests", ""),
                "# HELP ecellm_tokens_total Tokens processed, by kind.",
                "# TYPE ecellm_tokens_total counter",
                *(f'ecellm_tokens_total{{kind="{k}"}} {v}' for k, v in sorted(self.tokens.items())),
            ]
        return "\n".join(lines) + "\n"
