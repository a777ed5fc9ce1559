"""``ecellm serve``: the CLI face of :func:`ecellm.serve.run.serve`."""

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
    ) -> None:
        """Serve a model over an OpenAI-compatible HTTP API (bound to localhost by default)."""
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
        )
