"""API baselines: one request at a time (the reference procedure) vs OpenAIBackend with a worker pool.

The reference code queries an API in a plain loop, so a test set of N prompts costs N round
trips. Hosted APIs are latency-bound (hundreds of ms to seconds per answer), so overlapping
requests is where the time goes. This benchmark serves a localhost endpoint that answers after
a fixed delay, like a remote API, and times both procedures on the same prompts.

    python3 benchmarks/openai_concurrency.py [--n 40] [--latency 0.2] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from ecellm.infer.backends.openai import OpenAIBackend
from ecellm.infer.base import Request


def start_server(latency: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(latency)
            payload = json.dumps(
                {
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": body["messages"][-1]["content"]},
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def reference_loop(url: str, model: str, prompts: list[str]) -> list[str]:
    """What the reference does: one blocking request per prompt, in order."""
    out = []
    with httpx.Client(timeout=60) as client:
        for p in prompts:
            body = {"model": model, "messages": [{"role": "user", "content": p}], "temperature": 0}
            out.append(
                client.post(f"{url}/chat/completions", json=body).json()["choices"][0]["message"]["content"]
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "benchmark-not-a-real-key")
    server = start_server(args.latency)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    prompts = [f"prompt {i}" for i in range(args.n)]

    t0 = time.perf_counter()
    ref = reference_loop(url, "m", prompts)
    t_ref = time.perf_counter() - t0

    t0 = time.perf_counter()
    with OpenAIBackend("m", base_url=url, concurrency=args.concurrency) as backend:
        ours = {
            c.id: c.text for c in backend.run(Request(id=str(i), prompt=p) for i, p in enumerate(prompts))
        }
    t_ours = time.perf_counter() - t0
    server.shutdown()

    assert [ours[str(i)] for i in range(args.n)] == ref, "both procedures must return the same answers"
    print(f"{args.n} requests, {args.latency:.2f} s simulated API latency")
    print(f"reference sequential loop : {t_ref:6.2f} s")
    print(f"OpenAIBackend x{args.concurrency:<2}         : {t_ours:6.2f} s")
    print(f"speed-up                  : {t_ref / t_ours:6.2f}x")


if __name__ == "__main__":
    main()
