"""``ecellm serve``: the CLI face of :func:`ecellm.serve.run.serve` (``--engine hf``) and
:func:`ecellm.serve.vllm_engine.serve_vllm` (``--engine vllm``)."""

from __future__ import annotations

import typer

from ecellm.serve.security import TOKEN_ENV


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        model: str = typer.Option(
            "smollm2-135m", "--model", "-m", help="Model spec: registry name, HF id, folder or GGUF."
        ),
        adapter: str | None = typer.Option(None, "--adapter", help="PEFT adapter folder to apply."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; non-loopback needs a token."),
        port: int = typer.Option(8000, "--port", help="TCP port."),
        token: str | None = typer.Option(
            None,
            "--token",
            envvar=TOKEN_ENV,
            show_envvar=True,
            help="Require 'Authorization: Bearer <token>' (the env var is safer: argv is public).",
        ),
        served_name: str | None = typer.Option(
            None, "--served-name", help="Model id clients send (default: --model)."
        ),
        max_tokens_limit: int = typer.Option(
            2048, "--max-tokens-limit", help="Largest max_tokens a request may ask."
        ),
        trust_remote_code: bool = typer.Option(
            False, "--trust-remote-code", help="Run model code from the hub (off)."
        ),
        template: str | None = typer.Option(
            None,
            "--template",
            help="Chat prompt format; default: the model's own (training record, NingLab checkpoint, "
            "else the tokenizer's chat template).",
        ),
        engine: str = typer.Option(
            "hf", "--engine", help="hf: ecellm's backend in this process; vllm: vLLM's server behind ecellm."
        ),
        batching: str = typer.Option(
            "on", "--batching", help="on: concurrent requests share batches; off: one request per model call."
        ),
        max_batch: int = typer.Option(64, "--max-batch", help="Most prompts gathered into one model call."),
        batch_size: int = typer.Option(
            20, "--batch-size", help="Backend batch size, as in 'ecellm predict' (x3 rows when generating)."
        ),
        window_ms: float = typer.Option(
            20.0, "--window-ms", help="How long an idle server waits for more requests to batch."
        ),
        max_body_bytes: int = typer.Option(1_000_000, "--max-body-bytes", help="Larger bodies get 413."),
        threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: the idle cores)."),
        vllm_arg: list[str] = typer.Option(
            [],
            "--vllm-arg",
            help="Extra argument for vLLM's server (repeat), e.g. --vllm-arg=--max-model-len=4096.",
        ),
    ) -> None:
        """Serve a model over an OpenAI-compatible HTTP API with typed task endpoints (bound to
        localhost by default)."""
        from ecellm.errors import InputError

        if batching not in ("on", "off"):
            raise InputError(f"--batching must be 'on' or 'off', got {batching!r}", field="batching")
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
                vllm_args=vllm_arg,
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
        if engine not in servers:
            raise InputError(f"--engine must be one of {', '.join(servers)}, got {engine!r}", field="engine")
        servers[engine]()
