"""``ecellm serve``: the CLI face of :func:`ecellm.serve.run.serve` (``--engine hf``) and
:func:`ecellm.serve.vllm_engine.serve_vllm` (``--engine vllm``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ecellm.cli_options import one_of
from ecellm.serve.security import TOKEN_ENV

ENGINES = ("hf", "vllm")  # ours on the hf backend, or vLLM's own server behind ecellm's


def _templates() -> tuple[str, ...]:
    from ecellm.prompts import TEMPLATES

    return TEMPLATES


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        model: Annotated[
            str, typer.Option("--model", "-m", help="Model spec: registry name, HF id, folder or GGUF.")
        ] = "smollm2-135m",
        adapter: Annotated[
            str | None, typer.Option("--adapter", help="PEFT adapter folder to apply.")
        ] = None,
        host: Annotated[
            str, typer.Option("--host", help="Address to bind; non-loopback needs a token.")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
        token: Annotated[
            str | None,
            typer.Option(
                "--token",
                envvar=TOKEN_ENV,
                show_envvar=True,
                help="Require 'Authorization: Bearer <token>' (the env var is safer: argv is public).",
            ),
        ] = None,
        served_name: Annotated[
            str | None, typer.Option("--served-name", help="Model id clients send (default: --model).")
        ] = None,
        max_tokens_limit: Annotated[
            int, typer.Option("--max-tokens-limit", min=1, help="Largest max_tokens a request may ask.")
        ] = 2048,
        trust_remote_code: Annotated[
            bool, typer.Option("--trust-remote-code", help="Run model code from the hub (off).")
        ] = False,
        template: Annotated[
            str | None,
            typer.Option(
                "--template",
                callback=one_of(_templates),
                help="Chat prompt format; default: the model's own (training record, NingLab checkpoint, "
                "else the tokenizer's chat template).",
            ),
        ] = None,
        engine: Annotated[
            str,
            typer.Option(
                "--engine",
                callback=one_of(lambda: ENGINES),
                help="hf: ecellm's backend in this process; vllm: vLLM's server behind ecellm.",
            ),
        ] = "hf",
        batching: Annotated[
            str,
            typer.Option(
                "--batching",
                callback=one_of(lambda: ("on", "off")),
                help="on: concurrent requests share batches; off: one request per model call.",
            ),
        ] = "on",
        max_batch: Annotated[
            int, typer.Option("--max-batch", min=1, help="Most prompts gathered into one model call.")
        ] = 64,
        batch_size: Annotated[
            int,
            typer.Option(
                "--batch-size",
                min=1,
                help="Backend batch size, as in 'ecellm predict' (x3 rows when generating).",
            ),
        ] = 20,
        window_ms: Annotated[
            float,
            typer.Option(
                "--window-ms", min=0, help="How long an idle server waits for more requests to batch."
            ),
        ] = 20.0,
        max_body_bytes: Annotated[
            int, typer.Option("--max-body-bytes", min=1, help="Larger bodies get 413.")
        ] = 1_000_000,
        threads: Annotated[
            int | None, typer.Option("--threads", min=1, help="CPU threads (default: the idle cores).")
        ] = None,
        vllm_arg: Annotated[
            list[str] | None,
            typer.Option(
                "--vllm-arg",
                help="Extra argument for vLLM's server (repeat), e.g. --vllm-arg=--max-model-len=4096.",
            ),
        ] = None,
    ) -> None:
        """Serve a model over an OpenAI-compatible HTTP API with typed task endpoints (bound to
        localhost by default)."""

        def vllm_server() -> None:
            from ecellm.serve.vllm_engine import serve_vllm

            serve_vllm(
                model,
                adapter=adapter,
                host=host,
                port=port,
                token=token,
                served_name=served_name,
                template=template,
                vllm_args=list(vllm_arg or []),
                max_body_bytes=max_body_bytes,
            )

        def own_server() -> None:
            from ecellm.serve.run import serve

            serve(
                model,
                adapter=adapter,
                host=host,
                port=port,
                token=token,
                served_name=served_name,
                max_tokens_limit=max_tokens_limit,
                trust_remote_code=trust_remote_code,
                template=template,
                batching=batching == "on",
                max_batch=max_batch,
                batch_size=batch_size,
                window_ms=window_ms,
                max_body_bytes=max_body_bytes,
                threads=threads,
            )

        # the engine picks which server runs: ours on the hf backend, or vLLM's own
        servers = {"hf": own_server, "vllm": vllm_server}
        servers[engine]()
