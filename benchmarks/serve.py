"""``ecellm serve`` under concurrent load, batching off vs on, over loopback.

Starts the real server (``python -m ecellm serve``, a separate process, on a free 127.0.0.1
port) once with ``--batching off`` and once with ``--batching on``, and against each sends:

1. ``--requests`` (200) completions all at once (every one in flight together), and
2. ``--concurrency`` (60) concurrent ``--max-tokens`` (4)-token completions,

reporting errors (target 0), p50/p99 latency and throughput. With batching off the server
runs one request per model call (the serialised figure); the script prints the ratio of the
two throughputs at ``--concurrency`` and exits 1 when it is below ``--target`` (5). Every
request loop is bounded: a fixed number of requests, a client timeout, a deadline per phase;
the servers are stopped on the way out.

    python benchmarks/serve.py [--requests 200] [--concurrency 60] [--max-tokens 4]

Prompts are short product lines (about 12 tokens each), all different, so no two requests
share more than a word or two: the gain comes from batching, not from caching.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ITEMS = [
    "wireless mouse",
    "cotton t-shirt",
    "espresso machine",
    "running shoes",
    "desk lamp",
    "phone case",
    "yoga mat",
    "water bottle",
    "backpack",
    "bluetooth speaker",
]
COLOURS = ["black", "white", "red", "blue", "green", "grey", "pink", "silver"]


def prompts(n: int) -> list[str]:
    return [
        f"Product: {COLOURS[i % len(COLOURS)]} {ITEMS[i % len(ITEMS)]}, model {1000 + i}. Category:"
        for i in range(n)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m ecellm serve`` in a subprocess on a free loopback port."""

    def __init__(self, batching: str, model: str, extra: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        src = Path(__file__).resolve().parents[1] / "src"
        env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        env.pop("ECELLM_SERVER_TOKEN", None)
        cmd = [
            sys.executable,
            "-m",
            "ecellm",
            "serve",
            "--model",
            model,
            "--port",
            str(self.port),
            "--batching",
            batching,
            *extra,
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def burst(url: str, texts: list[str], max_tokens: int, deadline_s: float) -> dict:
    """Send every prompt at once (one connection each) and time each answer."""
    limits = httpx.Limits(max_connections=len(texts), max_keepalive_connections=len(texts))
    async with httpx.AsyncClient(base_url=url, timeout=deadline_s, limits=limits) as client:

        async def one(prompt: str) -> tuple[float, bool, int]:
            t0 = time.perf_counter()
            try:
                r = await client.post("/v1/completions", json={"prompt": prompt, "max_tokens": max_tokens})
                ok = r.status_code == 200
                tokens = r.json()["usage"]["completion_tokens"] if ok else 0
            except httpx.HTTPError:
                ok, tokens = False, 0
            return time.perf_counter() - t0, ok, tokens

        t0 = time.perf_counter()
        results = await asyncio.wait_for(asyncio.gather(*(one(p) for p in texts)), deadline_s + 30)
        wall = time.perf_counter() - t0
    lat = sorted(r[0] for r in results)
    return {
        "requests": len(texts),
        "errors": sum(not r[1] for r in results),
        "p50_s": round(statistics.median(lat), 3),
        "p99_s": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(texts) / wall, 2),
        "completion_tokens": sum(r[2] for r in results),
    }


def batch_sizes(url: str) -> dict:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("ecellm_batch_rows_"))
    calls = float(values.get("ecellm_batch_rows_count", 0))
    return {
        "model_calls": int(calls),
        "mean_rows": round(float(values.get("ecellm_batch_rows_sum", 0)) / calls, 1) if calls else 0.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=60)
    ap.add_argument("--max-tokens", type=int, default=4)
    ap.add_argument("--deadline", type=float, default=900.0, help="seconds allowed per phase")
    ap.add_argument("--target", type=float, default=5.0)
    ap.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="CPU threads of both servers (default: every core, for an idle machine; use 1 on a busy "
        "machine, where two threads spin-wait for each other)",
    )
    ap.add_argument("--server-arg", action="append", default=[], help="extra 'ecellm serve' argument")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    extra = [f"--threads={args.threads}", *args.server_arg]
    report: dict = {"model": args.model, "max_tokens": args.max_tokens, "server_args": extra}
    for batching in ("off", "on"):
        server = Server(batching, args.model, extra)
        try:
            server.wait()
            warm = prompts(4)
            asyncio.run(burst(server.url, warm, args.max_tokens, args.deadline))  # first-call costs
            phases = {}
            if args.requests:  # 0 skips this phase (a loaded machine, a quick check)
                phases[f"{args.requests}_at_once"] = asyncio.run(
                    burst(server.url, prompts(args.requests), args.max_tokens, args.deadline)
                )
            phases[f"{args.concurrency}_concurrent"] = asyncio.run(
                burst(server.url, prompts(args.concurrency), args.max_tokens, args.deadline)
            )
            phases["batches"] = batch_sizes(server.url)
            report[f"batching_{batching}"] = phases
        finally:
            server.stop()
        print(f"batching {batching}: {json.dumps(phases)}", flush=True)
    key = f"{args.concurrency}_concurrent"
    ratio = report["batching_on"][key]["requests_per_s"] / report["batching_off"][key]["requests_per_s"]
    report["throughput_ratio"] = round(ratio, 2)
    phases = [p for b in ("off", "on") for p in report[f"batching_{b}"].values()]
    errors = sum(p.get("errors", 0) for p in phases)
    report["errors"] = errors
    print(
        f"throughput at {args.concurrency} concurrent {args.max_tokens}-token requests: "
        f"on/off = {ratio:.2f}x (target {args.target}x); errors {errors}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ratio >= args.target and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
